// Layout independence of the solver on the CPU at 1-4 ranks (the check itself: solver_layouts.h).
#include <gtest/gtest.h>

#include "solver_layouts.h"

namespace unlearn::testing {
namespace {

TEST(SolverLayouts, NoiseFisherAndCgMatchSerial) { expect_solver_layouts_match_serial_cpu("cpu"); }

}  // namespace
}  // namespace unlearn::testing
