// Membership-inference scores, ROC AUC and bootstrap intervals (see membership.h).
#include "unlearn/eval/membership.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "unlearn/data/rng.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

void check_scores(const std::vector<double>& v, const char* what) {
  if (v.empty()) UNLEARN_THROW(ConfigError, "AUC: no " << what);
  for (double x : v)
    if (!std::isfinite(x)) UNLEARN_THROW(ConfigError, "AUC: a score of the " << what << " is not finite");
}

void check_tokens(const std::vector<double>& nll) {
  if (nll.empty()) UNLEARN_THROW(ConfigError, "membership score of a document without scored tokens");
}

/// Percentile of sorted values by linear interpolation (numpy's default).
double percentile(const std::vector<double>& sorted, double q) {
  const double at = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(at));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (at - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

template <class Stat>
AucInterval bootstrap(Stat stat, double point, int resamples, double level) {
  if (resamples < 1) UNLEARN_THROW(ConfigError, "bootstrap: resamples must be at least 1");
  std::vector<double> values;
  values.reserve(static_cast<std::size_t>(resamples));
  for (int b = 0; b < resamples; ++b) values.push_back(stat(b));
  std::sort(values.begin(), values.end());
  AucInterval r;
  r.auc = point;
  r.level = level;
  r.resamples = resamples;
  r.lower = percentile(values, (1.0 - level) / 2.0);
  r.upper = percentile(values, 1.0 - (1.0 - level) / 2.0);
  return r;
}

std::vector<double> resample(const std::vector<double>& v, DataRng& rng) {
  std::vector<double> out(v.size());
  for (double& x : out) x = v[rng.below(v.size())];
  return out;
}

}  // namespace

double mia_loss_score(const std::vector<double>& token_nll) {
  check_tokens(token_nll);
  return -std::accumulate(token_nll.begin(), token_nll.end(), 0.0) / static_cast<double>(token_nll.size());
}

double mia_min_k_score(const std::vector<double>& token_nll, double k) {
  check_tokens(token_nll);
  if (!(k > 0 && k <= 1)) UNLEARN_THROW(ConfigError, "min-k%: k must be in (0, 1], got " << k);
  std::vector<double> v = token_nll;
  const auto n = std::max<std::size_t>(1, static_cast<std::size_t>(std::floor(k * static_cast<double>(v.size()))));
  std::partial_sort(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n), v.end(), std::greater<>());
  return -std::accumulate(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n), 0.0) / static_cast<double>(n);
}

std::size_t zlib_compressed_size(const std::string& bytes) {
  uLongf size = compressBound(static_cast<uLong>(bytes.size()));
  std::vector<Bytef> out(size);
  const int rc = compress2(out.data(), &size, reinterpret_cast<const Bytef*>(bytes.data()),
                           static_cast<uLong>(bytes.size()), 9);
  if (rc != Z_OK) UNLEARN_THROW(ConfigError, "zlib compress failed (" << rc << ")");
  return size;
}

double mia_zlib_score(const std::vector<double>& token_nll, const std::string& document_bytes) {
  check_tokens(token_nll);
  if (document_bytes.empty()) UNLEARN_THROW(ConfigError, "zlib score of an empty document");
  const double nll_bits = std::accumulate(token_nll.begin(), token_nll.end(), 0.0) / std::log(2.0);
  return -nll_bits / (8.0 * static_cast<double>(zlib_compressed_size(document_bytes)));
}

double roc_auc(const std::vector<double>& members, const std::vector<double>& non_members) {
  check_scores(members, "members");
  check_scores(non_members, "non-members");
  // Mann-Whitney U from mid-ranks of the pooled scores: ties count one half.
  std::vector<std::pair<double, bool>> all;
  for (double x : members) all.emplace_back(x, true);
  for (double x : non_members) all.emplace_back(x, false);
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  double rank_sum = 0;
  for (std::size_t i = 0; i < all.size();) {
    std::size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    const double mid = 0.5 * static_cast<double>(i + 1 + j);  // mean of ranks i+1 .. j
    for (std::size_t k = i; k < j; ++k)
      if (all[k].second) rank_sum += mid;
    i = j;
  }
  const double m = static_cast<double>(members.size()), n = static_cast<double>(non_members.size());
  return (rank_sum - m * (m + 1) / 2) / (m * n);
}

AucInterval bootstrap_auc(const std::vector<double>& members, const std::vector<double>& non_members, int resamples,
                          std::uint64_t seed, double level) {
  const double point = roc_auc(members, non_members);
  DataRng rng(seed, 0x61756321ull);
  return bootstrap([&](int) { return roc_auc(resample(members, rng), resample(non_members, rng)); }, point,
                   resamples, level);
}

AucInterval bootstrap_mean(const std::vector<double>& values, int resamples, std::uint64_t seed, double level) {
  if (values.empty()) UNLEARN_THROW(ConfigError, "bootstrap of the mean of no values");
  auto mean = [](const std::vector<double>& v) {
    return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  };
  DataRng rng(seed, 0x6d65616eull);
  return bootstrap([&](int) { return mean(resample(values, rng)); }, mean(values), resamples, level);
}

}  // namespace unlearn
