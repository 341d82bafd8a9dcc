// Building blocks of the TP transformer: vocab-parallel embedding and cross-entropy (twice differentiable),
// the document mask, rotary embeddings (Hugging Face rotate_half), RMSNorm and plain-math attention. model layer.
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>
#include <vector>

#include "unlearn/comm/communicator.h"
#include "unlearn/model/config.h"

namespace unlearn {

/// Rows of `weight_shard` ([V_local, d], vocabulary rows `vocab`) for the ids in `tokens`, summed over the TP group:
/// each id is found on exactly one rank, the others contribute zeros.
at::Tensor vocab_parallel_embedding(const at::Tensor& tokens, const at::Tensor& weight_shard, Range vocab,
                                    Communicator& tp);

/// Sum over rows of -log softmax(logits)[target] with logits split by vocabulary across the TP group.
/// The row maximum is all-reduced on detached values (a constant shift); the sum of exponentials and the target
/// logit go through reduce_from_tp, so the result stays differentiable twice. Identical on every TP rank.
at::Tensor vocab_parallel_cross_entropy_sum(const at::Tensor& logits_shard, const at::Tensor& targets, Range vocab,
                                            Communicator& tp);

/// The softmax cross-entropy Hessian in logit space applied to `r` (both [n, V_local] shards):
/// (diag(p) - p pᵀ) r per row, with p the full-vocabulary softmax. Not differentiable (values only).
at::Tensor softmax_hessian_apply(const at::Tensor& logits_shard, const at::Tensor& r, Communicator& tp);

/// [B, 1, T, T] additive mask in `dtype`: 0 where key s is visible from query t (s <= t and both in the same document,
/// or s in a shared prefix, segment < 0), -inf elsewhere. Built once per forward, added to every layer's scores.
at::Tensor attention_bias(const at::Tensor& segments, at::ScalarType dtype);

/// cos and sin tables [B, 1, T, head_dim] for positions [B, T]: angles pos * theta^(-2j/hd), repeated twice
/// (Hugging Face layout, paired with rotate_half).
std::pair<at::Tensor, at::Tensor> rotary_tables(const at::Tensor& positions, std::int64_t head_dim, double theta,
                                                at::ScalarType dtype);
/// x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1) over the halves of the last dimension.
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

/// GPT-2's tanh GELU, 0.5 x (1 + tanh(c (x + 0.044715 x³))), as an autograd Function with closed-form first and
/// second derivatives: LibTorch 1.13's own gelu double backward took a third of an H·v on a 5M model.
at::Tensor gelu_tanh(const at::Tensor& x);

/// GPT-2's LayerNorm over the last dimension, LN(x) ⊙ weight + bias, as an autograd Function whose double backward
/// is two fused passes per row (src/model/layer_norm.cpp derives it) instead of LibTorch's ~40 elementwise passes;
/// differentiable any number of times.
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

namespace detail {
/// For tests: layer_norm's double backward, (∂x, ∂weight, ∂dy) of <A, dx> + <C, dweight> with (dx, dweight) the
/// backward for incoming dy; fused kernel or the composite (differentiable) form.
std::vector<at::Tensor> layer_norm_double_backward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& dy,
                                                   const at::Tensor& A, const at::Tensor& C, double eps, bool fused);
}  // namespace detail

/// x * rsqrt(mean(x^2) + eps) * weight over the last dimension.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

/// Softmax attention by plain matrix products (fused kernels have no double backward). q: [B, H, T, hd];
/// k, v: [B, KV, T, hd] with H a multiple of KV (query head h uses KV head h / (H / KV)). Returns [B, T, H * hd].
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias);

}  // namespace unlearn
