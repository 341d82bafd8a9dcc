// Process grid on MPI: every valid TP for this world size, group membership, and invalid layouts; the DP partition
// of solver vectors (design 3.4) on every grid.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/util/accumulate.h>

#include "unlearn/comm/dp_partition.h"
#include "unlearn/comm/mpi_communicator.h"
#include "unlearn/comm/process_grid.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

std::shared_ptr<Communicator> world() { return make_mpi_communicator(MPI_COMM_WORLD); }

TEST(ProcessGrid, EveryDividingTpGivesContiguousTpGroups) {
  const auto w = world();
  const int p = w->size(), me = w->rank();
  for (int tp = 1; tp <= p; ++tp) {
    if (p % tp != 0) continue;
    ProcessGrid g(w, tp);
    EXPECT_EQ(g.tp_size(), tp);
    EXPECT_EQ(g.dp_size(), p / tp);
    EXPECT_EQ(g.tp_rank(), me % tp) << "tp " << tp;
    EXPECT_EQ(g.dp_rank(), me / tp) << "tp " << tp;
    // TP group = ranks [tp*dp_rank, tp*dp_rank + tp): the sum of world ranks is known.
    const std::int64_t first = static_cast<std::int64_t>(tp) * (me / tp);
    EXPECT_EQ(g.tp().all_reduce_scalar(static_cast<std::int64_t>(me)), tp * first + tp * (tp - 1) / 2);
    // DP group = ranks with the same tp_rank.
    std::int64_t dp_sum = 0;
    for (int r = me % tp; r < p; r += tp) dp_sum += r;
    EXPECT_EQ(g.dp().all_reduce_scalar(static_cast<std::int64_t>(me)), dp_sum);
    // One node here: the node-local group is the world.
    EXPECT_EQ(g.node_local_size(), p);
    EXPECT_EQ(g.node_local_rank(), me);
    EXPECT_FALSE(g.describe().empty());
  }
}

TEST(ProcessGrid, NonDividingTpFailsOnEveryRankWithoutCommunicating) {
  const auto w = world();
  const int p = w->size();
  for (int tp : {0, -2, p + 1, 2 * p}) {
    if (tp > 0 && p % tp == 0) continue;
    try {
      ProcessGrid g(w, tp);
      ADD_FAILURE() << "tp " << tp << " accepted at world size " << p;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("--tp"), std::string::npos);
    }
  }
  if (p == 3 || p == 4) {
    const int bad = p == 3 ? 2 : 3;
    EXPECT_THROW(ProcessGrid(w, bad), ConfigError);
  }
  // Still in step: a collective after the failures completes on all ranks.
  EXPECT_EQ(w->all_reduce_scalar(std::int64_t{1}), p);
}

// Entries of awkward sizes (empty chunks when an entry has fewer elements than DP, a 0-d scalar, a remainder), one
// replicated over TP and counted on TP rank 0 only. Values are small integers, so sums are exact in float64.
TEST(DpPartition, SliceGatherReduceScatterAndDotsOnEveryGrid) {
  const auto w = world();
  const int p = w->size();
  for (int tp = 1; tp <= p; ++tp) {
    if (p % tp != 0) continue;
    SCOPED_TRACE("tp " + std::to_string(tp));
    ProcessGrid g(w, tp);
    const std::vector<std::vector<std::int64_t>> shapes{{1}, {7, 3}, {}, {2}, {13}, {4, 2, 3}};
    std::vector<at::Tensor> shards;
    std::vector<ShardLayout> layout;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      const bool replicated = i == 3;
      // Same on every DP replica; different per TP rank unless replicated.
      const double base = 100.0 * static_cast<double>(i) + (replicated ? 0.0 : 10.0 * g.tp_rank());
      shards.push_back(at::arange(c10::multiply_integers(shapes[i]), at::kDouble).add(base).view(shapes[i]));
      layout.push_back({"e" + std::to_string(i), replicated, !replicated || g.tp_rank() == 0});
    }
    const ShardedVector v(shards, layout, &g.tp());
    const DpPartition part(v, g.dp(), g.world());
    EXPECT_EQ(part.parts(), g.dp_size());
    const ShardedVector s = part.slice(v);
    for (std::size_t i = 0; i < v.size(); ++i) {
      // The chunks tile the entry: lengths sum to its size over DP, each at its offset.
      EXPECT_EQ(g.dp().all_reduce_scalar(part.length(i)), v[i].numel()) << layout[i].name;
      EXPECT_TRUE(s[i].equal(v[i].reshape(-1).narrow(0, part.offset(i), part.length(i)))) << layout[i].name;
    }
    const ShardedVector back = part.gather(s);
    for (std::size_t i = 0; i < v.size(); ++i) EXPECT_TRUE(back[i].equal(v[i])) << layout[i].name;
    EXPECT_EQ(back.group(), &g.tp());
    EXPECT_EQ(s.group(), &g.world());
    // Dots: the slices over the world equal the whole vectors over TP, replicated entries counted once.
    EXPECT_DOUBLE_EQ(s.dot(s), v.dot(v));
    EXPECT_EQ(s.global_numel(), v.global_numel());
    // Reduce-scatter of (dp_rank + 1) v: every chunk is (Σ_d (d + 1)) v.
    ShardedVector partial = v.clone();
    partial.scale(g.dp_rank() + 1.0);
    const ShardedVector summed = part.gather(part.reduce_scatter(partial));
    const double factor = g.dp_size() * (g.dp_size() + 1) / 2.0;
    for (std::size_t i = 0; i < v.size(); ++i) EXPECT_TRUE(summed[i].equal(v[i] * factor)) << layout[i].name;
    // A vector that is not this rank's chunk is refused.
    EXPECT_THROW(part.gather(v), Error);
  }
}

}  // namespace
}  // namespace unlearn
