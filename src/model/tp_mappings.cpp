// The two TP mapping Functions. The communicator travels through the autograd context as an integer handle,
// since saved_data holds IValues; it outlives every graph built while the model exists.
#include "unlearn/model/tp_mappings.h"

#include <torch/csrc/autograd/custom_function.h>

namespace unlearn {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::int64_t handle_of(Communicator& c) { return static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(&c)); }
Communicator& comm_of(AutogradContext* ctx) {
  return *reinterpret_cast<Communicator*>(static_cast<std::intptr_t>(ctx->saved_data["comm"].toInt()));
}

struct ReduceFromTp;

struct CopyToTp : public torch::autograd::Function<CopyToTp> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, std::int64_t comm) {
    ctx->saved_data["comm"] = comm;
    return x;  // returned input: autograd wraps it as a view with this node as grad_fn
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

struct ReduceFromTp : public torch::autograd::Function<ReduceFromTp> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, std::int64_t comm) {
    ctx->saved_data["comm"] = comm;
    at::Tensor out = x.contiguous().clone();
    comm_of(ctx).all_reduce(out, ReduceOp::kSum);
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const std::int64_t comm = ctx->saved_data["comm"].toInt();
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor()};
    return {CopyToTp::apply(grads[0], comm), at::Tensor()};
  }
};

variable_list CopyToTp::backward(AutogradContext* ctx, variable_list grads) {
  const std::int64_t comm = ctx->saved_data["comm"].toInt();
  if (!grads[0].defined()) return {at::Tensor(), at::Tensor()};
  return {ReduceFromTp::apply(grads[0], comm), at::Tensor()};
}

}  // namespace

at::Tensor copy_to_tp(const at::Tensor& x, Communicator& group) {
  if (group.size() == 1) return x;  // nothing crosses ranks; keeps TP = 1 graphs identical to serial ones
  return CopyToTp::apply(x, handle_of(group));
}

at::Tensor reduce_from_tp(const at::Tensor& x, Communicator& group) {
  if (group.size() == 1) return x;
  return ReduceFromTp::apply(x, handle_of(group));
}

}  // namespace unlearn
