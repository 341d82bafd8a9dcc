// Attention's kernels with cheap first and second derivatives, for the products a Newton step repeats many times.
// - batched_matmul: many small [T, hd] x [hd, T] products, which LibTorch 1.13's CPU bmm runs one at a time, each
//   threaded by the BLAS and each paying ATen's per-call overhead (a 5M model's H·v spent a fifth of its time there
//   at a fifth of the machine's matrix-product rate).
// - softmax_last_dim: LibTorch's softmax double backward is ~14 elementwise passes over the [B, H, T, T] scores;
//   here it is one fused pass per row.
// model layer.
#pragma once

#include <ATen/core/Tensor.h>

#include <initializer_list>

namespace unlearn {

/// Whether the hand-written CPU kernels (here and in layer_norm.cpp) apply: every defined tensor on the CPU and of
/// one dtype, float32 or float64. Otherwise they fall back to LibTorch's operators.
bool cpu_kernels_apply(std::initializer_list<at::Tensor> tensors);

/// alpha · (a @ b) over equal leading batch dims: a [..., m, k], b [..., k, n] -> [..., m, n] (contiguous).
/// Any strides (transposed, head-interleaved or expanded views are read in place); differentiable any number of
/// times (its backward is made of the same product). float32 / float64 on CPU go straight to the BLAS, one matrix per
/// call, the batch spread over ATen's threads; other dtypes and devices use at::matmul.
at::Tensor batched_matmul(const at::Tensor& a, const at::Tensor& b, double alpha = 1.0);

/// softmax(s) over the last dimension, differentiable any number of times. With p = softmax(s) and dp the incoming
/// gradient, the backward is ds = p ⊙ (dp - <p, dp>) per row; its own backward (given g, the cotangent of ds) is
/// one fused row pass: ∂/∂dp = p ⊙ (g - <g, p>), ∂/∂p = g ⊙ (dp - <p, dp>) - dp <g, p>. Rows masked with -inf get
/// p = 0 there and gradient 0; a row must keep one finite entry.
at::Tensor softmax_last_dim(const at::Tensor& s);

}  // namespace unlearn
