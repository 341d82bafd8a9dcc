// Backend-independent parts of the Communicator, and the local (size 1) backend.
#include "unlearn/comm/communicator.h"

#include <ATen/ATen.h>

#include <chrono>

#include "unlearn/util/error.h"

namespace unlearn {

std::string_view to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kAvg: return "avg";
    case ReduceOp::kMax: return "max";
    case ReduceOp::kMin: return "min";
  }
  return "?";
}

namespace detail {
void check_collective_tensor(const at::Tensor& t, const char* what) {
  if (!t.defined()) UNLEARN_THROW(CommError, what << ": undefined tensor");
  if (!t.is_contiguous()) UNLEARN_THROW(CommError, what << ": tensor must be contiguous");
}
void check_reduction(const at::Tensor& t, ReduceOp op, const char* what) {
  check_collective_tensor(t, what);
  if (op == ReduceOp::kAvg && !at::isFloatingType(t.scalar_type()))
    UNLEARN_THROW(CommError, what << ": ReduceOp avg needs a floating dtype, got " << t.scalar_type());
}
}  // namespace detail

namespace {
CommUsage g_usage;
int g_depth = 0;  // a backend may build one collective from others: only the outermost call counts

class UsageScope {
 public:
  explicit UsageScope(std::int64_t bytes) : bytes_(bytes), start_(std::chrono::steady_clock::now()) { ++g_depth; }
  ~UsageScope() {
    if (--g_depth > 0) return;
    g_usage.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    g_usage.bytes += bytes_;
    ++g_usage.calls;
  }
  UsageScope(const UsageScope&) = delete;
  UsageScope& operator=(const UsageScope&) = delete;

 private:
  std::int64_t bytes_;
  std::chrono::steady_clock::time_point start_;
};

std::int64_t payload(const at::Tensor& t) { return t.defined() ? static_cast<std::int64_t>(t.nbytes()) : 0; }
}  // namespace

CommUsage comm_usage() { return g_usage; }

void Communicator::all_reduce(at::Tensor& t, ReduceOp op) {
  const UsageScope scope(payload(t));
  do_all_reduce(t, op);
}
void Communicator::all_gather(const at::Tensor& in, at::Tensor& out) {
  const UsageScope scope(payload(in));
  do_all_gather(in, out);
}
void Communicator::reduce_scatter(const at::Tensor& in, at::Tensor& out, ReduceOp op) {
  const UsageScope scope(payload(in));
  do_reduce_scatter(in, out, op);
}
void Communicator::broadcast(at::Tensor& t, int root) {
  const UsageScope scope(payload(t));
  do_broadcast(t, root);
}
void Communicator::barrier() {
  const UsageScope scope(0);
  do_barrier();
}

double Communicator::all_reduce_scalar(double local, ReduceOp op) {
  at::Tensor t = at::full({1}, local, at::TensorOptions().dtype(at::kDouble).device(scalar_device()));
  all_reduce(t, op);
  return t.item<double>();
}

std::int64_t Communicator::all_reduce_scalar(std::int64_t local, ReduceOp op) {
  if (op == ReduceOp::kAvg) UNLEARN_THROW(CommError, "all_reduce_scalar: avg of an integer is undefined");
  at::Tensor t = at::full({1}, local, at::TensorOptions().dtype(at::kLong).device(scalar_device()));
  all_reduce(t, op);
  return t.item<std::int64_t>();
}

bool Communicator::all_agree(bool ok) {
  return all_reduce_scalar(static_cast<std::int64_t>(ok ? 1 : 0), ReduceOp::kMin) == 1;
}

namespace {

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string_view backend_name() const override { return "local"; }

  void do_all_reduce(at::Tensor& t, ReduceOp op) override {
    detail::check_reduction(t, op, "all_reduce");  // the average of one value is itself
  }
  void do_all_gather(const at::Tensor& in, at::Tensor& out) override {
    detail::check_collective_tensor(in, "all_gather");
    detail::check_collective_tensor(out, "all_gather");
    UNLEARN_CHECK(out.numel() == in.numel(), "all_gather: output has " << out.numel() << " elements, expected "
                                                                       << in.numel());
    if (!out.is_same(in)) out.view(-1).copy_(in.view(-1));
  }
  void do_reduce_scatter(const at::Tensor& in, at::Tensor& out, ReduceOp op) override {
    detail::check_reduction(in, op, "reduce_scatter");
    detail::check_collective_tensor(out, "reduce_scatter");
    UNLEARN_CHECK(out.numel() == in.numel(), "reduce_scatter: output has " << out.numel()
                                                                           << " elements, expected " << in.numel());
    if (!out.is_same(in)) out.view(-1).copy_(in.view(-1));
  }
  void do_broadcast(at::Tensor& t, int root) override {
    detail::check_collective_tensor(t, "broadcast");
    UNLEARN_CHECK(root == 0, "broadcast: root " << root << " out of range for a group of size 1");
  }
  void do_barrier() override {}
  std::unique_ptr<Communicator> split(int color, int /*key*/) const override {
    if (color < 0) return nullptr;
    return std::make_unique<LocalCommunicator>();
  }
  std::unique_ptr<Communicator> split_node_local() const override { return std::make_unique<LocalCommunicator>(); }
};

}  // namespace

std::unique_ptr<Communicator> make_local_communicator() { return std::make_unique<LocalCommunicator>(); }

}  // namespace unlearn
