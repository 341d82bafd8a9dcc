// Rank-based exposure on hand-made score sets (design 3.5).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "unlearn/eval/exposure.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

TEST(Exposure, BestRankGivesLog2OfNPlusOne) {
  const std::vector<double> refs{10, 11, 12, 13, 14, 15, 16};  // N = 7
  const RankExposure r = rank_exposure(1.0, refs);
  EXPECT_EQ(r.rank, 1);
  EXPECT_DOUBLE_EQ(r.exposure, 3.0);  // log2(8)
}

TEST(Exposure, WorstRankGivesZero) {
  const std::vector<double> refs{10, 11, 12};
  const RankExposure r = rank_exposure(99.0, refs);
  EXPECT_EQ(r.rank, 4);
  EXPECT_DOUBLE_EQ(r.exposure, 0.0);
}

TEST(Exposure, MiddleRankAndUnsortedReferences) {
  const std::vector<double> refs{5, 1, 4, 2, 3, 7, 6};  // 3 references below 3.5
  const RankExposure r = rank_exposure(3.5, refs);
  EXPECT_EQ(r.rank, 4);
  EXPECT_DOUBLE_EQ(r.exposure, std::log2(8.0) - 2.0);
}

TEST(Exposure, TiesDoNotCountAgainstTheCanary) {
  const std::vector<double> refs{2, 2, 2, 1};
  const RankExposure r = rank_exposure(2.0, refs);  // only the 1 is strictly lower
  EXPECT_EQ(r.rank, 2);
  EXPECT_DOUBLE_EQ(r.exposure, std::log2(5.0) - 1.0);
  EXPECT_EQ(rank_exposure(1.0, refs).rank, 1);
}

TEST(Exposure, BatchMatchesSingle) {
  const std::vector<double> refs{0.5, 9, 3, 3, 7};
  const std::vector<double> canaries{0.1, 3, 3.1, 100};
  const auto all = rank_exposures(canaries, refs);
  ASSERT_EQ(all.size(), canaries.size());
  for (std::size_t i = 0; i < canaries.size(); ++i) {
    EXPECT_EQ(all[i].rank, rank_exposure(canaries[i], refs).rank);
    EXPECT_DOUBLE_EQ(all[i].exposure, rank_exposure(canaries[i], refs).exposure);
  }
  EXPECT_EQ(all[0].rank, 1);
  EXPECT_EQ(all[1].rank, 2);
  EXPECT_EQ(all[2].rank, 4);
  EXPECT_EQ(all[3].rank, 6);
}

TEST(Exposure, RejectsEmptyReferencesAndNonFiniteScores) {
  EXPECT_THROW(rank_exposure(1.0, {}), ConfigError);
  EXPECT_THROW(rank_exposure(std::numeric_limits<double>::quiet_NaN(), {1.0}), ConfigError);
  EXPECT_THROW(rank_exposure(1.0, {1.0, std::numeric_limits<double>::infinity()}), ConfigError);
}

}  // namespace
}  // namespace unlearn
