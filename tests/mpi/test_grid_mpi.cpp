// Process grid on MPI: every valid TP for this world size, group membership, and invalid layouts.
#include <gtest/gtest.h>

#include "unlearn/comm/mpi_communicator.h"
#include "unlearn/comm/process_grid.h"

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

}  // namespace
}  // namespace unlearn
