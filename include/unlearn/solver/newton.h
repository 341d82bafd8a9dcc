// Newton-type unlearning updates (design 3.0, 3.2): θ' = θ + η (n_f / n_r) A⁻¹ Δ with A = C + λI the damped
// curvature of the retain loss; Fisher Removal (Woodbury), Fisher Forgetting (plus F^-1/4 noise) and Newton-CG.
// The caller (app layer) prepares the problem from a model and data; this layer only does linear algebra.
#pragma once

#include <functional>
#include <string>

#include "unlearn/solver/cg.h"
#include "unlearn/solver/fisher.h"

namespace unlearn {

/// kGradientAscent (the baseline of Jang et al. 2022) is first-order and runs in the app layer, not newton_update.
enum class Method { kNewtonCg, kFisherRemoval, kFisherForgetting, kGradientAscent };
Method parse_method(const std::string& name);  // newton-cg | fisher-removal | fisher-forgetting | gradient-ascent
std::string to_string(Method m);

enum class GradientSource { kForget, kRetain };
GradientSource parse_gradient_source(const std::string& name);  // forget | retain

/// Everything a method needs at θ, independent of where it came from (a transformer, or a convex test model).
struct UnlearnProblem {
  ShardedVector forget_gradient;   // Δ = ∇L_{D_f}(θ), token mean over the forget set
  ShardedVector retain_gradient;   // ∇L_{D_r}(θ) on the retain sample
  ShardedVector full_gradient;     // ∇L_D(θ) for the stationarity ratio; may be empty (ratio not reported)
  std::int64_t n_forget = 0, n_retain = 0;
  LinearOperator* curvature = nullptr;  // undamped C of the retain loss (newton-cg)
  const FisherStore* fisher = nullptr;  // F̂₀ of the retain sample (fisher-*; newton-cg with curvature fisher)
  std::vector<ShardPlacement> placement;  // where each entry sits in its global tensor (noise)
};

/// Fisher Forgetting's noise: `quartic-root` (the paper, design 3.2): (μσ²)^{1/4} (F̂₀ + λI)^{-1/4} n;
/// `diagonal` (Golatkar et al. 2020): sqrt(α) (diag F̂₀ + λ)^{-1/2} n. `noise_scale` is μσ², or α.
enum class NoiseForm { kQuarticRoot, kDiagonal };
NoiseForm parse_noise_form(const std::string& name);  // quartic-root | diagonal
std::string to_string(NoiseForm f);

struct NewtonOptions {
  Method method = Method::kNewtonCg;
  double damping = 1e-3;   // λ
  double step_scale = 1.0; // η
  GradientSource gradient_source = GradientSource::kForget;
  CgOptions cg;
  bool fisher_by_cg = false;        // fisher-removal: CG on F̂₀ + λI instead of Woodbury (cross-check)
  double noise_scale = 0.0;         // fisher-forgetting: μσ² (quartic-root) or α (diagonal); 0: no noise
  NoiseForm noise_form = NoiseForm::kQuarticRoot;
  std::uint64_t seed = 0, request = 0;
};

struct NewtonResult {
  ShardedVector update;            // θ' − θ = η (step) + noise
  ShardedVector noise;             // fisher-forgetting's noise term (empty otherwise): the step is update − noise
  CgResult cg;                     // iterations 0 when solved directly (Woodbury)
  double update_norm = 0, step_norm = 0, noise_norm = 0, noise_inside = 0, noise_outside = 0;
  double stationarity_ratio = -1;  // ‖∇L_D‖ / ‖(n_f/n_r) Δ‖; -1 when not computed
};

/// Computes the update. Throws Error on a non-finite gradient or a zero forget gradient.
NewtonResult newton_update(const UnlearnProblem& problem, const NewtonOptions& options,
                           const std::function<void(const CgIteration&)>& monitor = {});

}  // namespace unlearn
