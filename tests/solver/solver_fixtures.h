// Helpers of the solver tests: a model small enough to build its curvature matrices densely, and conversions
// between ShardedVectors (TP = 1) and flat tensors.
#pragma once

#include "../model/model_fixtures.h"
#include "unlearn/solver/fisher.h"
#include "unlearn/solver/linear_operator.h"

namespace unlearn::testing {

/// GPT-2 with a few hundred parameters: dense H, G and F take a few hundred products.
inline ModelConfig dense_config(Family family = Family::kGpt2) {
  ModelConfig c = tiny_config(family, 2);
  c.vocab_size = 11;
  c.d_model = 8;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = family == Family::kGpt2 ? 2 : 1;
  c.d_ff = 16;
  c.max_positions = 8;
  return c;
}

inline at::Tensor flatten(const ShardedVector& v) {
  std::vector<at::Tensor> parts;
  for (const auto& t : v.shards()) parts.push_back(t.reshape(-1));
  return at::cat(parts);
}

inline ShardedVector unflatten(const at::Tensor& flat, const ShardedVector& like) {
  ShardedVector out = like.zeros_like();
  std::int64_t off = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i].copy_(flat.narrow(0, off, out[i].numel()).view(out[i].sizes()));
    off += out[i].numel();
  }
  return out;
}

/// The dense matrix of `op` by applying it to every unit vector.
inline at::Tensor dense_matrix(LinearOperator& op, const ShardedVector& like) {
  const std::int64_t n = flatten(like).numel();
  at::Tensor M = at::empty({n, n}, at::kDouble);
  ShardedVector y;
  for (std::int64_t i = 0; i < n; ++i) {
    at::Tensor e = at::zeros({n}, at::kDouble);
    e[i] = 1.0;
    op.apply(unflatten(e, like), y);
    M.select(1, i).copy_(flatten(y));
  }
  return M;
}

/// Each row of make_batch(seed, rows, T) as a document of its own (one segment, targets inside it).
inline std::vector<Batch> documents(std::uint64_t seed, std::int64_t count, std::int64_t T, std::int64_t vocab) {
  std::vector<Batch> docs;
  for (std::int64_t i = 0; i < count; ++i) {
    Batch b = make_batch(seed + static_cast<std::uint64_t>(i), 1, T, vocab);
    b.segments.zero_();
    b.positions = at::arange(T, at::kLong).view({1, T});
    b.targets.fill_(-1);
    b.targets.narrow(1, 0, T - 1).copy_(b.tokens.narrow(1, 1, T - 1));
    docs.push_back(b);
  }
  return docs;
}

}  // namespace unlearn::testing
