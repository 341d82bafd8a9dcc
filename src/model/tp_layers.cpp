// TP building blocks (see tp_layers.h).
#include "unlearn/model/tp_layers.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <limits>

#include "unlearn/model/attention_kernels.h"
#include "unlearn/model/tp_mappings.h"

namespace unlearn {

at::Tensor vocab_parallel_embedding(const at::Tensor& tokens, const at::Tensor& weight_shard, Range vocab,
                                    Communicator& tp) {
  const at::Tensor flat = tokens.reshape(-1);
  const at::Tensor mine = flat.ge(vocab.start).logical_and(flat.lt(vocab.end()));
  const at::Tensor local = (flat - vocab.start).masked_fill(mine.logical_not(), 0);
  at::Tensor rows = weight_shard.index_select(0, local) * mine.unsqueeze(1).to(weight_shard.scalar_type());
  std::vector<std::int64_t> shape(tokens.sizes().begin(), tokens.sizes().end());
  shape.push_back(weight_shard.size(1));
  return reduce_from_tp(rows, tp).view(shape);
}

namespace {
// Row maximum over the whole vocabulary, on detached values.
at::Tensor global_row_max(const at::Tensor& logits_shard, Communicator& tp) {
  at::Tensor mx = std::get<0>(logits_shard.detach().max(1, true)).contiguous();
  tp.all_reduce(mx, ReduceOp::kMax);
  return mx;
}
}  // namespace

at::Tensor vocab_parallel_cross_entropy_sum(const at::Tensor& logits_shard, const at::Tensor& targets, Range vocab,
                                            Communicator& tp) {
  if (logits_shard.size(0) == 0) return (logits_shard * 0).sum();  // keeps the graph and dtype
  const at::Tensor shifted = logits_shard - global_row_max(logits_shard, tp);
  const at::Tensor sum_exp = reduce_from_tp(shifted.exp().sum(1), tp);
  const at::Tensor mine = targets.ge(vocab.start).logical_and(targets.lt(vocab.end()));
  const at::Tensor local = (targets - vocab.start).masked_fill(mine.logical_not(), 0);
  const at::Tensor picked = shifted.gather(1, local.unsqueeze(1)).squeeze(1) * mine.to(shifted.scalar_type());
  const at::Tensor target_logit = reduce_from_tp(picked, tp);  // shifted logit of the target, from its owner
  return (sum_exp.log() - target_logit).sum();
}

at::Tensor softmax_hessian_apply(const at::Tensor& logits_shard, const at::Tensor& r, Communicator& tp) {
  const at::Tensor z = logits_shard.detach();
  at::Tensor e = (z - global_row_max(z, tp)).exp();
  at::Tensor denom = e.sum(1, true).contiguous();
  tp.all_reduce(denom, ReduceOp::kSum);
  const at::Tensor p = e / denom;
  at::Tensor pr = (p * r).sum(1, true).contiguous();  // p·r over the whole vocabulary
  tp.all_reduce(pr, ReduceOp::kSum);
  return p * r - p * pr;
}

at::Tensor attention_bias(const at::Tensor& segments, at::ScalarType dtype) {
  const std::int64_t T = segments.size(1);
  const at::Tensor causal = at::ones({T, T}, segments.options().dtype(at::kBool)).tril();
  const at::Tensor same_doc = segments.unsqueeze(2).eq(segments.unsqueeze(1));  // [B, T(query), T(key)]
  // A negative segment is a shared prefix: every later position of the row sees it (scoring many continuations).
  const at::Tensor shared = segments.lt(0).unsqueeze(1);                          // [B, 1, T(key)]
  const at::Tensor allowed = same_doc.logical_or(shared).logical_and(causal).unsqueeze(1);
  return at::zeros(allowed.sizes(), segments.options().dtype(dtype))
      .masked_fill_(allowed.logical_not(), -std::numeric_limits<double>::infinity());
}

std::pair<at::Tensor, at::Tensor> rotary_tables(const at::Tensor& positions, std::int64_t head_dim, double theta,
                                                at::ScalarType dtype) {
  const auto opts = at::TensorOptions().dtype(dtype).device(positions.device());
  const at::Tensor j = at::arange(0, head_dim, 2, opts);
  const at::Tensor inv_freq = at::pow(theta, -j / static_cast<double>(head_dim));
  const at::Tensor angles = positions.to(dtype).unsqueeze(-1) * inv_freq;  // [B, T, hd/2]
  const at::Tensor emb = at::cat({angles, angles}, -1).unsqueeze(1);       // [B, 1, T, hd]
  return {emb.cos(), emb.sin()};
}

at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const std::int64_t half = x.size(-1) / 2;
  const at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// 0.5 (1 + tanh(z)) = sigmoid(2z): with k = 2 sqrt(2/pi), gelu_tanh(x) = x sigmoid(k (x + a x³)).
constexpr double kGeluK = 2.0 * 0.7978845608028654;
constexpr double kGeluA = 0.044715;

// gelu'(x) is ATen's gelu_backward kernel seeded with ones; only the second derivative is composed here.
// y'' = 2 s(1-s) k u' + x [s(1-s)(1-2s) (k u')² + s(1-s) k 6a x], s = sigmoid(k u), u = x + a x³.
at::Tensor gelu_second_derivative(const at::Tensor& x) {
  const at::Tensor x2 = x * x;
  const at::Tensor s = at::sigmoid(kGeluK * x * (1.0 + kGeluA * x2));
  const at::Tensor s1 = s * (1.0 - s);
  const at::Tensor ku = kGeluK * (1.0 + 3.0 * kGeluA * x2);
  return s1 * (2.0 * ku + x * ((1.0 - 2.0 * s) * ku * ku + (kGeluK * 6.0 * kGeluA) * x));
}

/// Entry `key` of a node's saved data, made by `make` on first use.
template <typename Make>
at::Tensor cached(AutogradContext* ctx, const char* key, Make make) {
  auto it = ctx->saved_data.find(key);
  if (it != ctx->saved_data.end()) return it->second.toTensor();
  at::Tensor t = make();
  ctx->saved_data[key] = t;
  return t;
}

at::Tensor gelu_first_derivative(const at::Tensor& x) { return at::gelu_backward(at::ones_like(x), x, "tanh"); }

// grad -> grad * gelu'(x), differentiable once more (what H·v needs); d1 = gelu'(x) is passed in by the GELU node
// that made this one (a constant: its gradient slot stays empty). Its backward multiplies by d1 and by
// grad·gelu''(x), which depends only on tensors of the graph: the first product computes it, later products on the
// same graph reuse it (two multiplies instead of ~20 elementwise passes and a tanh per product). Under create_graph
// (a third derivative) every term is recomputed from x and grad, so it stays differentiable.
struct GeluTanhGrad : public torch::autograd::Function<GeluTanhGrad> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& grad, const at::Tensor& d1) {
    ctx->save_for_backward({x, grad});
    ctx->saved_data["d1"] = d1;
    return grad * d1;
  }
  static variable_list backward(AutogradContext* ctx, variable_list gg) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &grad = saved[1];
    at::Tensor gx, ggrad;
    if (!gg[0].defined()) return {gx, ggrad, at::Tensor()};
    if (at::GradMode::is_enabled()) {
      if (ctx->needs_input_grad(0)) gx = gg[0] * grad * gelu_second_derivative(x);
      if (ctx->needs_input_grad(1)) ggrad = at::gelu_backward(gg[0], x, "tanh");
      return {gx, ggrad, at::Tensor()};
    }
    if (ctx->needs_input_grad(0)) gx = gg[0] * cached(ctx, "grad_d2", [&] { return grad * gelu_second_derivative(x); });
    if (ctx->needs_input_grad(1)) ggrad = gg[0] * ctx->saved_data["d1"].toTensor();
    return {gx, ggrad, at::Tensor()};
  }
};

// Every backward through a GELU node multiplies by d1 = gelu'(x): the node computes it once and keeps it, so the
// products of a Newton step (each a backward through the same forward graph) skip the tanh, and the GeluTanhGrad
// nodes of its double-backward graphs (H·v's, and G·v's Jᵀu) share the same tensor.
struct GeluTanh : public torch::autograd::Function<GeluTanh> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) {
    ctx->save_for_backward({x});
    return at::gelu(x, "tanh");
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor()};
    const at::Tensor x = ctx->get_saved_variables()[0];
    const at::Tensor d1 = cached(ctx, "d1", [&] { return gelu_first_derivative(x.detach()); });
    if (at::GradMode::is_enabled()) return {GeluTanhGrad::apply(x, grads[0], d1)};
    return {grads[0] * d1};
  }
};

}  // namespace

at::Tensor gelu_tanh(const at::Tensor& x) { return GeluTanh::apply(x); }

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  return x * at::rsqrt(x.pow(2).mean(-1, true) + eps) * weight;
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias) {
  const std::int64_t B = q.size(0), H = q.size(1), T = q.size(2), hd = q.size(3), KV = k.size(1);
  // Dense heads once here: the products' graph keeps these and re-reads them at every H·v and G·v.
  at::Tensor qq = q.contiguous(), kk = k.contiguous(), vv = v.contiguous(), mask = bias;
  if (KV != H) {  // each KV head serves H / KV consecutive query heads: grouped views, no copies
    const std::int64_t rep = H / KV;
    qq = qq.view({B, KV, rep, T, hd});
    kk = kk.unsqueeze(2).expand({B, KV, rep, T, hd});
    vv = vv.unsqueeze(2).expand({B, KV, rep, T, hd});
    mask = bias.unsqueeze(1);
  }
  // The scale rides in the product and the mask is added (0 or -inf): neither costs a pass over the scores in the
  // backward or double backward, where masked_fill and a scalar multiply each would.
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const at::Tensor probs = softmax_last_dim(batched_matmul(qq, kk.transpose(-2, -1), scale) + mask);
  return batched_matmul(probs, vv).view({B, H, T, hd}).transpose(1, 2).reshape({B, T, H * hd});
}

}  // namespace unlearn
