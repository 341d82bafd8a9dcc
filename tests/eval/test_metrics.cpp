// Membership-inference metrics and the skew-normal fit on cases with known answers.
#include <gtest/gtest.h>

#include <boost/math/distributions/skew_normal.hpp>
#include <cmath>

#include "unlearn/eval/membership.h"
#include "unlearn/eval/skew_normal.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

TEST(RocAuc, SeparatedReversedAndTied) {
  EXPECT_DOUBLE_EQ(roc_auc({3, 4, 5}, {0, 1, 2}), 1.0);
  EXPECT_DOUBLE_EQ(roc_auc({0, 1}, {2, 3, 4}), 0.0);
  EXPECT_DOUBLE_EQ(roc_auc({1, 1}, {1, 1, 1}), 0.5);
  // Pairs (member, non-member): (2,1) win, (2,3) loss, (2,2) tie; (4,*) three wins: (3 + 1 + 0.5) / 6.
  EXPECT_DOUBLE_EQ(roc_auc({2, 4}, {1, 2, 3}), 4.5 / 6.0);
  EXPECT_THROW(roc_auc({}, {1}), ConfigError);
  EXPECT_THROW(roc_auc({NAN}, {1}), ConfigError);
}

TEST(RocAuc, BootstrapIsDeterministicAndCoversThePoint) {
  std::vector<double> m, n;
  for (int i = 0; i < 60; ++i) m.push_back(std::sin(i * 1.7) + 0.5), n.push_back(std::cos(i * 2.3));
  const AucInterval a = bootstrap_auc(m, n, 500, 7), b = bootstrap_auc(m, n, 500, 7), c = bootstrap_auc(m, n, 500, 8);
  EXPECT_EQ(a.lower, b.lower);
  EXPECT_EQ(a.upper, b.upper);
  EXPECT_NE(a.lower, c.lower);
  EXPECT_DOUBLE_EQ(a.auc, roc_auc(m, n));
  EXPECT_LT(a.lower, a.auc);
  EXPECT_GT(a.upper, a.auc);
  EXPECT_GT(a.upper - a.lower, 0.05);  // 60 + 60 points cannot pin an AUC to a few hundredths
  const AucInterval mean = bootstrap_mean({1, 2, 3, 4}, 200, 1);
  EXPECT_DOUBLE_EQ(mean.auc, 2.5);
  EXPECT_GE(mean.lower, 1.0);
  EXPECT_LE(mean.upper, 4.0);
}

TEST(MembershipScores, HandComputed) {
  const std::vector<double> nll{0.1, 2.0, 0.5, 4.0};
  EXPECT_DOUBLE_EQ(mia_loss_score(nll), -6.6 / 4);
  EXPECT_DOUBLE_EQ(mia_min_k_score(nll, 0.5), -3.0);  // the two least likely tokens: 4.0 and 2.0
  EXPECT_DOUBLE_EQ(mia_min_k_score(nll, 0.1), -4.0);  // at least one token
  EXPECT_THROW(mia_min_k_score(nll, 0.0), ConfigError);
  EXPECT_THROW(mia_loss_score({}), ConfigError);
  // Repetitive text compresses far better, so the same NLL gives a score further from zero.
  const std::string rep(400, 'a');
  std::string varied;
  std::uint32_t state = 12345;
  for (int i = 0; i < 400; ++i) varied += static_cast<char>('a' + ((state = state * 1103515245u + 12345u) >> 16) % 26);
  EXPECT_LT(zlib_compressed_size(rep), zlib_compressed_size(varied) / 4);
  EXPECT_LT(mia_zlib_score(nll, rep), mia_zlib_score(nll, varied));
}

/// n quantiles of a skew-normal at evenly spaced probabilities: a deterministic sample of the distribution.
std::vector<double> skew_normal_sample(double loc, double scale, double shape, int n) {
  const boost::math::skew_normal_distribution<double> d(loc, scale, shape);
  std::vector<double> x;
  for (int i = 0; i < n; ++i) x.push_back(boost::math::quantile(d, (i + 0.5) / n));
  return x;
}

TEST(SkewNormal, FitRecoversParametersAndMaximisesTheLikelihood) {
  const std::vector<double> x = skew_normal_sample(20.0, 3.0, 4.0, 2000);
  const SkewNormalFit f = fit_skew_normal(x);
  EXPECT_NEAR(f.location, 20.0, 0.1);
  EXPECT_NEAR(f.scale, 3.0, 0.1);
  EXPECT_NEAR(f.shape, 4.0, 0.5);
  EXPECT_GE(f.log_likelihood, skew_normal_log_likelihood(x, 20.0, 3.0, 4.0) - 1e-9);
  // Any small move lowers the likelihood: a local maximum.
  for (double h : {1e-3, -1e-3}) {
    EXPECT_LE(skew_normal_log_likelihood(x, f.location + h, f.scale, f.shape), f.log_likelihood);
    EXPECT_LE(skew_normal_log_likelihood(x, f.location, f.scale + h, f.shape), f.log_likelihood);
    EXPECT_LE(skew_normal_log_likelihood(x, f.location, f.scale, f.shape + h), f.log_likelihood);
  }
  const SkewNormalFit left = fit_skew_normal(skew_normal_sample(-5.0, 0.5, -3.0, 1000));
  EXPECT_NEAR(left.shape, -3.0, 0.5);
  EXPECT_THROW(fit_skew_normal({1, 1, 1}), ConfigError);
  EXPECT_THROW(fit_skew_normal({1, 2}), ConfigError);
}

TEST(SkewNormal, TailProbabilityAndExposure) {
  SkewNormalFit d;
  d.location = 30, d.scale = 4, d.shape = 3;
  const boost::math::skew_normal_distribution<double> ref(30, 4, 3);
  for (double x : {28.0, 30.0, 40.0})
    EXPECT_NEAR(skew_normal_log_cdf(d, x), std::log(boost::math::cdf(ref, x)), 1e-9) << x;
  // At P ~ 5e-17 the closed form Phi(z) - 2 T(z, alpha) cancels (Boost gives -37.58); scipy.integrate.quad of the
  // pdf (epsabs 0, epsrel 1e-12) gives -37.67566724060527.
  EXPECT_NEAR(skew_normal_log_cdf(d, 20.0), -37.67566724060527, 1e-8);
  // Across the switch to quadrature (P = 1e-6) the log-CDF stays continuous and increasing.
  double prev = -INFINITY;
  for (double x = 24.0; x <= 29.0; x += 0.05) {
    const double v = skew_normal_log_cdf(d, x);
    EXPECT_GT(v, prev) << x;
    if (prev > -INFINITY) {
      EXPECT_LT(v - prev, 2.0) << x;
    }
    prev = v;
  }
  // Deep in the tail, where the closed form underflows: the Gaussian tail bound of the alpha > 0 left tail.
  const double deep = skew_normal_log_cdf(d, 0.0);
  EXPECT_TRUE(std::isfinite(deep));
  EXPECT_LT(deep, -200.0);
  EXPECT_NEAR(extrapolated_exposure(d, 30.0), -std::log2(boost::math::cdf(ref, 30.0)), 1e-9);
  EXPECT_EQ(extrapolated_exposure(d, 1e6), 0.0);
}

}  // namespace
}  // namespace unlearn
