// ZeRO-style partition of solver vectors over the data-parallel group (design 3.4): every DP replica holds the same
// TP shards, so each keeps only 1/DP of every entry. Dot products of the slices add up over the whole world; a
// curvature product all-gathers its input over DP and reduce-scatters the replicas' partial products (the traffic
// of the all-reduce it replaces). comm layer.
#pragma once

#include <cstdint>
#include <vector>

#include "unlearn/comm/sharded_vector.h"

namespace unlearn {

class DpPartition {
 public:
  /// `like`: a whole vector (this rank's TP shards, identical shapes on every DP replica); `dp`: the data-parallel
  /// group; `world`: the group whose ranks hold disjoint pieces (TP x DP). Both must outlive the partition.
  /// Entry i (n_i elements, flattened row-major) is cut into DP chunks of ceil(n_i / DP) elements; DP rank d keeps
  /// chunk d, which is shorter or empty at the end.
  DpPartition(const ShardedVector& like, Communicator& dp, Communicator& world);

  int parts() const { return dp_.size(); }
  /// Where this rank's chunk of entry i starts in the flattened TP shard, and how long it is.
  std::int64_t offset(std::size_t i) const { return offset_[i]; }
  std::int64_t length(std::size_t i) const { return length_[i]; }
  /// The TP shard's shape of entry i (a whole vector's).
  const std::vector<std::int64_t>& shape(std::size_t i) const { return shapes_[i]; }

  /// This rank's chunks of a whole vector, as 1-D copies (no communication).
  ShardedVector slice(const ShardedVector& whole) const;
  /// The whole vector from every replica's chunks: one all-gather over DP.
  ShardedVector gather(const ShardedVector& part) const;
  /// This rank's chunks of the sum over DP of every replica's whole `partial`: one reduce-scatter over DP.
  ShardedVector reduce_scatter(const ShardedVector& partial) const;

 private:
  /// `v` has an entry per layout entry, each whole (the TP shard's shape) or, with `chunks`, this rank's 1-D chunk.
  void check(const ShardedVector& v, const char* what, bool chunks) const;

  Communicator& dp_;
  Communicator& world_;
  Communicator* tp_;                        // the group of whole vectors
  std::vector<ShardLayout> layout_;
  std::vector<std::vector<std::int64_t>> shapes_;
  std::vector<std::int64_t> numel_, chunk_, offset_, length_;
  std::int64_t chunk_total_ = 0;           // Σ chunk_i: one rank's block of the packed collective buffers
  at::TensorOptions options_;
};

}  // namespace unlearn
