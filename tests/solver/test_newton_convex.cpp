// Newton removal on convex models, where retraining is computable exactly (float64):
// (a) L2-regularised least squares: one step from the optimum equals retraining without the forget set;
// (b) L2-regularised softmax regression: the one-step error against retraining is quadratic in the step (two
//     forget-set sizes) and the retain-gradient residual lies within Guo et al.'s data-dependent bound (with a
//     derived multiclass constant), and binary logistic regression within that bound with the paper's γ = 1/4;
// (c) L2-regularised softmax regression: iterated Newton on the retain gradient reaches the retrained optimum.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>

#include "unlearn/solver/newton.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

/// A dense symmetric matrix as an operator on one-entry vectors.
class DenseOperator final : public LinearOperator {
 public:
  explicit DenseOperator(at::Tensor m) : m_(std::move(m)) {}
  void apply(const ShardedVector& x, ShardedVector& y) override {
    y = x.zeros_like();
    y[0].copy_(m_.matmul(x[0].reshape(-1)).view(x[0].sizes()));
  }

 private:
  at::Tensor m_;
};

struct Vec {
  std::unique_ptr<Communicator> tp = make_local_communicator();
  ShardedVector of(const at::Tensor& t) { return ShardedVector({t.clone()}, {ShardLayout{"theta", false, true}}, tp.get()); }
};

at::Tensor ridge(const at::Tensor& X, const at::Tensor& y, double reg) {
  const double n = static_cast<double>(X.size(0));
  return at::linalg_solve(X.t().matmul(X) / n + reg * at::eye(X.size(1), at::kDouble), X.t().matmul(y) / n);
}

TEST(NewtonConvex, LeastSquaresOneStepEqualsRetraining) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const std::int64_t n = 60, nf = 9, p = 7;
  const double reg = 0.1;
  const at::Tensor X = at::randn({n, p}, gen, at::TensorOptions().dtype(at::kDouble));
  const at::Tensor y = at::randn({n}, gen, at::TensorOptions().dtype(at::kDouble));
  const at::Tensor Xf = X.narrow(0, 0, nf), yf = y.narrow(0, 0, nf);
  const at::Tensor Xr = X.narrow(0, nf, n - nf), yr = y.narrow(0, nf, n - nf);
  const at::Tensor theta = ridge(X, y, reg), retrained = ridge(Xr, yr, reg);
  auto grad = [&](const at::Tensor& A, const at::Tensor& b) {  // ∇ of (1/2m)‖Aθ − b‖² + (reg/2)‖θ‖²
    return A.t().matmul(A.matmul(theta) - b) / static_cast<double>(A.size(0)) + reg * theta;
  };
  Vec v;
  DenseOperator H(Xr.t().matmul(Xr) / static_cast<double>(n - nf) + reg * at::eye(p, at::kDouble));
  UnlearnProblem pb;
  pb.forget_gradient = v.of(grad(Xf, yf));  // Δ includes the regulariser's gradient (design 3.0)
  pb.retain_gradient = v.of(grad(Xr, yr));
  pb.full_gradient = v.of(grad(X, y));
  pb.n_forget = nf;
  pb.n_retain = n - nf;
  pb.curvature = &H;
  for (GradientSource source : {GradientSource::kForget, GradientSource::kRetain}) {
    NewtonOptions opt;
    opt.damping = 0.0;  // the regulariser is already in H
    opt.gradient_source = source;
    opt.cg.rtol = 1e-14;
    opt.cg.max_iters = 100;
    const NewtonResult r = newton_update(pb, opt);
    const at::Tensor unlearned = theta + r.update[0];
    EXPECT_LT((unlearned - retrained).norm().item<double>() / retrained.norm().item<double>(), 1e-10);
    EXPECT_LT(r.stationarity_ratio, 1e-10);  // θ is the exact optimum of L_D
  }
}

/// L2-regularised softmax regression: token-mean cross-entropy + (reg/2)‖W‖², W [p, K].
struct Softmax {
  at::Tensor X, labels;
  double reg;
  at::Tensor loss(const at::Tensor& W) const {
    return at::cross_entropy_loss(X.matmul(W), labels) + 0.5 * reg * W.pow(2).sum();
  }
  at::Tensor grad(const at::Tensor& W) const { return grad_of(*this, W); }
  at::Tensor hessian(const at::Tensor& W) const { return hessian_of(*this, W); }
  /// The optimum by damped-free dense Newton from zero (independent of the solver under test).
  at::Tensor optimum(std::int64_t p, std::int64_t k) const { return optimum_of(*this, at::zeros({p, k}, at::kDouble)); }

  // Autograd gradient, dense Hessian and dense-Newton optimum of any model with a loss(θ) (also Logistic below).
  template <class Model>
  static at::Tensor grad_of(const Model& m, const at::Tensor& W) {
    at::Tensor w = W.detach().requires_grad_(true);
    return torch::autograd::grad({m.loss(w)}, {w})[0].detach();
  }
  template <class Model>
  static at::Tensor hessian_of(const Model& m, const at::Tensor& W) {
    at::Tensor w = W.detach().requires_grad_(true);
    const at::Tensor g = torch::autograd::grad({m.loss(w)}, {w}, {}, true, true)[0].reshape(-1);
    at::Tensor H = at::empty({g.numel(), g.numel()}, at::kDouble);
    for (std::int64_t i = 0; i < g.numel(); ++i)
      H[i].copy_(torch::autograd::grad({g[i]}, {w}, {}, true)[0].reshape(-1));
    return H;
  }
  template <class Model>
  static at::Tensor optimum_of(const Model& m, at::Tensor W) {
    for (int it = 0; it < 50; ++it)
      W = W - at::linalg_solve(hessian_of(m, W), grad_of(m, W).reshape(-1)).view(W.sizes());
    return W;
  }
};

TEST(NewtonConvex, IteratedNewtonOnTheRetainGradientReachesTheRetrainedOptimum) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  const std::int64_t n = 80, nf = 12, p = 5, k = 3;
  const at::Tensor X = at::randn({n, p}, gen, at::TensorOptions().dtype(at::kDouble));
  const at::Tensor labels = at::randint(k, {n}, gen, at::TensorOptions().dtype(at::kLong));
  const Softmax full{X, labels, 0.05};
  const Softmax retain{X.narrow(0, nf, n - nf), labels.narrow(0, nf, n - nf), 0.05};
  const Softmax forget{X.narrow(0, 0, nf), labels.narrow(0, 0, nf), 0.05};
  const at::Tensor retrained = retain.optimum(p, k);
  at::Tensor W = full.optimum(p, k);
  Vec v;
  for (int step = 0; step < 8; ++step) {
    DenseOperator H(retain.hessian(W));
    UnlearnProblem pb;
    pb.forget_gradient = v.of(forget.grad(W));
    pb.retain_gradient = v.of(retain.grad(W));
    pb.n_forget = nf;
    pb.n_retain = n - nf;
    pb.curvature = &H;
    NewtonOptions opt;
    opt.damping = 0.0;
    opt.gradient_source = GradientSource::kRetain;
    opt.cg.rtol = 1e-14;
    opt.cg.max_iters = 200;
    if (retain.grad(W).norm().item<double>() < 1e-14) break;
    W = W + newton_update(pb, opt).update[0];
  }
  EXPECT_LT((W - retrained).norm().item<double>() / retrained.norm().item<double>(), 1e-8);
  EXPECT_LT(retain.grad(W).norm().item<double>(), 1e-10);
}

/// Binary L2-regularised logistic regression, labels in {0, 1}: mean of log(1 + exp(-y' xᵀw)) with y' = ±1, written
/// as the cross-entropy of the logits [0, xᵀw] (stable at any margin), + (reg/2)‖w‖², w [p].
struct Logistic {
  at::Tensor X, labels;
  double reg;
  at::Tensor loss(const at::Tensor& w) const {
    const at::Tensor z = X.matmul(w);
    return at::cross_entropy_loss(at::stack({at::zeros_like(z), z}, 1), labels) + 0.5 * reg * w.pow(2).sum();
  }
  at::Tensor grad(const at::Tensor& w) const { return Softmax::grad_of(*this, w); }
  at::Tensor hessian(const at::Tensor& w) const { return Softmax::hessian_of(*this, w); }
};

/// One Newton removal step from θ through the project's solver: newton-cg with the exact, undamped Hessian of the
/// retain objective at θ, Δ = ∇L_{D_f}(θ) including the regulariser, update θ + η (n_f/n_r) H⁻¹ Δ (design 3.0).
template <class Model>
NewtonResult removal_step(const Model& full, const Model& retain, const Model& forget, const at::Tensor& theta,
                          double eta = 1.0) {
  Vec v;
  DenseOperator H(retain.hessian(theta));
  UnlearnProblem pb;
  pb.forget_gradient = v.of(forget.grad(theta));
  pb.retain_gradient = v.of(retain.grad(theta));
  pb.full_gradient = v.of(full.grad(theta));
  pb.n_forget = forget.X.size(0);
  pb.n_retain = retain.X.size(0);
  pb.curvature = &H;
  NewtonOptions opt;
  opt.damping = 0.0;  // the regulariser is already in H
  opt.step_scale = eta;
  opt.gradient_source = GradientSource::kForget;
  opt.cg.rtol = 1e-15;
  opt.cg.max_iters = 400;
  NewtonResult r = newton_update(pb, opt);
  EXPECT_LT(r.stationarity_ratio, 1e-8);  // θ is the optimum of L_D, so (n_f/n_r)Δ = -∇L_{D_r}(θ)
  return r;
}

double spectral_norm(const at::Tensor& X) { return at::linalg_matrix_norm(X, 2).item<double>(); }
double max_row_norm(const at::Tensor& X) { return X.norm(2, {1}).max().item<double>(); }

// Guo et al. (2020), data-dependent bound, rewritten for this project's token-mean loss. For a linear model with
// per-point loss ℓ(Wᵀx) and L_r(W) = (1/n_r) Σ ℓ(Wᵀx_i) + (reg/2)‖W‖², a step V with ∇L_r(θ) + H V = ε gives
//   ∇L_r(θ + V) = ε + ∫₀¹ (H(θ + tV) − H(θ)) V dt = ε + (1/n_r) X_rᵀ C,  c_i = ∫₀¹ (S(z_i + t u_i) − S(z_i)) u_i dt,
// with u_i = Vᵀx_i and S(z) the Hessian of ℓ in its logits z. If ‖S(z) − S(z')‖₂ ≤ g ‖z − z'‖ then ‖c_i‖ ≤ (g/2)‖u_i‖²
// and ‖X_rᵀC‖ ≤ ‖X_r‖₂ ‖C‖_F ≤ (g/2) ‖X_r‖₂ max_i‖u_i‖ ‖X_r V‖ ≤ (g/2) R ‖X_r‖₂ ‖V‖₂ ‖X_r V‖, R = max_i ‖x_i‖:
//   ‖∇L_r(θ + V)‖ ≤ ‖ε‖ + (γ / n_r) ‖X_r‖₂ ‖V‖₂ ‖X_r V‖,   γ = g R / 2.
// This is Guo et al.'s γ ‖X‖₂ ‖H⁻¹Δ‖ ‖X H⁻¹Δ‖: their sum loss is n_r times our mean, and their H⁻¹Δ (sum-loss H and
// Δ) is our V = (n_f/n_r) H⁻¹Δ. They assume ‖x_i‖ ≤ 1 and take γ = 1/4 for the logistic loss, whose third derivative
// is at most 1/(6√3) ≈ 0.096 in magnitude, so their γ is valid with a slack of about 5 over g/2 = 0.048. ε (the
// stationarity of θ on L_D plus the CG residual, ~1e-13 here) is measured, not assumed zero.
double guo_bound(const at::Tensor& Xr, const at::Tensor& V, double gamma) {
  const at::Tensor Vm = V.dim() == 1 ? V.unsqueeze(1) : V;
  return gamma / static_cast<double>(Xr.size(0)) * spectral_norm(Xr) * spectral_norm(Vm) *
         Xr.matmul(Vm).norm().item<double>();
}

/// Softmax data with labels from a planted linear model plus noise, so the optimum sits where the Hessian varies
/// (a nearly quadratic problem would make every error round-off).
Softmax planted_softmax(std::int64_t n, std::int64_t p, std::int64_t k, double reg, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor X = at::randn({n, p}, gen, f64);
  const at::Tensor W0 = at::randn({p, k}, gen, f64);
  const at::Tensor labels = (X.matmul(W0) + 1.5 * at::randn({n, k}, gen, f64)).argmax(1);
  return Softmax{X, labels, reg};
}

TEST(NewtonConvex, SoftmaxOneStepErrorIsQuadraticInTheStep) {
  const std::int64_t n = 400, p = 6, k = 4;
  const double reg = 1e-2;
  const Softmax full = planted_softmax(n, p, k, reg, 23);
  const at::Tensor theta = full.optimum(p, k);
  ASSERT_LT(full.grad(theta).norm().item<double>(), 1e-12);
  // Lipschitz constant of the logit Hessian (see guo_bound): for softmax cross-entropy S(z) = diag(p) − ppᵀ and
  // dS = diag(dp) − dp pᵀ − p dpᵀ with dp = S dz; ‖S‖₂ ≤ 1/2 (Gershgorin: row sums 2p_i(1 − p_i)) and ‖p‖ ≤ 1 give
  // ‖dS‖₂ ≤ 3‖dp‖ ≤ (3/2)‖dz‖: g = 3/2 (valid, not tight).
  // One-step error: with D = θ_r* − θ, θ̂ − θ_r* = H(θ)⁻¹ ∫₀¹ (H(θ + tD) − H(θ)) D dt, the integral of guo_bound with
  // V = D, so e ≤ guo_bound(X_r, D) / λ_min(H_r(θ)) = O(s²): a rigorous, data-dependent form of Newton's theorem.
  const double g = 1.5;
  double e[2], s[2];
  const std::int64_t sizes[2] = {2, 24};
  for (int j = 0; j < 2; ++j) {
    const std::int64_t nf = sizes[j], nr = n - nf;
    const Softmax retain{full.X.narrow(0, nf, nr), full.labels.narrow(0, nf, nr), reg};
    const Softmax forget{full.X.narrow(0, 0, nf), full.labels.narrow(0, 0, nf), reg};
    const at::Tensor retrained = retain.optimum(p, k);
    ASSERT_LT(retain.grad(retrained).norm().item<double>(), 1e-12);
    const NewtonResult r = removal_step(full, retain, forget, theta);
    const at::Tensor V = r.update[0];
    const at::Tensor unlearned = theta + V;
    s[j] = (retrained - theta).norm().item<double>();
    e[j] = (unlearned - retrained).norm().item<double>();
    const double R = max_row_norm(retain.X);
    const double lambda_min = at::linalg_eigvalsh(retain.hessian(theta)).min().item<double>();
    const double e_bound = guo_bound(retain.X, retrained - theta, g * R / 2) / lambda_min;
    const double eps =
        (retain.grad(theta) + retain.hessian(theta).matmul(V.reshape(-1)).view({p, k})).norm().item<double>();
    const double residual = retain.grad(unlearned).norm().item<double>();
    const double bound = eps + guo_bound(retain.X, V, g * R / 2);
    std::printf("softmax n_f %2ld: s %.3e  e %.3e (bound %.3e)  e/s^2 %.3f  residual %.3e (bound %.3e)  eps %.1e\n",
                static_cast<long>(nf), s[j], e[j], e_bound, e[j] / (s[j] * s[j]), residual, bound, eps);
    // A theorem for the exact Newton step, but loose here (by ~1000: g, R ‖D‖ for max_i ‖u_i‖, 1/λ_min(H_r)); it
    // fails only for a grossly wrong step. The sharp checks are the constant e/s² (measured 0.27 for both sizes, 0.21-0.30
    // over 8 data seeds; a step with a first-order error c s, e.g. η = 1/2 with c = 1/2, gives c/s ≥ 3 here, and
    // η = 0.9 gives 3.3 at n_f = 2) and the exponent below.
    EXPECT_LE(e[j], e_bound);
    EXPECT_LT(e[j] / (s[j] * s[j]), 1.0);
    EXPECT_LT(e[j], 0.1 * s[j]);  // the step removes at least 90 % of the distance to retraining (measured ≤ 0.04 s)
    // The residual is the second-order term, not round-off (a wrong η makes ε first order: η = 0.99 fails this).
    EXPECT_GT(residual, 10 * eps);
    EXPECT_LE(residual, bound);  // Guo's bound with the derived multiclass γ = g R / 2 (measured ~1/130 of it)
  }
  const double exponent = std::log(e[1] / e[0]) / std::log(s[1] / s[0]);
  std::printf("softmax: s2/s1 %.2f  e2/e1 %.2f  exponent %.3f\n", s[1] / s[0], e[1] / e[0], exponent);
  // Measured 1.98 (1.81-2.08 over 8 data seeds; η = 0.9 gives 1.10, η = 1/2 gives 1.01). e/s² differs between the
  // two forget sets (other directions) by a factor f ≤ 1.3 in those runs, which moves the exponent by log f / log
  // (s2/s1) ≤ 0.3 when s2/s1 ≥ 2.5 (4.77 here): hence the window [1.6, 2.5].
  EXPECT_GT(s[1] / s[0], 2.5);
  EXPECT_GT(exponent, 1.6);
  EXPECT_LT(exponent, 2.5);
}

TEST(NewtonConvex, LogisticResidualWithinGuoDataDependentBound) {
  // Guo et al.'s setting: binary L2 logistic regression, rows scaled to ‖x_i‖ ≤ 1, γ = 1/4, one point removed.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(31);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const std::int64_t n = 400, p = 8, nf = 1, nr = n - nf;  // Guo et al. remove one point
  const double reg = 1e-3;
  at::Tensor X = at::randn({n, p}, gen, f64);
  X = X / max_row_norm(X);
  const at::Tensor w0 = 4.0 * at::randn({p}, gen, f64);
  const at::Tensor labels = (X.matmul(w0) + 0.5 * at::randn({n}, gen, f64) > 0).to(at::kLong);
  const Logistic full{X, labels, reg};
  const Logistic retain{X.narrow(0, nf, nr), labels.narrow(0, nf, nr), reg};
  const Logistic forget{X.narrow(0, 0, nf), labels.narrow(0, 0, nf), reg};
  const at::Tensor theta = Softmax::optimum_of(full, at::zeros({p}, at::kDouble));
  ASSERT_LT(full.grad(theta).norm().item<double>(), 1e-12);
  const at::Tensor H = retain.hessian(theta);
  struct Measured { double residual, bound, eps; };
  auto measure = [&](double eta) {
    const at::Tensor V = removal_step(full, retain, forget, theta, eta).update[0];
    return Measured{retain.grad(theta + V).norm().item<double>(), guo_bound(retain.X, V, 0.25),
                    (retain.grad(theta) + H.matmul(V)).norm().item<double>()};
  };
  const Measured newton = measure(1.0), half = measure(0.5);
  std::printf("logistic: residual %.3e  Guo bound %.3e (bound/residual %.1f)  eps %.1e  half-step residual %.3e\n",
              newton.residual, newton.bound, newton.bound / newton.residual, newton.eps, half.residual);
  // Measured: residual 4.0e-8, bound 2.2e-6 (a factor 54; 46-104 over 8 data seeds, about 5 of it γ's slack), ε 4e-18.
  EXPECT_LE(newton.residual, newton.bound + newton.eps);
  EXPECT_GT(newton.residual, 10 * newton.eps);  // > 0 and not round-off: the second-order term is measured
  // A wrong step (η = 1/2) leaves a first-order residual ≈ ‖∇L_r(θ)‖/2: the same bound catches it, and it is far
  // above the Newton step's (measured 4.3e-5: 19x the bound, 1000x the Newton residual; over 8 seeds ≥ 1.9x, ≥ 130x).
  EXPECT_GT(half.residual, newton.bound + newton.eps);
  EXPECT_GT(half.residual, 100 * newton.residual);
}

TEST(NewtonConvex, EmptyAndZeroInputsAreClearErrors) {
  Vec v;
  UnlearnProblem pb;
  pb.forget_gradient = v.of(at::zeros({3}, at::kDouble));
  pb.retain_gradient = v.of(at::zeros({3}, at::kDouble));
  pb.n_forget = 0;
  pb.n_retain = 5;
  EXPECT_THROW(newton_update(pb, NewtonOptions{}), Error);
  pb.n_forget = 2;
  EXPECT_THROW(newton_update(pb, NewtonOptions{}), Error);  // zero gradient: nothing to remove
  pb.forget_gradient[0][0] = std::nan("");
  EXPECT_THROW(newton_update(pb, NewtonOptions{}), Error);  // NaN in the gradient
  NewtonOptions fr;
  fr.method = Method::kFisherRemoval;
  pb.forget_gradient[0][0] = 1.0;
  EXPECT_THROW(newton_update(pb, fr), ConfigError);  // no Fisher sample
}

}  // namespace
}  // namespace unlearn
