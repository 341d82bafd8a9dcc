// Solver against dense linear algebra on a model small enough to build H, G and F̂₀ explicitly (float64):
// CG solutions, the Woodbury inverse, the F^-1/4 noise transform, negative curvature and NaN statuses.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <optional>

#include "solver_fixtures.h"
#include "unlearn/solver/cg.h"
#include "unlearn/util/error.h"

namespace unlearn::testing {
namespace {

struct Tiny {
  std::unique_ptr<Communicator> tp = make_local_communicator(), dp = make_local_communicator();
  TransformerModel model;
  std::vector<std::size_t> all;
  Curvature curv;
  explicit Tiny(Family f = Family::kGpt2)
      : model(dense_config(f), *tp), all((model.init_random(3, test_init()), model.select(""))), curv(model, *dp, all) {
    curv.prepare({make_batch(5, 3, 8, 11)});
  }
};

double rel(const at::Tensor& a, const at::Tensor& b) { return (a - b).norm().item<double>() / b.norm().item<double>(); }

TEST(SolverDense, CgOnDampedHessianAndGgnEqualsDenseSolve) {
  Tiny s;
  const ShardedVector b = random_vector(s.model, s.all, 8);
  for (CurvatureKind kind : {CurvatureKind::kHessian, CurvatureKind::kGgn}) {
    CurvatureOperator C(s.curv, kind);
    const at::Tensor dense = dense_matrix(C, b);
    EXPECT_LT(rel(dense, dense.t()), 1e-12) << to_string(kind) << " is symmetric";
    const auto eig = at::linalg_eigvalsh(dense);
    // Damping that makes the operator SPD with a moderate condition number.
    const double lambda = std::max(0.0, -eig.min().item<double>()) + 0.05 * eig.abs().max().item<double>();
    DampedOperator A(C, lambda);
    ShardedVector x;
    CgOptions opt;
    opt.max_iters = 2000;
    opt.rtol = 1e-13;
    const CgResult r = solve_cg(A, b, x, opt);
    EXPECT_EQ(r.status, CgStatus::kConvergedRtol) << to_string(kind) << " after " << r.iterations;
    const at::Tensor n = dense.size(0) == 0 ? dense : at::eye(dense.size(0), at::kDouble);
    const at::Tensor expect = at::linalg_solve(dense + lambda * n, flatten(b));
    EXPECT_LT(rel(flatten(x), expect), 1e-8) << to_string(kind);
    EXPECT_FALSE(r.history.empty());
  }
}

TEST(SolverDense, CgInterruptedAndResumedIsBitIdentical) {
  Tiny s;
  const ShardedVector b = random_vector(s.model, s.all, 9);
  CurvatureOperator C(s.curv, CurvatureKind::kGgn);
  DampedOperator A(C, 0.1);
  CgOptions opt;
  opt.max_iters = 9;
  opt.rtol = 1e-15;  // all 9 iterations
  ShardedVector straight;
  const CgResult full = solve_cg(A, b, straight, opt);
  ASSERT_EQ(full.status, CgStatus::kMaxIterations);

  // Stop after iteration 4, keeping a deep copy of the state (what a checkpoint holds), then resume from it.
  std::optional<CgState> saved;
  CgOptions stop = opt;
  stop.after_iteration = [&](const CgState& st) {
    if (st.iteration != 4) return false;
    saved = CgState{st.iteration, st.x.clone(), st.r.clone(), st.p.clone(), st.rz, st.residual_norm, st.history};
    return true;
  };
  ShardedVector partial;
  const CgResult first = solve_cg(A, b, partial, stop);
  EXPECT_EQ(first.status, CgStatus::kInterrupted);
  EXPECT_EQ(first.iterations, 4);
  ASSERT_TRUE(saved);
  CgOptions resume = opt;
  resume.resume = &*saved;
  ShardedVector resumed;
  const CgResult second = solve_cg(A, b, resumed, resume);
  EXPECT_EQ(second.status, full.status);
  EXPECT_EQ(second.iterations, full.iterations);
  ASSERT_EQ(second.history.size(), full.history.size());
  EXPECT_EQ(second.residual_norm, full.residual_norm);
  for (std::size_t i = 0; i < straight.size(); ++i) EXPECT_TRUE(at::equal(resumed[i], straight[i])) << i;
}

TEST(SolverDense, WoodburyEqualsCgOnFisherEqualsDense) {
  Tiny s;
  const auto docs = documents(40, 6, 7, 11);
  DocumentGradients dg = document_gradients(s.model, *s.dp, s.all, docs);
  ASSERT_EQ(dg.rows.size(), 6u);
  EXPECT_EQ(dg.total_tokens, 36);
  const FisherStore store(dg.rows, dg.total_tokens);
  const ShardedVector b = random_vector(s.model, s.all, 9);
  FisherOperator F(store);
  const at::Tensor dense = dense_matrix(F, b);
  // F̂₀ = (1/N) UᵀU from the rows directly.
  std::vector<at::Tensor> rows;
  for (const auto& r : dg.rows) rows.push_back(flatten(r));
  const at::Tensor U = at::stack(rows);
  EXPECT_LT(rel(dense, U.t().matmul(U) / 36.0), 1e-13);
  const double lambda = 1e-3;
  const at::Tensor I = at::eye(dense.size(0), at::kDouble);
  const at::Tensor expect = at::linalg_solve(dense + lambda * I, flatten(b));
  ShardedVector wood;
  store.solve(lambda, b, wood);
  EXPECT_LT(rel(flatten(wood), expect), 1e-8);
  DampedOperator A(F, lambda);
  ShardedVector cg;
  CgOptions opt;
  opt.max_iters = 50;
  opt.rtol = 1e-13;
  const CgResult r = solve_cg(A, b, cg, opt);
  EXPECT_LE(r.iterations, 8) << "rank-6 plus identity: CG converges in about m + 1 steps";
  EXPECT_LT(rel(flatten(cg), expect), 1e-8);

  // F̂^{-1/4} n against the dense eigen-decomposition.
  ShardedVector noise;
  store.inverse_quartic_root(lambda, b, noise);
  const auto [w, V] = at::linalg_eigh(dense + lambda * I);
  const at::Tensor dense_root = V.matmul(at::diag(w.pow(-0.25))).matmul(V.t());
  EXPECT_LT(rel(flatten(noise), dense_root.matmul(flatten(b))), 1e-8);
  // Golatkar's diagonal form: (diag(F̂₀) + λ)^{-1/2} n against the dense matrix's diagonal.
  ShardedVector diag_noise;
  store.inverse_sqrt_diagonal(lambda, b, diag_noise);
  EXPECT_LT(rel(flatten(diag_noise), flatten(b) / (at::diagonal(dense) + lambda).sqrt()), 1e-12);
  const auto [inside, outside] = store.split_norms(b);
  EXPECT_NEAR(inside * inside + outside * outside, b.dot(b), 1e-9 * b.dot(b));
  EXPECT_GT(inside, 0.0);
}

// The Jacobi preconditioner: diag(F̂₀) from the store, from the row-free squared-gradient sum and from the dense
// F̂₀ agree; CG preconditioned with M = diag(F̂₀) + λ on the damped GGN reaches the dense solution.
TEST(SolverDense, JacobiPreconditionedCgEqualsDenseSolve) {
  Tiny s;
  const auto docs = documents(40, 6, 7, 11);
  DocumentGradients dg = document_gradients(s.model, *s.dp, s.all, docs);
  const FisherStore store(dg.rows, dg.total_tokens);
  const ShardedVector b = random_vector(s.model, s.all, 10);
  FisherOperator F(store);
  const at::Tensor fisher_diag = at::diagonal(dense_matrix(F, b));
  const ShardedVector diag = store.diagonal();
  EXPECT_LT(rel(flatten(diag), fisher_diag), 1e-12);
  ShardedVector squares = squared_gradient_sum(s.model, *s.dp, s.all, docs);
  squares.scale(1.0 / static_cast<double>(dg.total_tokens));
  EXPECT_LT(rel(flatten(squares), fisher_diag), 1e-12);

  CurvatureOperator G(s.curv, CurvatureKind::kGgn);
  const at::Tensor dense = dense_matrix(G, b);
  const double lambda = 0.05 * at::linalg_eigvalsh(dense).max().item<double>();
  DampedOperator A(G, lambda);
  ShardedVector inverse = diag.clone();
  for (std::size_t j = 0; j < inverse.size(); ++j) inverse[j] = (inverse[j] + lambda).reciprocal_();
  CgOptions opt;
  opt.max_iters = 2000;
  opt.rtol = 1e-13;
  opt.inverse_diagonal = &inverse;
  ShardedVector x;
  const CgResult r = solve_cg(A, b, x, opt);
  EXPECT_EQ(r.status, CgStatus::kConvergedRtol) << "after " << r.iterations;
  const at::Tensor expect = at::linalg_solve(dense + lambda * at::eye(dense.size(0), at::kDouble), flatten(b));
  EXPECT_LT(rel(flatten(x), expect), 1e-8);
}

TEST(SolverDense, ForcedNegativeCurvatureGivesAFiniteDocumentedStep) {
  Tiny s;
  CurvatureOperator G(s.curv, CurvatureKind::kGgn);
  const ShardedVector b = random_vector(s.model, s.all, 2);
  const at::Tensor dense = dense_matrix(G, b);
  const double shift = -(at::linalg_eigvalsh(dense).max().item<double>() + 1.0);  // G + shift I < 0
  DampedOperator A(G, shift);
  ShardedVector x;
  CgResult r = solve_cg(A, b, x, CgOptions{});
  EXPECT_EQ(r.status, CgStatus::kNegativeCurvature);
  const double bab = flatten(b).dot((dense + shift * at::eye(dense.size(0), at::kDouble)).matmul(flatten(b)))
                         .item<double>();
  ShardedVector expect = b.clone();
  expect.scale(b.dot(b) / -bab);  // b / |bᵀAb / bᵀb|
  ShardedVector d = x.clone();
  d.axpy(-1.0, expect);
  EXPECT_LT(d.norm(), 1e-10 * expect.norm());
  CgOptions tr;
  tr.trust_radius = 0.25;
  r = solve_cg(A, b, x, tr);
  EXPECT_EQ(r.status, CgStatus::kNegativeCurvature);
  EXPECT_NEAR(x.norm(), 0.25, 1e-12);
}

TEST(SolverDense, TrustRadiusStopsOnTheBoundary) {
  Tiny s;
  CurvatureOperator G(s.curv, CurvatureKind::kGgn);
  DampedOperator A(G, 1e-3);
  const ShardedVector b = random_vector(s.model, s.all, 4);
  CgOptions opt;
  opt.trust_radius = 1e-3;
  ShardedVector x;
  const CgResult r = solve_cg(A, b, x, opt);
  EXPECT_EQ(r.status, CgStatus::kTrustRegionBoundary);
  EXPECT_NEAR(x.norm(), 1e-3, 1e-15);
}

TEST(SolverDense, NanInTheRightHandSideIsAStatus) {
  Tiny s;
  CurvatureOperator G(s.curv, CurvatureKind::kGgn);
  DampedOperator A(G, 1e-3);
  ShardedVector b = random_vector(s.model, s.all, 4);
  b[0].view(-1)[0] = std::nan("");
  ShardedVector x;
  EXPECT_THROW(solve_cg(A, b, x, CgOptions{}), Error);  // the all-reduced dot refuses non-finite values
}

/// `count` documents of T tokens sampled from the model's own next-token distribution (one row each).
/// Also returns them as one batch (`all`), for the curvature sample.
std::vector<Batch> sample_from_model(const TransformerModel& model, std::int64_t count, std::int64_t T,
                                     std::uint64_t seed, Batch& all) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const std::int64_t V = model.config().vocab_size;
  Batch b;
  b.tokens = at::zeros({count, T}, at::kLong);
  b.tokens.select(1, 0).copy_(at::randint(V, {count}, gen, at::TensorOptions().dtype(at::kLong)));
  b.segments = at::zeros({count, T}, at::kLong);
  b.positions = at::arange(T, at::kLong).view({1, T}).expand({count, T}).contiguous();
  for (std::int64_t t = 0; t + 1 < T; ++t) {
    b.targets = at::full({count, T}, -1, at::kLong);
    b.targets.select(1, t).fill_(0);  // logits at position t only (the target id itself is not used)
    const at::Tensor probs = at::softmax(model.forward(b).logits.detach().to(at::kDouble), 1);
    b.tokens.select(1, t + 1).copy_(at::multinomial(probs, 1, true, gen).view({count}));
  }
  std::vector<Batch> docs;
  for (std::int64_t i = 0; i < count; ++i) {
    Batch d;
    d.tokens = b.tokens.narrow(0, i, 1).clone();
    d.segments = at::zeros({1, T}, at::kLong);
    d.positions = at::arange(T, at::kLong).view({1, T});
    d.targets = at::full({1, T}, -1, at::kLong);
    d.targets.narrow(1, 0, T - 1).copy_(d.tokens.narrow(1, 1, T - 1));
    docs.push_back(d);
  }
  all = b;
  all.targets = at::full({count, T}, -1, at::kLong);
  all.targets.narrow(1, 0, T - 1).copy_(b.tokens.narrow(1, 1, T - 1));
  return docs;
}

// Design 3.0's scale check: F̂₀ = (1/N) UᵀU from per-document SUM gradients estimates the curvature of the token-mean
// loss, so vᵀF̂₀v / vᵀGv is about 1. Exact in expectation when the data follow the model's own distribution (the
// model is then the population optimum, a perfectly trained model): E[(u_d·v)²] = Σ_t (J_t v)ᵀ H_out (J_t v), the
// cross terms between a document's tokens vanishing. Per-batch MEAN gradients would be off by the tokens per
// document (here 7), and a wrong N by the documents' count.
TEST(SolverDense, EmpiricalFisherMatchesTheGgnOnTheModelsOwnDistribution) {
  Tiny s;
  Batch sample;
  const std::vector<Batch> docs = sample_from_model(s.model, 400, 8, 17, sample);
  DocumentGradients dg = document_gradients(s.model, *s.dp, s.all, docs);
  ASSERT_EQ(dg.total_tokens, 400 * 7);
  const FisherStore store(dg.rows, dg.total_tokens);
  FisherOperator F(store);
  Curvature curv(s.model, *s.dp, s.all);
  curv.prepare({sample});
  ASSERT_EQ(curv.num_targets(), dg.total_tokens);
  double sum_log = 0;
  for (std::uint64_t k = 0; k < 8; ++k) {
    const ShardedVector v = random_vector(s.model, s.all, 100 + k);
    ShardedVector fv;
    F.apply(v, fv);
    const double ratio = v.dot(fv) / v.dot(curv.gvp(v));
    EXPECT_GT(ratio, 0.5) << "direction " << k;
    EXPECT_LT(ratio, 2.0) << "direction " << k;
    sum_log += std::log(ratio);
    std::printf("  vᵀF̂₀v / vᵀGv, random direction %d: %.3f\n", static_cast<int>(k), ratio);
  }
  EXPECT_LT(std::abs(sum_log / 8), std::log(1.25)) << "geometric mean of the 8 ratios";
}

TEST(Philox, NoiseIsStandardNormalAndKeyed) {
  Tiny s;
  const std::vector<ShardPlacement> place = placement_of(s.model, s.all);
  const ShardedVector like = s.model.zeros(s.all);
  const at::Tensor a = flatten(philox_normal(like, place, 7, 0));
  const at::Tensor a2 = flatten(philox_normal(like, place, 7, 0));
  const at::Tensor b = flatten(philox_normal(like, place, 7, 1));
  EXPECT_TRUE(a.equal(a2));
  EXPECT_FALSE(a.equal(b));
  EXPECT_NEAR(a.mean().item<double>(), 0.0, 5.0 / std::sqrt(static_cast<double>(a.numel())));
  EXPECT_NEAR(a.std().item<double>(), 1.0, 0.1);
}

}  // namespace
}  // namespace unlearn::testing
