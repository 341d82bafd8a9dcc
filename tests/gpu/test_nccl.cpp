// NCCL backend conformance on CUDA tensors. Exits 77 (CTest skip) when there is no CUDA device or when
// LibTorch itself has no CUDA (Debian's build), since the suite needs device tensors.
#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <mpi.h>

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include "comm_conformance.h"
#include "unlearn/comm/mpi_communicator.h"

namespace unlearn::testing {
namespace {
class DefaultStream final : public DeviceContext {
 public:
  explicit DefaultStream(int device) : device_(device) {}
  int device_index() const override { return device_; }
  void* stream() const override { return nullptr; }  // legacy default stream: ATen's default too

 private:
  int device_;
};
}  // namespace

std::unique_ptr<Communicator> make_backend(const std::string& name) {
  if (name != "nccl") return nullptr;
  auto boot = make_mpi_communicator(MPI_COMM_WORLD);
  auto node = boot->split_node_local();
  return make_nccl_communicator(*boot, std::make_shared<DefaultStream>(node->rank()));
}
at::Device backend_device(const std::string&) { return at::Device(at::kCUDA, 0); }

INSTANTIATE_TEST_SUITE_P(Nccl, CommConformance, ::testing::Values("nccl"));

}  // namespace unlearn::testing

extern "C" const char* unlearn_test_skip_reason() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) return "no CUDA device";
  return at::hasCUDA() ? nullptr : "LibTorch was built without CUDA";
}
