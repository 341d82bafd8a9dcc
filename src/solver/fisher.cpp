// Empirical Fisher store: products, Woodbury inverse, inverse quartic root, counter-based noise. The rows live as one
// [m, n] matrix per entry; every product runs over column blocks converted to float64 (design 3.3: float64 dots).
#include "unlearn/solver/fisher.h"

#include <ATen/ATen.h>
#include <ATen/core/PhiloxRNGEngine.h>

#include <cmath>

#include "unlearn/util/error.h"

namespace unlearn {

namespace {
/// Elements per float64 block. Host: 2 MiB, small enough to stay in cache between its conversion and its product.
/// GPU: 128 MiB, since each block costs a few kernel launches (measured on an H200 with 2 MiB blocks: the Woodbury
/// product with 8 rows of a 28.6M-parameter model took 1.4 H·v, nearly all of it launches; docs/gpu.md).
constexpr std::int64_t kHostBlockElements = 1 << 18, kDeviceBlockElements = 1 << 24;
}  // namespace

FisherStore::FisherStore(std::vector<ShardedVector> rows, std::int64_t total_tokens) : n_(total_tokens) {
  UNLEARN_CHECK(!rows.empty(), "FisherStore: no per-document gradients");
  UNLEARN_CHECK(n_ > 0, "FisherStore: the documents hold no target tokens");
  m_ = static_cast<std::int64_t>(rows.size());
  layout_ = rows[0].layout();
  group_ = rows[0].group();
  for (std::size_t t = 0; t < layout_.size(); ++t) {
    shapes_.push_back(rows[0][t].sizes().vec());
    at::Tensor u = at::empty({m_, rows[0][t].numel()}, rows[0][t].options());
    for (std::int64_t i = 0; i < m_; ++i) {
      at::Tensor& entry = rows[static_cast<std::size_t>(i)][t];
      u[i].copy_(entry.reshape(-1));
      entry = at::Tensor();  // the row's copy is no longer needed: peak memory stays one store plus one entry
    }
    u_.push_back(std::move(u));
  }
}

at::TensorOptions FisherStore::float64_options() const {
  return u_.empty() ? at::TensorOptions().dtype(at::kDouble) : u_.front().options().dtype(at::kDouble);
}

template <typename Fn>
void FisherStore::for_each_block(std::size_t t, Fn&& fn) const {
  const std::int64_t budget = u_[t].is_cpu() ? kHostBlockElements : kDeviceBlockElements;
  const std::int64_t cols = u_[t].size(1), block = std::max<std::int64_t>(1024, budget / m_);
  for (std::int64_t c = 0; c < cols; c += block) {
    const std::int64_t w = std::min(block, cols - c);
    fn(c, u_[t].narrow(1, c, w).to(at::kDouble));
  }
}

at::Tensor FisherStore::project(const ShardedVector& x) const {
  at::Tensor ux = at::zeros({m_}, float64_options());
  for (std::size_t t = 0; t < u_.size(); ++t) {
    if (!layout_[t].counted) continue;
    const at::Tensor xt = x[t].reshape(-1);
    for_each_block(t, [&](std::int64_t c, const at::Tensor& block) {
      ux.add_(at::mv(block, xt.narrow(0, c, block.size(1)).to(at::kDouble)));
    });
  }
  group_->all_reduce(ux, ReduceOp::kSum);  // m numbers, one all-reduce
  return ux;
}

void FisherStore::combine(const at::Tensor& c, ShardedVector& y, const ShardedVector* x, double alpha) const {
  std::vector<at::Tensor> out;
  out.reserve(u_.size());
  for (std::size_t t = 0; t < u_.size(); ++t) {
    at::Tensor yt = at::empty({u_[t].size(1)}, u_[t].options());
    const at::Tensor xt = x ? (*x)[t].reshape(-1) : at::Tensor();
    for_each_block(t, [&](std::int64_t col, const at::Tensor& block) {
      const std::int64_t w = block.size(1);
      at::Tensor part = at::mv(block.t(), c);  // Σ_i c_i u_i on this block, in float64
      if (x) part.add_(xt.narrow(0, col, w).to(at::kDouble), alpha);
      yt.narrow(0, col, w).copy_(part);
    });
    out.push_back(yt.view(shapes_[t]));
  }
  y = ShardedVector(std::move(out), layout_, group_);
}

void FisherStore::apply(const ShardedVector& x, ShardedVector& y) const {
  combine(project(x) / static_cast<double>(n_), y);  // (1/N) Uᵀ (U x)
}

const at::Tensor& FisherStore::gram() const {
  if (!gram_.defined()) {
    gram_ = at::zeros({m_, m_}, float64_options());
    for (std::size_t t = 0; t < u_.size(); ++t)
      if (layout_[t].counted)
        for_each_block(t, [&](std::int64_t, const at::Tensor& block) { gram_.addmm_(block, block.t()); });
    group_->all_reduce(gram_, ReduceOp::kSum);  // m² numbers, one all-reduce
  }
  return gram_;
}

void FisherStore::solve(double lambda, const ShardedVector& x, ShardedVector& y) const {
  UNLEARN_CHECK(lambda > 0, "Fisher removal needs damping λ > 0, got " << lambda);
  const std::int64_t m = m_;
  const at::Tensor K = gram() + static_cast<double>(n_) * lambda * at::eye(m, gram().options());  // NλI + W
  const at::Tensor L = at::linalg_cholesky(K);
  const at::Tensor c = at::cholesky_solve(project(x).view({m, 1}), L).view({m});  // (NλI + W)⁻¹ U x
  combine(c / -lambda, y, &x, 1.0 / lambda);  // λ⁻¹ (x − Uᵀ c) in one pass over U and x
}

void FisherStore::inverse_quartic_root(double lambda, const ShardedVector& n, ShardedVector& y) const {
  UNLEARN_CHECK(lambda > 0, "Fisher forgetting needs damping λ > 0, got " << lambda);
  const auto [s2_dev, Q] = at::linalg_eigh(gram());  // W = Q diag(s²) Qᵀ, ascending
  const at::Tensor s2 = s2_dev.cpu();                    // m numbers, read element by element below
  const double root = std::pow(lambda, -0.25), nl = static_cast<double>(n_) * lambda;
  at::Tensor c = at::empty_like(s2);
  const auto* sp = s2.data_ptr<double>();
  auto* cp = c.data_ptr<double>();
  for (std::int64_t k = 0; k < s2.numel(); ++k) {
    const double s = std::max(sp[k], 0.0);  // eigh can return tiny negatives for a rank-deficient W
    // ((λ + s/N)^{-1/4} − λ^{-1/4}) / s = λ^{-1/4} expm1(-¼ log1p(s / Nλ)) / s, and -λ^{-1/4} / (4Nλ) as s → 0.
    cp[k] = s > 1e-300 ? root * std::expm1(-0.25 * std::log1p(s / nl)) / s : -root / (4.0 * nl);
  }
  const at::Tensor coeff = at::matmul(Q, c.to(Q.device()) * at::matmul(Q.t(), project(n)));  // Q diag(c) Qᵀ U n
  combine(coeff, y, &n, root);  // λ^{-1/4} n + Uᵀ coeff
}

ShardedVector FisherStore::diagonal() const {
  std::vector<at::Tensor> out;
  for (std::size_t t = 0; t < u_.size(); ++t) {
    at::Tensor diag = at::empty({u_[t].size(1)}, float64_options());
    for_each_block(t, [&](std::int64_t c, const at::Tensor& block) {
      diag.narrow(0, c, block.size(1)).copy_(block.pow(2).sum(0));  // Σ_i u_ij², in float64
    });
    out.push_back((diag / static_cast<double>(n_)).to(u_[t].scalar_type()).view(shapes_[t]));
  }
  return ShardedVector(std::move(out), layout_, group_);
}

void FisherStore::inverse_sqrt_diagonal(double lambda, const ShardedVector& n, ShardedVector& y) const {
  UNLEARN_CHECK(lambda > 0, "diagonal Fisher noise needs damping λ > 0, got " << lambda);
  const ShardedVector diag = diagonal();
  y = n.clone();
  for (std::size_t t = 0; t < y.size(); ++t) y[t].div_((diag[t] + lambda).sqrt_());
}

std::pair<double, double> FisherStore::split_norms(const ShardedVector& x) const {
  // Projection onto span(U): Uᵀ W⁺ U x (pseudo-inverse: W may be singular).
  const at::Tensor coeff = at::matmul(at::linalg_pinv(gram(), 1e-12, true), project(x));
  ShardedVector inside;
  combine(coeff, inside);
  ShardedVector outside = x.clone();
  outside.axpy(-1.0, inside);
  return {inside.norm(), outside.norm()};
}

namespace {

std::uint64_t mix(std::uint64_t a, std::uint64_t b) {  // splitmix64-style combination of two keys
  std::uint64_t z = a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// One standard normal from the Philox stream (key, counter = global element index), by Box-Muller on two
/// 53-bit uniforms.
double philox_gaussian(std::uint64_t key, std::uint64_t element) {
  at::philox_engine eng(key, element, 0);
  auto u53 = [&eng] {
    const std::uint64_t hi = eng(), lo = eng();
    return (static_cast<double>(((hi << 32) | lo) >> 11) + 0.5) * (1.0 / 9007199254740992.0);  // (0, 1)
  };
  const double u1 = u53(), u2 = u53();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

}  // namespace

std::vector<ShardPlacement> placement_of(const TransformerModel& model, const std::vector<std::size_t>& subset) {
  std::vector<ShardPlacement> out;
  for (std::size_t i : subset) {
    const Parameter& p = model.parameters()[i];
    ShardPlacement pl;
    pl.global_shape = p.global_shape;
    pl.shard_dim = p.shard_dim;
    pl.shard_start = p.shard_start;
    out.push_back(std::move(pl));
  }
  return out;
}

std::vector<ShardPlacement> slice_placement(const std::vector<ShardPlacement>& whole, const DpPartition& partition) {
  std::vector<ShardPlacement> out = whole;
  for (std::size_t t = 0; t < out.size(); ++t) {
    out[t].shard_shape = partition.shape(t);
    out[t].flat_offset = partition.offset(t);
  }
  return out;
}

ShardedVector philox_normal(const ShardedVector& like, const std::vector<ShardPlacement>& placement,
                            std::uint64_t seed, std::uint64_t request) {
  UNLEARN_CHECK(placement.size() == like.size(), "philox_normal: placement of " << placement.size() << " entries for "
                                                                                << like.size());
  ShardedVector out = like.zeros_like();
  for (std::size_t t = 0; t < like.size(); ++t) {
    const ShardPlacement& pl = placement[t];
    const std::uint64_t key = mix(mix(seed, request), t);
    const std::vector<std::int64_t> shard = pl.shard_shape.empty() ? like[t].sizes().vec() : pl.shard_shape;
    const auto dims = static_cast<std::int64_t>(shard.size());
    UNLEARN_CHECK(dims == static_cast<std::int64_t>(pl.global_shape.size()),
                  "philox_normal: entry " << t << " has " << dims << " dimensions, its global tensor "
                                          << pl.global_shape.size());
    at::Tensor buf = at::empty({like[t].numel()}, at::TensorOptions().dtype(at::kDouble));
    auto* dst = buf.data_ptr<double>();
    // Walk the local elements in row-major order of the TP shard from flat_offset, mapping each to its global
    // flat index.
    std::vector<std::int64_t> idx(static_cast<std::size_t>(dims), 0);
    for (std::int64_t d = dims - 1, rest = pl.flat_offset; d >= 0; --d) {
      idx[static_cast<std::size_t>(d)] = rest % shard[static_cast<std::size_t>(d)];
      rest /= shard[static_cast<std::size_t>(d)];
    }
    const std::int64_t n = buf.numel();
    for (std::int64_t e = 0; e < n; ++e) {
      std::uint64_t global = 0;
      for (std::int64_t d = 0; d < dims; ++d) {
        const std::int64_t g = idx[static_cast<std::size_t>(d)] + (d == pl.shard_dim ? pl.shard_start : 0);
        global = global * static_cast<std::uint64_t>(pl.global_shape[static_cast<std::size_t>(d)]) +
                 static_cast<std::uint64_t>(g);
      }
      dst[e] = philox_gaussian(key, global);
      for (std::int64_t d = dims - 1; d >= 0; --d) {  // next local multi-index
        if (++idx[static_cast<std::size_t>(d)] < shard[static_cast<std::size_t>(d)]) break;
        idx[static_cast<std::size_t>(d)] = 0;
      }
    }
    out[t].copy_(buf.view(like[t].sizes()));
  }
  return out;
}

}  // namespace unlearn
