// The local (size 1) backend through the shared conformance suite, the process grid on it, and the NCCL factory.
#include <gtest/gtest.h>

#include "comm_conformance.h"
#include "unlearn/comm/process_grid.h"
#include "unlearn/util/error.h"

namespace unlearn::testing {

std::unique_ptr<Communicator> make_backend(const std::string& name) {
  return name == "local" ? make_local_communicator() : nullptr;
}
at::Device backend_device(const std::string&) { return at::kCPU; }

INSTANTIATE_TEST_SUITE_P(Local, CommConformance, ::testing::Values("local"));

TEST(LocalGrid, TpOneIsTheOnlyLayout) {
  ProcessGrid grid(make_local_communicator(), 1);
  EXPECT_EQ(grid.tp_size(), 1);
  EXPECT_EQ(grid.dp_size(), 1);
  EXPECT_EQ(grid.node_local_rank(), 0);
  EXPECT_THROW(ProcessGrid(make_local_communicator(), 2), ConfigError);
  EXPECT_THROW(ProcessGrid(make_local_communicator(), 0), ConfigError);
}

TEST(GridValidation, MessagesNameTheProblem) {
  EXPECT_NO_THROW(validate_grid(12, 4));
  try {
    validate_grid(4, 3);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--tp 3 does not divide the world size 4"), std::string::npos) << e.what();
  }
  EXPECT_THROW(validate_grid(4, -1), ConfigError);
}

class NoDevice final : public DeviceContext {
 public:
  int device_index() const override { return 0; }
  void* stream() const override { return nullptr; }
};

TEST(NcclFactory, FailsClearlyWithoutNcclOrDevice) {
  auto boot = make_local_communicator();
  if (nccl_available_in_build()) {
    // Compiled in; on a machine without a GPU it must refuse with a CommError naming the missing device.
    try {
      auto c = make_nccl_communicator(*boot, std::make_shared<NoDevice>());
      GTEST_SKIP() << "a CUDA device is present; the gpu tests cover this backend";
    } catch (const CommError& e) {
      EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
    }
  } else {
    EXPECT_THROW(make_nccl_communicator(*boot, std::make_shared<NoDevice>()), ConfigError);
  }
}

}  // namespace unlearn::testing
