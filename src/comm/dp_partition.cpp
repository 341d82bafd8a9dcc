// DpPartition: slicing, all-gather and reduce-scatter of solver vectors over DP. Every entry is padded to DP equal
// chunks so that one packed buffer of Σ ceil(n_i / DP) elements per rank serves every entry in one collective.
#include "unlearn/comm/dp_partition.h"

#include <ATen/ATen.h>

#include "unlearn/util/error.h"

namespace unlearn {

DpPartition::DpPartition(const ShardedVector& like, Communicator& dp, Communicator& world)
    : dp_(dp), world_(world), tp_(like.group()), layout_(like.layout()) {
  UNLEARN_CHECK(like.size() > 0, "DpPartition: an empty vector");
  UNLEARN_CHECK(world.size() % dp.size() == 0, "DpPartition: world of " << world.size() << " ranks and DP of "
                                                                         << dp.size());
  const std::int64_t parts = dp.size(), me = dp.rank();
  options_ = like[0].options();
  for (std::size_t i = 0; i < like.size(); ++i) {
    UNLEARN_CHECK(like[i].scalar_type() == options_.dtype().toScalarType(),
                  "DpPartition: entries of different dtypes ('" << layout_[i].name << "')");
    shapes_.push_back(like[i].sizes().vec());
    const std::int64_t n = like[i].numel(), c = (n + parts - 1) / parts;
    const std::int64_t start = std::min(n, me * c), end = std::min(n, (me + 1) * c);
    numel_.push_back(n);
    chunk_.push_back(c);
    offset_.push_back(start);
    length_.push_back(end - start);
    chunk_total_ += c;
  }
}

void DpPartition::check(const ShardedVector& v, const char* what, bool chunks) const {
  UNLEARN_CHECK(v.size() == shapes_.size(), "DpPartition::" << what << ": " << v.size() << " entries, expected "
                                                            << shapes_.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const bool ok = chunks ? v[i].dim() == 1 && v[i].numel() == length_[i] : v[i].sizes().vec() == shapes_[i];
    UNLEARN_CHECK(ok, "DpPartition::" << what << ": entry '" << layout_[i].name << "' of shape " << v[i].sizes()
                                      << " is not " << (chunks ? "this rank's chunk" : "the whole TP shard"));
  }
}

ShardedVector DpPartition::slice(const ShardedVector& whole) const {
  check(whole, "slice", false);
  std::vector<at::Tensor> parts;
  parts.reserve(whole.size());
  for (std::size_t i = 0; i < whole.size(); ++i)
    parts.push_back(whole[i].detach().reshape(-1).narrow(0, offset_[i], length_[i]).clone());
  return ShardedVector(std::move(parts), layout_, &world_);
}

ShardedVector DpPartition::gather(const ShardedVector& part) const {
  check(part, "gather", true);
  // Each rank's block: its chunks, each padded to chunk_i. After the all-gather, entry i is the column block
  // [off_i, off_i + chunk_i) of the [DP, Σ chunk] buffer, read row by row and cut to n_i.
  at::Tensor block = at::zeros({chunk_total_}, options_);
  std::int64_t off = 0;
  for (std::size_t i = 0; i < part.size(); ++i) {
    block.narrow(0, off, length_[i]).copy_(part[i]);
    off += chunk_[i];
  }
  at::Tensor all = at::empty({parts() * chunk_total_}, options_);
  dp_.all_gather(block, all);
  const at::Tensor rows = all.view({parts(), chunk_total_});
  std::vector<at::Tensor> whole;
  whole.reserve(part.size());
  off = 0;
  for (std::size_t i = 0; i < part.size(); ++i) {
    whole.push_back(rows.narrow(1, off, chunk_[i]).reshape(-1).narrow(0, 0, numel_[i]).view(shapes_[i]).clone());
    off += chunk_[i];
  }
  return ShardedVector(std::move(whole), layout_, tp_);
}

ShardedVector DpPartition::reduce_scatter(const ShardedVector& partial) const {
  check(partial, "reduce_scatter", false);
  // Row d of the [DP, Σ chunk] buffer holds DP rank d's chunks of every entry (zero-padded).
  at::Tensor packed = at::zeros({parts(), chunk_total_}, options_);
  std::int64_t off = 0;
  for (std::size_t i = 0; i < partial.size(); ++i) {
    at::Tensor padded = at::zeros({parts() * chunk_[i]}, options_);
    padded.narrow(0, 0, numel_[i]).copy_(partial[i].detach().reshape(-1));
    packed.narrow(1, off, chunk_[i]).copy_(padded.view({parts(), chunk_[i]}));
    off += chunk_[i];
  }
  at::Tensor mine = at::empty({chunk_total_}, options_);
  dp_.reduce_scatter(packed.view(-1), mine, ReduceOp::kSum);
  std::vector<at::Tensor> parts_out;
  parts_out.reserve(partial.size());
  off = 0;
  for (std::size_t i = 0; i < partial.size(); ++i) {
    parts_out.push_back(mine.narrow(0, off, length_[i]).clone());
    off += chunk_[i];
  }
  return ShardedVector(std::move(parts_out), layout_, &world_);
}

}  // namespace unlearn
