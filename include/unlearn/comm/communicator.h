// The one collective interface model and solver code see: MPI, NCCL and local (size 1) backends.
// comm layer: depends on util and ATen only; never exposes <mpi.h> or <nccl.h>.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string_view>

namespace unlearn {

enum class ReduceOp { kSum, kAvg, kMax, kMin };
std::string_view to_string(ReduceOp op);

/// Supplies the device and stream NCCL works on. Debian's LibTorch has no CUDA headers, so the NCCL backend takes
/// a raw `cudaStream_t` (as void*) from this interface; only its LibTorch-CUDA implementation is device-only code.
class DeviceContext {
 public:
  virtual ~DeviceContext() = default;
  virtual int device_index() const = 0;  // CUDA ordinal this rank uses
  virtual void* stream() const = 0;      // cudaStream_t; nullptr means the legacy default stream
};

/// A collective over a fixed group: every rank of the group makes the same calls in the same order.
/// Operations work in place and are complete from the caller's view on return (NCCL: ordered on the stream of
/// the device context). Tensors must be contiguous; dtypes map through one table that throws on unsupported ones.
class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string_view backend_name() const = 0;  // "mpi" | "nccl" | "local"

  /// t <- op over ranks of t. kAvg needs a floating dtype.
  void all_reduce(at::Tensor& t, ReduceOp op);
  /// out (size() * in.numel() elements, contiguous) <- concatenation of every rank's `in`, rank order.
  void all_gather(const at::Tensor& in, at::Tensor& out);
  /// out (in.numel() / size() elements) <- block rank() of op over ranks of `in`.
  void reduce_scatter(const at::Tensor& in, at::Tensor& out, ReduceOp op);
  void broadcast(at::Tensor& t, int root);
  void barrier();
  /// Ranks with equal `color` form a new group ordered by (key, rank); color < 0 returns nullptr on that rank.
  virtual std::unique_ptr<Communicator> split(int color, int key) const = 0;
  /// Group of the ranks that share this rank's node (shared memory). Local: a copy of itself.
  virtual std::unique_ptr<Communicator> split_node_local() const = 0;

  /// Where the scalar helpers below put their one-element tensor: the host, except on a backend that takes device
  /// tensors only (NCCL: this rank's GPU).
  virtual at::Device scalar_device() const { return at::kCPU; }
  /// Host-scalar helpers for dot products, losses and statuses (float64 / int64 in and out).
  double all_reduce_scalar(double local, ReduceOp op = ReduceOp::kSum);
  std::int64_t all_reduce_scalar(std::int64_t local, ReduceOp op = ReduceOp::kSum);
  /// True on every rank iff `ok` is true on every rank.
  bool all_agree(bool ok);

 private:
  // The collectives of a backend; the public calls above wrap them to account their time (comm_usage()).
  virtual void do_all_reduce(at::Tensor& t, ReduceOp op) = 0;
  virtual void do_all_gather(const at::Tensor& in, at::Tensor& out) = 0;
  virtual void do_reduce_scatter(const at::Tensor& in, at::Tensor& out, ReduceOp op) = 0;
  virtual void do_broadcast(at::Tensor& t, int root) = 0;
  virtual void do_barrier() = 0;
};

/// What this process spent inside collectives since it started (every communicator together): host wall time
/// from call to return, so it includes waiting for the slowest rank; on NCCL only the enqueue (the stream runs on).
struct CommUsage {
  double seconds = 0;
  std::int64_t bytes = 0;  // payload of the calls (the tensor passed in)
  std::int64_t calls = 0;
};
CommUsage comm_usage();

/// Size-1 backend: every collective is the identity (all_gather/reduce_scatter copy). The default in unit tests.
std::unique_ptr<Communicator> make_local_communicator();

/// NCCL backend bootstrapped by broadcasting the ncclUniqueId over `bootstrap` (any backend, same group).
/// Throws ConfigError when the build has no NCCL (UNLEARN_HAS_NCCL unset) and CommError on NCCL/CUDA failures.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap,
                                                     std::shared_ptr<const DeviceContext> device);
/// Whether this build compiled the NCCL backend.
bool nccl_available_in_build();

namespace detail {
/// Shared precondition: contiguous, defined tensor. `what` names the operation in the message.
void check_collective_tensor(const at::Tensor& t, const char* what);
/// Preconditions of a reduction, checked before any communication so every rank throws together:
/// the tensor checks above, and a floating dtype for kAvg.
void check_reduction(const at::Tensor& t, ReduceOp op, const char* what);
}  // namespace detail

}  // namespace unlearn
