// Exposure by extrapolation (Carlini et al. 2019, section 4.3; design 3.5): fit a skew-normal distribution to the
// reference candidates' Px by maximum likelihood, then exposure = -log2 P(X <= Px(canary)). Unlike the rank
// exposure it is not capped at log2(N + 1). eval layer, no LibTorch.
#pragma once

#include <vector>

namespace unlearn {

/// Skew-normal with location xi, scale omega > 0 and shape alpha (Azzalini): pdf 2/omega phi(z) Phi(alpha z),
/// z = (x - xi) / omega.
struct SkewNormalFit {
  double location = 0, scale = 1, shape = 0;
  double log_likelihood = 0;  // of the fitted sample, natural log
  int evaluations = 0;        // of the log-likelihood, over all restarts
};

/// Log-likelihood of `x` under the distribution (natural log); -inf for scale <= 0.
double skew_normal_log_likelihood(const std::vector<double>& x, double location, double scale, double shape);

/// Three-parameter maximum-likelihood fit: Nelder-Mead on (xi, log omega, alpha) from moment-matched starts at
/// several shapes, each polished by restarts until the likelihood stops improving. ConfigError for fewer than 3
/// points, a non-finite point, or a sample with no spread. Deterministic.
SkewNormalFit fit_skew_normal(const std::vector<double>& x);

/// ln P(X <= x), accurate far into the lower tail (numerical integration where the closed form loses precision).
double skew_normal_log_cdf(const SkewNormalFit& d, double x);

/// -log2 P(X <= px): the extrapolated exposure of a candidate with score px (bits, >= 0).
double extrapolated_exposure(const SkewNormalFit& d, double px);

}  // namespace unlearn
