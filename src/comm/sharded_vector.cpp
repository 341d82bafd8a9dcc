// ShardedVector: local vector algebra plus the group reduction of dot products.
#include "unlearn/comm/sharded_vector.h"

#include <ATen/ATen.h>

#include <cmath>

#include "unlearn/util/error.h"

namespace unlearn {

ShardedVector::ShardedVector(std::vector<at::Tensor> shards, std::vector<ShardLayout> layout, Communicator* group)
    : shards_(std::move(shards)), layout_(std::move(layout)), group_(group) {
  UNLEARN_CHECK(shards_.size() == layout_.size(), "ShardedVector: " << shards_.size() << " shards but "
                                                                    << layout_.size() << " layout entries");
  UNLEARN_CHECK(group_ != nullptr, "ShardedVector: a communicator is required");
}

void ShardedVector::check_compatible(const ShardedVector& other, const char* what) const {
  UNLEARN_CHECK(other.shards_.size() == shards_.size(),
                what << ": vectors have " << shards_.size() << " and " << other.shards_.size() << " entries");
  for (std::size_t i = 0; i < shards_.size(); ++i)
    UNLEARN_CHECK(shards_[i].sizes() == other.shards_[i].sizes(),
                  what << ": entry '" << layout_[i].name << "' has shapes " << shards_[i].sizes() << " and "
                       << other.shards_[i].sizes());
}

ShardedVector ShardedVector::zeros_like() const {
  std::vector<at::Tensor> z;
  z.reserve(shards_.size());
  for (const auto& s : shards_) z.push_back(at::zeros_like(s));
  return ShardedVector(std::move(z), layout_, group_);
}

ShardedVector ShardedVector::clone() const {
  std::vector<at::Tensor> c;
  c.reserve(shards_.size());
  for (const auto& s : shards_) c.push_back(s.detach().clone());
  return ShardedVector(std::move(c), layout_, group_);
}

double ShardedVector::local_dot(const ShardedVector& other) const {
  check_compatible(other, "dot");
  double sum = 0.0;
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    if (!layout_[i].counted) continue;
    // float64 accumulation whatever the storage dtype.
    sum += at::dot(shards_[i].reshape(-1).to(at::kDouble), other.shards_[i].reshape(-1).to(at::kDouble))
               .item<double>();
  }
  return sum;
}

double ShardedVector::dot(const ShardedVector& other) const {
  const double d = group_->all_reduce_scalar(local_dot(other));  // one all-reduce of 8 bytes
  if (!std::isfinite(d)) UNLEARN_THROW(Error, "ShardedVector::dot: non-finite result (" << d << ")");
  return d;
}

double ShardedVector::norm() const { return std::sqrt(dot(*this)); }

void ShardedVector::axpy(double alpha, const ShardedVector& x) {
  check_compatible(x, "axpy");
  for (std::size_t i = 0; i < shards_.size(); ++i) shards_[i].add_(x.shards_[i], alpha);
}

void ShardedVector::scale(double alpha) {
  for (auto& s : shards_) s.mul_(alpha);
}

void ShardedVector::copy_from(const ShardedVector& x) {
  check_compatible(x, "copy_from");
  for (std::size_t i = 0; i < shards_.size(); ++i) shards_[i].copy_(x.shards_[i]);
}

std::int64_t ShardedVector::global_numel() const {
  std::int64_t n = 0;
  for (std::size_t i = 0; i < shards_.size(); ++i)
    if (layout_[i].counted) n += shards_[i].numel();
  return group_->all_reduce_scalar(n);
}

}  // namespace unlearn
