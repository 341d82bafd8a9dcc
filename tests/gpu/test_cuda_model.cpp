// The model and the solver on a CUDA device (float64) against the serial CPU values, at every TP x DP layout of the
// world: loss, gradient, H·v and G·v of both families (layout_equivalence.h); noise, per-document gradients, the
// Fisher store's products and CG (solver_layouts.h). Every rank uses the first GPU and the MPI backend, which
// stages device tensors through the host, so 2 ranks run on a one-GPU machine. Skipped (exit 77) without a CUDA
// device or with a LibTorch built without CUDA (Debian's).
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include "layout_equivalence.h"
#include "solver_layouts.h"

extern "C" const char* unlearn_test_skip_reason() {
  return at::hasCUDA() ? nullptr : "no CUDA device, or LibTorch was built without CUDA";
}

namespace unlearn::testing {
namespace {

class CudaModel : public ::testing::TestWithParam<FamilyCase> {};

TEST_P(CudaModel, LossGradientHvpGvpEqualSerialCpuForEveryLayout) {
  expect_every_layout_matches_serial_cpu(GetParam().first, GetParam().second, "cuda");
}

INSTANTIATE_TEST_SUITE_P(Families, CudaModel, ::testing::ValuesIn(family_cases()), family_case_name);

TEST(CudaSolver, NoiseFisherAndCgMatchSerialCpu) { expect_solver_layouts_match_serial_cpu("cuda"); }

}  // namespace
}  // namespace unlearn::testing
