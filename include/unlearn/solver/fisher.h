// The empirical Fisher from per-document gradients (design 3.0, 3.2): F̂₀ = (1/N) UᵀU, its exact inverse on
// F̂₀ + λI by Woodbury (one Cholesky of the m x m system NλI + UUᵀ, in float64), and the Fisher Forgetting noise
// transform F̂^{-1/4} n. Rows are TP shards held by every DP replica (m x |θ| / TP per rank), or DP chunks of them
// (DpPartition, design 3.4: m x |θ| / (TP x DP)); the store only needs their group to sum dot products.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "unlearn/comm/dp_partition.h"
#include "unlearn/comm/sharded_vector.h"
#include "unlearn/model/transformer.h"

namespace unlearn {

class FisherStore {
 public:
  /// `rows`: gradients u_i of the per-document SUM loss; `total_tokens`: N, the target tokens of those documents.
  /// The rows are packed into one [m, n] matrix per entry (each row's entry freed once copied), so that U x, Uᵀ c
  /// and U Uᵀ are matrix products over column blocks converted to float64, not m separate dot products.
  FisherStore(std::vector<ShardedVector> rows, std::int64_t total_tokens);

  std::size_t size() const { return static_cast<std::size_t>(m_); }
  std::int64_t total_tokens() const { return n_; }

  /// y <- (1/N) Σ u_i <u_i, x>: one all-reduce of m numbers.
  void apply(const ShardedVector& x, ShardedVector& y) const;
  /// U x as m float64 numbers (one all-reduce).
  at::Tensor project(const ShardedVector& x) const;
  /// y <- Σ c_i u_i, plus alpha x when `x` is given (local; one pass, in float64, stored in the rows' dtype).
  void combine(const at::Tensor& c, ShardedVector& y, const ShardedVector* x = nullptr, double alpha = 0.0) const;
  /// W = U Uᵀ (m x m float64): one all-reduce of m² numbers, cached.
  const at::Tensor& gram() const;

  /// y <- (F̂₀ + λI)⁻¹ x = λ⁻¹ [x − Uᵀ (NλI + W)⁻¹ U x].
  void solve(double lambda, const ShardedVector& x, ShardedVector& y) const;
  /// y <- (F̂₀ + λI)^{-1/4} n = λ^{-1/4} n + Uᵀ Q diag(c) Qᵀ U n, W = Q diag(s²) Qᵀ, with
  /// c_k = λ^{-1/4} expm1(-¼ log1p(s_k² / (Nλ))) / s_k² (no cancellation as s_k → 0).
  void inverse_quartic_root(double lambda, const ShardedVector& n, ShardedVector& y) const;
  /// diag(F̂₀) = (1/N) Σ_i u_i ⊙ u_i, in the rows' dtype and layout.
  ShardedVector diagonal() const;
  /// y <- (diag(F̂₀) + λ)^{-1/2} ⊙ n, diag(F̂₀)_j = (1/N) Σ_i u_ij²: Golatkar et al.'s diagonal-Fisher noise shape
  /// (their variance clamp 1/(F_jj + ε) ≤ c is the damping here: the variance is at most 1/λ). Local, elementwise.
  void inverse_sqrt_diagonal(double lambda, const ShardedVector& n, ShardedVector& y) const;
  /// Norm of the component of x inside span(U), and outside it (for the report).
  std::pair<double, double> split_norms(const ShardedVector& x) const;

 private:
  /// float64 on the rows' device: the m-sized products (U x, the Gram) stay where the rows are.
  at::TensorOptions float64_options() const;
  /// Calls fn(t, column offset, U_t's column block in float64) for each block of entry t's matrix.
  template <typename Fn>
  void for_each_block(std::size_t t, Fn&& fn) const;

  std::vector<at::Tensor> u_;  // per entry: [m, numel of the entry], the rows' dtype
  std::vector<std::vector<std::int64_t>> shapes_;
  std::vector<ShardLayout> layout_;
  Communicator* group_ = nullptr;
  std::int64_t m_ = 0, n_;
  mutable at::Tensor gram_;
};

/// Where each entry of a vector sits in its global tensor: the global shape, the dimension the TP shard splits (-1:
/// whole) and where the shard starts. A DP chunk of the shard (DpPartition) adds its TP shard's shape and where the
/// chunk starts in the flattened shard.
struct ShardPlacement {
  std::vector<std::int64_t> global_shape;
  int shard_dim = -1;
  std::int64_t shard_start = 0;
  std::vector<std::int64_t> shard_shape;  // empty: the entry's own shape (a whole TP shard)
  std::int64_t flat_offset = 0;           // first element of the entry within the flattened TP shard
};
/// The placements of a model's parameter subset (whole TP shards).
std::vector<ShardPlacement> placement_of(const TransformerModel& model, const std::vector<std::size_t>& subset);
/// The placements of `partition`'s chunks of vectors placed as `whole`.
std::vector<ShardPlacement> slice_placement(const std::vector<ShardPlacement>& whole, const DpPartition& partition);

/// Standard normal noise shaped like `like`, from a counter-based Philox stream keyed by (seed, request, tensor
/// index) and the GLOBAL element index, so every rank layout (TP, DP chunks) draws the same global vector.
ShardedVector philox_normal(const ShardedVector& like, const std::vector<ShardPlacement>& placement,
                            std::uint64_t seed, std::uint64_t request);

}  // namespace unlearn
