// Newton removal on convex models, where retraining is computable exactly (float64):
// (a) L2-regularised least squares: one step from the optimum equals retraining without the forget set;
// (c) L2-regularised softmax regression: iterated Newton on the retain gradient reaches the retrained optimum.
#include <gtest/gtest.h>

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
  at::Tensor grad(const at::Tensor& W) const {
    at::Tensor w = W.detach().requires_grad_(true);
    return torch::autograd::grad({loss(w)}, {w})[0].detach();
  }
  at::Tensor hessian(const at::Tensor& W) const {
    at::Tensor w = W.detach().requires_grad_(true);
    const at::Tensor g = torch::autograd::grad({loss(w)}, {w}, {}, true, true)[0].reshape(-1);
    at::Tensor H = at::empty({g.numel(), g.numel()}, at::kDouble);
    for (std::int64_t i = 0; i < g.numel(); ++i)
      H[i].copy_(torch::autograd::grad({g[i]}, {w}, {}, true)[0].reshape(-1));
    return H;
  }
  /// The optimum by damped-free dense Newton from zero (independent of the solver under test).
  at::Tensor optimum(std::int64_t p, std::int64_t k) const {
    at::Tensor W = at::zeros({p, k}, at::kDouble);
    for (int it = 0; it < 50; ++it)
      W = W - at::linalg_solve(hessian(W), grad(W).reshape(-1)).view({p, k});
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
