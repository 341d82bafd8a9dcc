// TP x DP equivalence of the model on the CPU at 1-4 ranks, both families (the check itself: layout_equivalence.h).
#include <gtest/gtest.h>

#include "layout_equivalence.h"

namespace unlearn::testing {
namespace {

class TpEquivalence : public ::testing::TestWithParam<FamilyCase> {};

TEST_P(TpEquivalence, LossGradientHvpGvpEqualSerialForEveryLayout) {
  expect_every_layout_matches_serial_cpu(GetParam().first, GetParam().second, "cpu");
}

INSTANTIATE_TEST_SUITE_P(Families, TpEquivalence, ::testing::ValuesIn(family_cases()), family_case_name);

}  // namespace
}  // namespace unlearn::testing
