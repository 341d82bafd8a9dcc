// Newton-type updates from a prepared UnlearnProblem.
#include "unlearn/solver/newton.h"

#include <cmath>

#include "unlearn/util/error.h"

namespace unlearn {

Method parse_method(const std::string& name) {
  if (name == "newton-cg") return Method::kNewtonCg;
  if (name == "fisher-removal") return Method::kFisherRemoval;
  if (name == "fisher-forgetting") return Method::kFisherForgetting;
  if (name == "gradient-ascent") return Method::kGradientAscent;
  UNLEARN_THROW(ConfigError, "unknown method '" << name
                                                << "' (newton-cg, fisher-removal, fisher-forgetting, gradient-ascent)");
}

std::string to_string(Method m) {
  switch (m) {
    case Method::kNewtonCg: return "newton-cg";
    case Method::kFisherRemoval: return "fisher-removal";
    case Method::kFisherForgetting: return "fisher-forgetting";
    case Method::kGradientAscent: return "gradient-ascent";
  }
  return "?";
}

GradientSource parse_gradient_source(const std::string& name) {
  if (name == "forget") return GradientSource::kForget;
  if (name == "retain") return GradientSource::kRetain;
  UNLEARN_THROW(ConfigError, "unknown gradient source '" << name << "' (forget or retain)");
}

NoiseForm parse_noise_form(const std::string& name) {
  if (name == "quartic-root") return NoiseForm::kQuarticRoot;
  if (name == "diagonal") return NoiseForm::kDiagonal;
  UNLEARN_THROW(ConfigError, "unknown noise form '" << name << "' (quartic-root or diagonal)");
}

std::string to_string(NoiseForm f) { return f == NoiseForm::kQuarticRoot ? "quartic-root" : "diagonal"; }

NewtonResult newton_update(const UnlearnProblem& pb, const NewtonOptions& opt,
                           const std::function<void(const CgIteration&)>& monitor) {
  UNLEARN_CHECK(pb.n_forget > 0 && pb.n_retain > 0, "newton_update: empty forget or retain set (n_f "
                                                        << pb.n_forget << ", n_r " << pb.n_retain << ")");
  UNLEARN_CHECK(opt.method != Method::kGradientAscent, "newton_update: gradient ascent is not a Newton method");
  NewtonResult res;
  // Right-hand side: (n_f / n_r) Δ, or -∇L_{D_r} (needs no stationarity).
  ShardedVector rhs;
  const double scale = static_cast<double>(pb.n_forget) / static_cast<double>(pb.n_retain);
  if (opt.gradient_source == GradientSource::kForget) {
    rhs = pb.forget_gradient.clone();
    rhs.scale(scale);
  } else {
    rhs = pb.retain_gradient.clone();
    rhs.scale(-1.0);
  }
  const double rhs_norm = rhs.norm();  // throws on NaN/Inf
  if (rhs_norm == 0.0) UNLEARN_THROW(Error, "the unlearning gradient is zero: nothing to remove");
  if (pb.full_gradient.size() > 0) res.stationarity_ratio = pb.full_gradient.norm() / (scale * pb.forget_gradient.norm());

  const bool fisher_method = opt.method != Method::kNewtonCg;
  if (fisher_method && !pb.fisher) UNLEARN_THROW(ConfigError, to_string(opt.method) << " needs a Fisher sample");
  if (fisher_method && !opt.fisher_by_cg) {
    pb.fisher->solve(opt.damping, rhs, res.update);  // exact: (F̂₀ + λI)⁻¹ rhs
    res.cg.status = CgStatus::kConvergedAtol;
  } else {
    std::unique_ptr<LinearOperator> fisher_op;
    LinearOperator* base = pb.curvature;
    if (fisher_method || !base) {
      UNLEARN_CHECK(pb.fisher, "newton_update: no curvature operator");
      fisher_op = std::make_unique<FisherOperator>(*pb.fisher);
      base = fisher_op.get();
    }
    DampedOperator A(*base, opt.damping);
    res.cg = solve_cg(A, rhs, res.update, opt.cg, monitor);
    if (res.cg.status == CgStatus::kDivergedNanOrInf) UNLEARN_THROW(Error, "CG diverged: NaN or Inf in the products");
  }
  res.update.scale(opt.step_scale);  // η
  res.step_norm = res.update.norm();

  if (opt.method == Method::kFisherForgetting && opt.noise_scale > 0) {
    const ShardedVector n = philox_normal(res.update, pb.placement, opt.seed, opt.request);
    ShardedVector noise;
    if (opt.noise_form == NoiseForm::kQuarticRoot) {
      pb.fisher->inverse_quartic_root(opt.damping, n, noise);
      noise.scale(std::pow(opt.noise_scale, 0.25));  // (μσ²)^{1/4} F̂^{-1/4} n
    } else {
      pb.fisher->inverse_sqrt_diagonal(opt.damping, n, noise);
      noise.scale(std::sqrt(opt.noise_scale));  // sqrt(α) (diag F̂₀ + λ)^{-1/2} n
    }
    res.noise_norm = noise.norm();
    std::tie(res.noise_inside, res.noise_outside) = pb.fisher->split_norms(noise);
    res.update.axpy(1.0, noise);
    res.noise = std::move(noise);
  }
  res.update_norm = res.update.norm();
  return res;
}

}  // namespace unlearn
