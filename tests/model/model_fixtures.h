// Tiny float64 models, batches with several documents per row, and norm-wise comparisons, shared by the model tests.
#pragma once

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "unlearn/model/curvature.h"
#include "unlearn/model/transformer.h"

namespace unlearn::testing {

/// 12 heads (so TP = 1, 2, 3, 4 all split them), vocabulary 67 (divisible by none of 2, 3, 4).
inline ModelConfig tiny_config(Family family, std::int64_t kv_heads = 12) {
  ModelConfig c;
  c.family = family;
  c.vocab_size = 67;
  c.d_model = 48;
  c.n_layers = 2;
  c.n_heads = 12;
  c.n_kv_heads = family == Family::kGpt2 ? 12 : kv_heads;
  c.d_ff = family == Family::kGpt2 ? 4 * c.d_model : 60;
  c.max_positions = 16;
  c.norm_eps = family == Family::kGpt2 ? 1e-5 : 1e-6;
  c.rope_theta = 10000.0;
  c.dtype = at::kDouble;
  return c;
}

/// Weights large enough that attention and softmax are far from uniform (curvature is then not trivial).
inline InitOptions test_init() { return InitOptions{0.15, 0.1, 0.1}; }

/// B rows of T tokens; each row holds 2 or 3 documents; the last token of every document and a few random
/// positions are not targets. Deterministic in `seed`.
inline Batch make_batch(std::uint64_t seed, std::int64_t B, std::int64_t T, std::int64_t vocab) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  Batch b;
  b.tokens = at::randint(vocab, {B, T}, gen, at::TensorOptions().dtype(at::kLong));
  b.segments = at::zeros({B, T}, at::kLong);
  b.positions = at::zeros({B, T}, at::kLong);
  b.targets = at::full({B, T}, -1, at::kLong);
  const at::Tensor coin = at::rand({B, T}, gen, at::TensorOptions().dtype(at::kDouble));
  const at::Tensor cuts = at::randint(1, T - 1, {B, 2}, gen, at::TensorOptions().dtype(at::kLong));
  for (std::int64_t r = 0; r < B; ++r) {
    const std::int64_t c1 = std::min(cuts[r][0].item<std::int64_t>(), cuts[r][1].item<std::int64_t>());
    const std::int64_t c2 = std::max(cuts[r][0].item<std::int64_t>(), cuts[r][1].item<std::int64_t>());
    std::int64_t seg = 0, pos = 0;
    for (std::int64_t t = 0; t < T; ++t) {
      if (t == c1 || (t == c2 && r % 2 == 0)) {
        ++seg;
        pos = 0;
      }
      b.segments[r][t] = seg;
      b.positions[r][t] = pos++;
    }
    for (std::int64_t t = 0; t + 1 < T; ++t)
      if (b.segments[r][t].item<std::int64_t>() == b.segments[r][t + 1].item<std::int64_t>() &&
          coin[r][t].item<double>() > 0.15)
        b.targets[r][t] = b.tokens[r][t + 1];
  }
  return b;
}

/// A global random tensor per parameter (keyed by seed and index), as a vector for `model`'s subset.
inline ShardedVector random_vector(const TransformerModel& model, const std::vector<std::size_t>& subset,
                                   std::uint64_t seed) {
  ShardedVector v = model.zeros(subset);
  for (std::size_t j = 0; j < subset.size(); ++j) {
    const Parameter& p = model.parameters()[subset[j]];
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed * 1000003ull + subset[j]);
    const at::Tensor g = at::randn(p.global_shape, gen, at::TensorOptions().dtype(at::kDouble));
    v[j].copy_(model.local_slice(p, g.to(v[j].options())));
  }
  return v;
}

inline double rel_err(const at::Tensor& a, const at::Tensor& b) {
  const double nb = b.norm().item<double>();
  const double nd = (a - b).norm().item<double>();
  return nb > 0 ? nd / nb : nd;
}

/// Worst per-tensor norm-wise relative error of `got` (this rank's shards) against the global `ref` (a TP = 1
/// vector of the same subset) sliced with `model`'s layout. A tensor whose reference vanishes (below 1e-9 of the
/// whole vector's norm: GPT-2's key bias has zero gradient, since softmax ignores a per-query constant) is measured
/// against the whole vector's norm instead, where a relative error means nothing.
inline double worst_rel_err(const ShardedVector& got, const ShardedVector& ref, const TransformerModel& model,
                            const std::vector<std::size_t>& subset, std::string* worst_name = nullptr) {
  double whole = 0;
  for (std::size_t j = 0; j < subset.size(); ++j) whole += ref[j].pow(2).sum().item<double>();
  whole = std::sqrt(whole);
  double worst = 0;
  for (std::size_t j = 0; j < subset.size(); ++j) {
    const at::Tensor expect = model.local_slice(model.parameters()[subset[j]], ref[j]);
    const at::Tensor mine = got[j].cpu();  // the reference is a CPU vector; `got` may live on a GPU
    const double nb = expect.norm().item<double>();
    const double e = nb > 1e-9 * whole ? rel_err(mine, expect) : (mine - expect).norm().item<double>() / whole;
    if (e > worst) {
      worst = e;
      if (worst_name) *worst_name = model.parameters()[subset[j]].name;
    }
  }
  return worst;
}

/// Replicated parameters hold identical values on every rank of the TP group (a hash would do; the sum of squares
/// of equal tensors is exactly equal).
inline void expect_replicated_identical(const TransformerModel& model, Communicator& tp) {
  for (const auto& p : model.parameters()) {
    if (!p.layout.replicated) continue;
    const double mine = p.value.detach().pow(2).sum().item<double>();
    EXPECT_EQ(tp.all_reduce_scalar(mine, ReduceOp::kMax), tp.all_reduce_scalar(mine, ReduceOp::kMin)) << p.name;
  }
}

}  // namespace unlearn::testing
