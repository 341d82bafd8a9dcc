// A vector over the parameters of a tensor-parallel model: one shard tensor per parameter, each either sharded
// across the TP group or replicated on several TP ranks. The solver's only view of parameters. comm layer.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "unlearn/comm/communicator.h"

namespace unlearn {

/// Layout of one entry. `replicated`: every TP rank of some group holds the full, identical value (norm weights,
/// biases after a row-parallel reduction, KV weights shared by several TP ranks). `counted`: this rank's copy
/// contributes to global dot products (true for sharded entries, and on exactly one rank per replica group).
struct ShardLayout {
  std::string name;
  bool replicated = false;
  bool counted = true;
};

class ShardedVector {
 public:
  ShardedVector() = default;
  /// `group` is the group over which local pieces add up to the global vector: the TP group for whole TP shards,
  /// the world for shards split over DP as well (DpPartition). It must outlive the vector.
  ShardedVector(std::vector<at::Tensor> shards, std::vector<ShardLayout> layout, Communicator* group);

  std::size_t size() const { return shards_.size(); }
  at::Tensor& operator[](std::size_t i) { return shards_[i]; }
  const at::Tensor& operator[](std::size_t i) const { return shards_[i]; }
  const std::vector<at::Tensor>& shards() const { return shards_; }
  const std::vector<ShardLayout>& layout() const { return layout_; }
  Communicator* group() const { return group_; }

  /// A vector of zeros (or a deep copy) with this vector's layout.
  ShardedVector zeros_like() const;
  ShardedVector clone() const;

  /// Global dot product in float64, each replicated entry counted once; one all-reduce over the group.
  double dot(const ShardedVector& other) const;
  double norm() const;
  /// Local sums of <a, b> over counted entries (no communication), for callers that fuse reductions.
  double local_dot(const ShardedVector& other) const;

  void axpy(double alpha, const ShardedVector& x);  // this <- this + alpha * x
  void scale(double alpha);                         // this <- alpha * this
  void copy_from(const ShardedVector& x);           // this <- x (same layout)
  /// Number of global elements (replicated entries once); one all-reduce.
  std::int64_t global_numel() const;

 private:
  void check_compatible(const ShardedVector& other, const char* what) const;

  std::vector<at::Tensor> shards_;
  std::vector<ShardLayout> layout_;
  Communicator* group_ = nullptr;
};

}  // namespace unlearn
