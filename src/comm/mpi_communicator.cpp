// MPI backend: blocking collectives on host memory, device tensors staged through the host.
#include "unlearn/comm/mpi_communicator.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <climits>
#include <sstream>

namespace unlearn {

namespace detail {
void throw_mpi_failure(int code, const char* call, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) std::snprintf(text, sizeof(text), "MPI error %d", code);
  std::ostringstream os;
  os << "MPI call failed: " << call << ": " << text << " (at " << file << ':' << line << ' ' << process_tag() << ')';
  throw CommError(os.str());
}
}  // namespace detail

MPI_Datatype to_mpi_type(at::ScalarType type, bool for_reduction) {
  switch (type) {
    case at::kFloat: return MPI_FLOAT;
    case at::kDouble: return MPI_DOUBLE;
    case at::kInt: return MPI_INT32_T;
    case at::kLong: return MPI_INT64_T;
    case at::kByte: return MPI_UINT8_T;
    case at::kChar: return MPI_INT8_T;
    case at::kHalf:
    case at::kBFloat16:
      if (!for_reduction) return MPI_UINT16_T;
      UNLEARN_THROW(CommError, "MPI backend cannot reduce " << type
                                                            << " (MPI has no 16-bit float type); reduce in float32");
    default: UNLEARN_THROW(CommError, "MPI backend does not support dtype " << type);
  }
}

namespace {

MPI_Op to_mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: return MPI_SUM;  // avg = sum, then a local division
    case ReduceOp::kMax: return MPI_MAX;
    case ReduceOp::kMin: return MPI_MIN;
  }
  return MPI_SUM;
}

/// Host view of a tensor for MPI: the tensor itself when it lives on the host (or MPI is GPU-aware),
/// else a host copy that `finish()` copies back.
class HostStage {
 public:
  HostStage(const at::Tensor& t, bool copy_in) : orig_(t) {
#ifdef UNLEARN_GPU_AWARE_MPI
    host_ = t;
    (void)copy_in;
#else
    if (t.is_cpu()) {
      host_ = t;
    } else {
      host_ = copy_in ? t.to(at::kCPU).contiguous() : at::empty(t.sizes(), t.options().device(at::kCPU));
    }
#endif
  }
  at::Tensor& host() { return host_; }
  void finish() {
    if (!host_.is_same(orig_)) orig_.copy_(host_);
  }

 private:
  at::Tensor orig_;  // a handle to the caller's tensor
  at::Tensor host_;
};

int checked_count(std::int64_t n, const char* what) {
  if (n > INT_MAX)
    UNLEARN_THROW(CommError, what << ": " << n << " elements exceed the MPI count limit; split the tensor");
  return static_cast<int>(n);
}

// Reductions go in chunks of at most this many bytes. Open MPI allocates a reduction's scratch buffers on every
// call; above glibc's mmap threshold (32 MiB, src/app/main.cpp) each call maps fresh pages and faults them in, so
// on this host one all-reduce of 128 MiB took 350-500 ms against 11.5 ms for 64 MiB (docs/benchmarks.md). Chunks
// of 16 MiB keep the scratch in the heap; per-call latency is microseconds, nothing at this size.
constexpr std::int64_t kChunkBytes = std::int64_t{16} << 20;
// Broadcasts need no scratch: chunks only keep the count within MPI's int.
constexpr std::int64_t kMaxChunk = std::int64_t{1} << 30;

/// Elements per block such that `blocks` blocks of them fit in one kChunkBytes chunk.
std::int64_t chunk_elements(std::int64_t blocks, std::size_t element_size) {
  return std::max<std::int64_t>(1, kChunkBytes / (blocks * static_cast<std::int64_t>(element_size)));
}

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm) {
    UNLEARN_CHECK_MPI(MPI_Comm_dup(comm, &comm_));
    UNLEARN_CHECK_MPI(MPI_Comm_rank(comm_, &rank_));
    UNLEARN_CHECK_MPI(MPI_Comm_size(comm_, &size_));
  }
  // Adopts a communicator that MPI_Comm_split just created.
  struct Adopt {};
  MpiCommunicator(MPI_Comm comm, Adopt) : comm_(comm) {
    UNLEARN_CHECK_MPI(MPI_Comm_rank(comm_, &rank_));
    UNLEARN_CHECK_MPI(MPI_Comm_size(comm_, &size_));
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string_view backend_name() const override { return "mpi"; }
  MPI_Comm comm() const { return comm_; }

  void do_all_reduce(at::Tensor& t, ReduceOp op) override {
    detail::check_reduction(t, op, "all_reduce");
    const MPI_Datatype type = to_mpi_type(t.scalar_type(), true);
    HostStage stage(t, true);
    auto* base = static_cast<char*>(stage.host().data_ptr());
    const std::int64_t n = t.numel();
    const std::size_t elem = t.element_size();
    const std::int64_t chunk = chunk_elements(1, elem);
    for (std::int64_t off = 0; off < n; off += chunk) {
      const int count = static_cast<int>(std::min(chunk, n - off));
      UNLEARN_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, base + off * elem, count, type, to_mpi_op(op), comm_));
    }
    if (op == ReduceOp::kAvg) stage.host().div_(size_);
    stage.finish();
  }

  void do_all_gather(const at::Tensor& in, at::Tensor& out) override {
    detail::check_collective_tensor(in, "all_gather");
    detail::check_collective_tensor(out, "all_gather");
    UNLEARN_CHECK(out.scalar_type() == in.scalar_type(), "all_gather: dtypes differ");
    UNLEARN_CHECK(out.numel() == in.numel() * size_, "all_gather: output has " << out.numel() << " elements, expected "
                                                                               << in.numel() * size_);
    const MPI_Datatype type = to_mpi_type(in.scalar_type(), false);
    // One call: a gather needs no reduction scratch, and in 16 MiB chunks it measured 1.4-2.3x slower (128 MiB:
    // 22 ms against 13-15 ms whole; docs/benchmarks.md).
    const int count = checked_count(in.numel(), "all_gather");
    HostStage src(in, true);
    HostStage dst(out, false);
    UNLEARN_CHECK_MPI(
        MPI_Allgather(src.host().data_ptr(), count, type, dst.host().data_ptr(), count, type, comm_));
    dst.finish();
  }

  void do_reduce_scatter(const at::Tensor& in, at::Tensor& out, ReduceOp op) override {
    detail::check_reduction(in, op, "reduce_scatter");
    detail::check_collective_tensor(out, "reduce_scatter");
    UNLEARN_CHECK(out.scalar_type() == in.scalar_type(), "reduce_scatter: dtypes differ");
    UNLEARN_CHECK(in.numel() == out.numel() * size_, "reduce_scatter: input has " << in.numel()
                                                                                  << " elements, expected "
                                                                                  << out.numel() * size_);
    const MPI_Datatype type = to_mpi_type(in.scalar_type(), true);
    const std::int64_t n = out.numel();
    HostStage src(in, true);
    HostStage dst(out, false);
    // Chunks (kChunkBytes) of every rank's block at once: columns [off, off + c) of the input seen as [size, n],
    // packed contiguous when they are not the whole input.
    const at::Tensor blocks = src.host().view({size_, n});
    auto* out_base = static_cast<char*>(dst.host().data_ptr());
    const std::int64_t chunk = chunk_elements(size_, in.element_size());
    for (std::int64_t off = 0; off < n; off += chunk) {
      const std::int64_t c = std::min(chunk, n - off);
      const at::Tensor send = c == n ? blocks : blocks.narrow(1, off, c).contiguous();
      UNLEARN_CHECK_MPI(MPI_Reduce_scatter_block(send.data_ptr(), out_base + off * out.element_size(),
                                                 checked_count(c, "reduce_scatter"), type, to_mpi_op(op), comm_));
    }
    if (op == ReduceOp::kAvg) dst.host().div_(size_);
    dst.finish();
  }

  void do_broadcast(at::Tensor& t, int root) override {
    detail::check_collective_tensor(t, "broadcast");
    UNLEARN_CHECK(root >= 0 && root < size_, "broadcast: root " << root << " out of range for size " << size_);
    const MPI_Datatype type = to_mpi_type(t.scalar_type(), false);
    HostStage stage(t, rank_ == root);
    auto* base = static_cast<char*>(stage.host().data_ptr());
    const std::int64_t n = t.numel();
    const std::size_t elem = t.element_size();
    for (std::int64_t off = 0; off < n; off += kMaxChunk) {
      const int count = static_cast<int>(std::min(kMaxChunk, n - off));
      UNLEARN_CHECK_MPI(MPI_Bcast(base + off * elem, count, type, root, comm_));
    }
    stage.finish();
  }

  void do_barrier() override { UNLEARN_CHECK_MPI(MPI_Barrier(comm_)); }

  std::unique_ptr<Communicator> split(int color, int key) const override {
    MPI_Comm sub = MPI_COMM_NULL;
    UNLEARN_CHECK_MPI(MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &sub));
    if (sub == MPI_COMM_NULL) return nullptr;
    return std::make_unique<MpiCommunicator>(sub, Adopt{});
  }

  std::unique_ptr<Communicator> split_node_local() const override {
    MPI_Comm sub = MPI_COMM_NULL;
    UNLEARN_CHECK_MPI(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &sub));
    return std::make_unique<MpiCommunicator>(sub, Adopt{});
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm) { return std::make_unique<MpiCommunicator>(comm); }

MPI_Comm native_mpi_comm(const Communicator& comm) {
  const auto* mpi = dynamic_cast<const MpiCommunicator*>(&comm);
  if (!mpi) UNLEARN_THROW(CommError, "an MPI communicator is required here, got backend '" << comm.backend_name() << "'");
  return mpi->comm();
}

}  // namespace unlearn
