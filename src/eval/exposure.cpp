// Rank-based exposure (see exposure.h).
#include "unlearn/eval/exposure.h"

#include <algorithm>
#include <cmath>

#include "unlearn/util/error.h"

namespace unlearn {

std::vector<RankExposure> rank_exposures(const std::vector<double>& canary_px, const std::vector<double>& reference_px) {
  if (reference_px.empty()) UNLEARN_THROW(ConfigError, "exposure needs at least one reference candidate");
  for (double x : reference_px)
    if (!std::isfinite(x)) UNLEARN_THROW(ConfigError, "exposure: a reference score is not finite");
  std::vector<double> sorted = reference_px;
  std::sort(sorted.begin(), sorted.end());
  const double n1 = static_cast<double>(sorted.size()) + 1;
  std::vector<RankExposure> out;
  out.reserve(canary_px.size());
  for (double px : canary_px) {
    if (!std::isfinite(px)) UNLEARN_THROW(ConfigError, "exposure: a canary score is not finite");
    RankExposure r;
    r.rank = 1 + (std::lower_bound(sorted.begin(), sorted.end(), px) - sorted.begin());  // #{ref < px}
    r.exposure = std::log2(n1) - std::log2(static_cast<double>(r.rank));
    out.push_back(r);
  }
  return out;
}

RankExposure rank_exposure(double canary_px, const std::vector<double>& reference_px) {
  return rank_exposures({canary_px}, reference_px).front();
}

}  // namespace unlearn
