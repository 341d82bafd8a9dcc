// NCCL backend on raw device pointers and the stream of a DeviceContext (Debian's LibTorch has no CUDA headers).
// Compiled only with UNLEARN_HAS_NCCL; the fallback that throws lives in nccl_unavailable.cpp.
#include <cuda_runtime.h>
#include <nccl.h>

#include <ATen/ATen.h>

#include <cstring>
#include <sstream>

#include "unlearn/comm/communicator.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

[[noreturn]] void throw_nccl_failure(ncclResult_t rc, ncclComm_t comm, const char* call, const char* file, int line) {
  std::ostringstream os;
  os << "NCCL call failed: " << call << ": " << ncclGetErrorString(rc);
  const char* last = ncclGetLastError(comm);
  if (last && *last) os << " (" << last << ')';
  os << " (at " << file << ':' << line << ' ' << process_tag() << ')';
  throw CommError(os.str());
}

[[noreturn]] void throw_cuda_failure(cudaError_t rc, const char* call, const char* file, int line) {
  std::ostringstream os;
  os << "CUDA call failed: " << call << ": " << cudaGetErrorString(rc) << " (at " << file << ':' << line << ' '
     << process_tag() << ')';
  throw CommError(os.str());
}

#define UNLEARN_CHECK_NCCL(comm, call)                                                 \
  do {                                                                                 \
    const ncclResult_t unlearn_nccl_rc_ = (call);                                      \
    if (unlearn_nccl_rc_ != ncclSuccess)                                               \
      throw_nccl_failure(unlearn_nccl_rc_, (comm), #call, __FILE__, __LINE__);         \
  } while (0)

#define UNLEARN_CHECK_CUDA(call)                                                       \
  do {                                                                                 \
    const cudaError_t unlearn_cuda_rc_ = (call);                                       \
    if (unlearn_cuda_rc_ != cudaSuccess) throw_cuda_failure(unlearn_cuda_rc_, #call, __FILE__, __LINE__); \
  } while (0)

ncclDataType_t to_nccl_type(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return ncclFloat32;
    case at::kDouble: return ncclFloat64;
    case at::kHalf: return ncclFloat16;
    case at::kBFloat16: return ncclBfloat16;
    case at::kInt: return ncclInt32;
    case at::kLong: return ncclInt64;
    case at::kByte: return ncclUint8;
    case at::kChar: return ncclInt8;
    default: UNLEARN_THROW(CommError, "NCCL backend does not support dtype " << type);
  }
}

ncclRedOp_t to_nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kAvg: return ncclAvg;
    case ReduceOp::kMax: return ncclMax;
    case ReduceOp::kMin: return ncclMin;
  }
  return ncclSum;
}

void check_device(const at::Tensor& t, const char* what) {
  detail::check_collective_tensor(t, what);
  if (t.is_cpu()) UNLEARN_THROW(CommError, what << ": the NCCL backend needs device tensors, got a host tensor");
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(ncclComm_t comm, std::shared_ptr<const DeviceContext> device)
      : comm_(comm), device_(std::move(device)) {
    UNLEARN_CHECK_NCCL(comm_, ncclCommUserRank(comm_, &rank_));
    UNLEARN_CHECK_NCCL(comm_, ncclCommCount(comm_, &size_));
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string_view backend_name() const override { return "nccl"; }

  void do_all_reduce(at::Tensor& t, ReduceOp op) override {
    detail::check_reduction(t, op, "all_reduce");
    check_device(t, "all_reduce");
    UNLEARN_CHECK_NCCL(comm_, ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), to_nccl_type(t.scalar_type()),
                                            to_nccl_op(op), comm_, stream()));
  }
  void do_all_gather(const at::Tensor& in, at::Tensor& out) override {
    check_device(in, "all_gather");
    check_device(out, "all_gather");
    UNLEARN_CHECK(out.scalar_type() == in.scalar_type(), "all_gather: dtypes differ");
    UNLEARN_CHECK(out.numel() == in.numel() * size_, "all_gather: output has " << out.numel() << " elements, expected "
                                                                               << in.numel() * size_);
    UNLEARN_CHECK_NCCL(comm_, ncclAllGather(in.data_ptr(), out.data_ptr(), in.numel(), to_nccl_type(in.scalar_type()),
                                            comm_, stream()));
  }
  void do_reduce_scatter(const at::Tensor& in, at::Tensor& out, ReduceOp op) override {
    detail::check_reduction(in, op, "reduce_scatter");
    check_device(in, "reduce_scatter");
    check_device(out, "reduce_scatter");
    UNLEARN_CHECK(out.scalar_type() == in.scalar_type(), "reduce_scatter: dtypes differ");
    UNLEARN_CHECK(in.numel() == out.numel() * size_, "reduce_scatter: input has " << in.numel()
                                                                                  << " elements, expected "
                                                                                  << out.numel() * size_);
    UNLEARN_CHECK_NCCL(comm_, ncclReduceScatter(in.data_ptr(), out.data_ptr(), out.numel(),
                                                to_nccl_type(in.scalar_type()), to_nccl_op(op), comm_, stream()));
  }
  void do_broadcast(at::Tensor& t, int root) override {
    check_device(t, "broadcast");
    UNLEARN_CHECK(root >= 0 && root < size_, "broadcast: root " << root << " out of range for size " << size_);
    UNLEARN_CHECK_NCCL(comm_, ncclBroadcast(t.data_ptr(), t.data_ptr(), t.numel(), to_nccl_type(t.scalar_type()),
                                            root, comm_, stream()));
  }
  void do_barrier() override {
    // NCCL has no barrier: a one-element all-reduce, then wait for the stream so the host is synchronised too.
    void* buf = nullptr;
    UNLEARN_CHECK_CUDA(cudaMalloc(&buf, sizeof(float)));
    const ncclResult_t rc = ncclAllReduce(buf, buf, 1, ncclFloat32, ncclSum, comm_, stream());
    const cudaError_t sync = cudaStreamSynchronize(stream());
    cudaFree(buf);
    if (rc != ncclSuccess) throw_nccl_failure(rc, comm_, "ncclAllReduce (barrier)", __FILE__, __LINE__);
    if (sync != cudaSuccess) throw_cuda_failure(sync, "cudaStreamSynchronize (barrier)", __FILE__, __LINE__);
  }
  at::Device scalar_device() const override { return at::Device(at::kCUDA, device_->device_index()); }
  std::unique_ptr<Communicator> split(int color, int key) const override {
    ncclComm_t sub = nullptr;
    UNLEARN_CHECK_NCCL(comm_, ncclCommSplit(comm_, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, &sub, nullptr));
    if (!sub) return nullptr;
    return std::make_unique<NcclCommunicator>(sub, device_);
  }
  std::unique_ptr<Communicator> split_node_local() const override {
    // Ranks on one node share a host name: split by a 30-bit hash of it (the process grid takes node-local
    // ranks from MPI's shared-memory split; this exists for completeness of the interface).
    const std::string& host = process_host();
    const int color = static_cast<int>(std::hash<std::string>{}(host) & 0x3fffffff);
    return split(color, rank_);
  }

 private:
  cudaStream_t stream() const { return static_cast<cudaStream_t>(device_->stream()); }

  ncclComm_t comm_ = nullptr;
  std::shared_ptr<const DeviceContext> device_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

bool nccl_available_in_build() { return true; }

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap,
                                                     std::shared_ptr<const DeviceContext> device) {
  UNLEARN_CHECK(device != nullptr, "make_nccl_communicator: a device context is required");
  int count = 0;
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess || count == 0)
    UNLEARN_THROW(CommError, "NCCL backend: no CUDA device visible to this rank ("
                                 << (rc != cudaSuccess ? cudaGetErrorString(rc) : "0 devices") << ")");
  UNLEARN_CHECK_CUDA(cudaSetDevice(device->device_index()));

  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  if (bootstrap.rank() == 0) UNLEARN_CHECK_NCCL(nullptr, ncclGetUniqueId(&id));
  // The id travels as bytes over the bootstrap group (MPI on every real launch).
  at::Tensor bytes = at::empty({static_cast<std::int64_t>(sizeof(id))}, at::TensorOptions().dtype(at::kByte));
  std::memcpy(bytes.data_ptr(), &id, sizeof(id));
  bootstrap.broadcast(bytes, 0);
  std::memcpy(&id, bytes.data_ptr(), sizeof(id));

  ncclComm_t comm = nullptr;
  UNLEARN_CHECK_NCCL(nullptr, ncclCommInitRank(&comm, bootstrap.size(), id, bootstrap.rank()));
  return std::make_unique<NcclCommunicator>(comm, std::move(device));
}

}  // namespace unlearn
