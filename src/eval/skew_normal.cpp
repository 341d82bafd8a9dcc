// Skew-normal maximum likelihood and tail probabilities (see skew_normal.h).
#include "unlearn/eval/skew_normal.h"

#include <algorithm>
#include <array>
#include <boost/math/distributions/skew_normal.hpp>
#include <boost/math/quadrature/exp_sinh.hpp>
#include <cmath>
#include <limits>
#include <numeric>

#include "unlearn/util/error.h"

namespace unlearn {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// ln Phi(t): erfc is accurate down to t = -37 (Phi ~ 1e-300); below, the asymptotic series, exact to double there.
double log_normal_cdf(double t) {
  if (t > -37.0) return std::log(0.5 * std::erfc(-t / std::sqrt(2.0)));
  const double t2 = t * t;
  const double series = 1.0 - 1.0 / t2 + 3.0 / (t2 * t2) - 15.0 / (t2 * t2 * t2);
  return -0.5 * t2 - std::log(-t) - 0.5 * std::log(2.0 * M_PI) + std::log(series);
}

/// ln pdf at standardised z: ln 2 - ln omega + ln phi(z) + ln Phi(alpha z).
double log_pdf(double z, double log_scale, double shape) {
  return std::log(2.0) - log_scale - 0.5 * z * z - 0.5 * std::log(2.0 * M_PI) + log_normal_cdf(shape * z);
}

using Point = std::array<double, 3>;  // xi, ln omega, alpha

/// Nelder-Mead (Lagarias et al. 1998 coefficients) from `start` with initial steps `step`; minimises f.
template <class F>
Point nelder_mead(F&& f, Point start, const Point& step, int max_evals, int& evals, double& best) {
  std::array<Point, 4> p;
  std::array<double, 4> v;
  p[0] = start;
  for (int i = 0; i < 3; ++i) {
    p[i + 1] = start;
    p[i + 1][i] += step[i];
  }
  for (int i = 0; i < 4; ++i) v[i] = f(p[i]), ++evals;
  auto combine = [](const Point& a, const Point& b, double t) {  // a + t (b - a)
    Point r;
    for (int i = 0; i < 3; ++i) r[i] = a[i] + t * (b[i] - a[i]);
    return r;
  };
  for (int n = 0; n < max_evals; ++n) {
    std::array<int, 4> order{0, 1, 2, 3};
    std::sort(order.begin(), order.end(), [&](int a, int b) { return v[a] < v[b]; });
    std::array<Point, 4> ps;
    std::array<double, 4> vs;
    for (int i = 0; i < 4; ++i) ps[i] = p[order[i]], vs[i] = v[order[i]];
    p = ps, v = vs;
    double size = 0;
    for (int i = 1; i < 4; ++i)
      for (int k = 0; k < 3; ++k) size = std::max(size, std::abs(p[i][k] - p[0][k]));
    if (std::abs(v[3] - v[0]) <= 1e-14 * (1.0 + std::abs(v[0])) && size < 1e-10) break;
    Point centroid{0, 0, 0};
    for (int i = 0; i < 3; ++i)
      for (int k = 0; k < 3; ++k) centroid[k] += p[i][k] / 3.0;
    const Point r = combine(centroid, p[3], -1.0);
    const double fr = f(r);
    ++evals;
    if (fr < v[0]) {
      const Point e = combine(centroid, p[3], -2.0);
      const double fe = f(e);
      ++evals;
      if (fe < fr) p[3] = e, v[3] = fe;
      else p[3] = r, v[3] = fr;
      continue;
    }
    if (fr < v[2]) {
      p[3] = r, v[3] = fr;
      continue;
    }
    const bool outside = fr < v[3];
    const Point c = combine(centroid, outside ? r : p[3], 0.5);
    const double fc = f(c);
    ++evals;
    if (fc < (outside ? fr : v[3])) {
      p[3] = c, v[3] = fc;
      continue;
    }
    for (int i = 1; i < 4; ++i) p[i] = combine(p[0], p[i], 0.5), v[i] = f(p[i]), ++evals;
  }
  const int b = static_cast<int>(std::min_element(v.begin(), v.end()) - v.begin());
  best = v[b];
  return p[b];
}

}  // namespace

double skew_normal_log_likelihood(const std::vector<double>& x, double location, double scale, double shape) {
  if (!(scale > 0)) return -kInf;
  const double ls = std::log(scale);
  double sum = 0;
  for (double xi : x) sum += log_pdf((xi - location) / scale, ls, shape);
  return sum;
}

SkewNormalFit fit_skew_normal(const std::vector<double>& x) {
  if (x.size() < 3) UNLEARN_THROW(ConfigError, "skew-normal fit: needs at least 3 points, got " << x.size());
  for (double v : x)
    if (!std::isfinite(v)) UNLEARN_THROW(ConfigError, "skew-normal fit: a point is not finite");
  const double n = static_cast<double>(x.size());
  const double mean = std::accumulate(x.begin(), x.end(), 0.0) / n;
  double var = 0;
  for (double v : x) var += (v - mean) * (v - mean);
  const double sd = std::sqrt(var / n);
  if (!(sd > 0)) UNLEARN_THROW(ConfigError, "skew-normal fit: the points have no spread");
  // Standardised data keep the three parameters on one scale; the fit maps back at the end.
  std::vector<double> z(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) z[i] = (x[i] - mean) / sd;
  auto nll = [&](const Point& p) {
    const double ll = skew_normal_log_likelihood(z, p[0], std::exp(p[1]), p[2]);
    return std::isfinite(ll) ? -ll : kInf;
  };
  SkewNormalFit fit;
  double best = kInf;
  Point best_p{0, 0, 0};
  // Moment-matched starts (unit variance, zero mean) over a range of shapes: the likelihood is multi-modal in alpha.
  for (double shape : {-8.0, -3.0, -1.0, 0.0, 1.0, 3.0, 8.0}) {
    const double delta = shape / std::sqrt(1.0 + shape * shape);
    const double omega = 1.0 / std::sqrt(1.0 - 2.0 * delta * delta / M_PI);
    Point p{-omega * delta * std::sqrt(2.0 / M_PI), std::log(omega), shape};
    double v = nll(p);
    // Restart from the optimum until it stops improving: Nelder-Mead can stall on a degenerate simplex.
    for (int round = 0; round < 20; ++round) {
      double nv = 0;
      const Point q = nelder_mead(nll, p, {0.1, 0.1, std::max(0.5, 0.1 * std::abs(p[2]))}, 4000, fit.evaluations, nv);
      const bool improved = nv < v - 1e-12 * (1.0 + std::abs(v));
      if (nv <= v) p = q, v = nv;
      if (!improved) break;
    }
    if (v < best) best = v, best_p = p;
  }
  fit.location = mean + sd * best_p[0];
  fit.scale = sd * std::exp(best_p[1]);
  fit.shape = best_p[2];
  fit.log_likelihood = skew_normal_log_likelihood(x, fit.location, fit.scale, fit.shape);
  return fit;
}

double skew_normal_log_cdf(const SkewNormalFit& d, double x) {
  const boost::math::skew_normal_distribution<double> dist(d.location, d.scale, d.shape);
  const double p = boost::math::cdf(dist, x);
  if (p > 1e-6) return std::log(p);
  // Lower tail: ln P = ln pdf(x) + ln int_0^inf pdf(x - u) / pdf(x) du, the ratio bounded, so nothing underflows.
  const double ls = std::log(d.scale);
  const double at_x = log_pdf((x - d.location) / d.scale, ls, d.shape);
  if (!std::isfinite(at_x)) return -kInf;
  auto ratio = [&](double u) { return std::exp(log_pdf((x - u - d.location) / d.scale, ls, d.shape) - at_x); };
  boost::math::quadrature::exp_sinh<double> integrator;
  const double integral = integrator.integrate(ratio, 0.0, kInf);
  return at_x + std::log(integral);
}

double extrapolated_exposure(const SkewNormalFit& d, double px) {
  return std::max(0.0, -skew_normal_log_cdf(d, px) / std::log(2.0));
}

}  // namespace unlearn
