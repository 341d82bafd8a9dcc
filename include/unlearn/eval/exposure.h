// Rank-based canary exposure (Carlini et al. 2019; design 3.5) as a pure function of scores.
// eval layer; no LibTorch needed for this part.
#pragma once

#include <cstdint>
#include <vector>

namespace unlearn {

struct RankExposure {
  std::int64_t rank = 0;  // 1 + #{references with Px < Px(canary)}: 1 .. N+1
  double exposure = 0;    // log2(N + 1) - log2(rank): log2(N+1) at rank 1, 0 at rank N+1
};

/// `canary_px` and `reference_px` are Px = sum over the secret's tokens of -log2 p(token | prefix, earlier secret
/// tokens): lower means more likely. Ties with the canary do not count against it (strict <). ConfigError when
/// there are no references or a score is not finite.
RankExposure rank_exposure(double canary_px, const std::vector<double>& reference_px);

/// The same for many canaries against one reference set (sorts the references once: O((C + N) log N)).
std::vector<RankExposure> rank_exposures(const std::vector<double>& canary_px, const std::vector<double>& reference_px);

}  // namespace unlearn
