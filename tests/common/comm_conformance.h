// Communicator conformance suite shared by every backend. Each test executable defines make_backend() and
// instantiates the suite with the backends it has. Inputs are exact formulas of (rank, index), so every rank
// checks its own result locally (nccl-tests "verifiable" style).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "unlearn/comm/communicator.h"

namespace unlearn::testing {

/// Defined by each test executable: a fresh communicator over all ranks for the named backend, or nullptr
/// (the test is skipped) when the backend is not available here.
std::unique_ptr<Communicator> make_backend(const std::string& name);
/// Device the backend wants its tensors on.
at::Device backend_device(const std::string& name);

class CommConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    comm_ = make_backend(GetParam());
    if (!comm_) GTEST_SKIP() << "backend " << GetParam() << " not available here";
  }
  std::unique_ptr<Communicator> comm_;
};

}  // namespace unlearn::testing
