// TP x DP equivalence (float64): for every layout of this world (TP dividing the world size, DP the rest), loss,
// gradient, H·v and G·v equal the serial (TP = 1, one process) values within 1e-10 norm-wise, for GPT-2, LLaMA with
// split KV heads and LLaMA with one replicated KV head. DP shards hold unequal token counts.
#include <gtest/gtest.h>

#include "model_fixtures.h"
#include "unlearn/comm/mpi_communicator.h"
#include "unlearn/comm/process_grid.h"

namespace unlearn::testing {
namespace {

constexpr double kTol = 1e-10;

/// DP shard r: 1 + r % 2 rows of length 12 + r: unequal target counts across DP ranks.
std::vector<Batch> shard_batches(int dp_rank) {
  return {make_batch(100 + dp_rank, 1 + dp_rank % 2, 12 + dp_rank, 67), make_batch(200 + dp_rank, 1, 9, 67)};
}

class TpEquivalence : public ::testing::TestWithParam<std::pair<Family, std::int64_t>> {};

TEST_P(TpEquivalence, LossGradientHvpGvpEqualSerialForEveryLayout) {
  const auto world = std::shared_ptr<Communicator>(make_mpi_communicator(MPI_COMM_WORLD));
  const ModelConfig cfg = tiny_config(GetParam().first, GetParam().second);
  for (int tp = 1; tp <= world->size(); ++tp) {
    if (world->size() % tp != 0) continue;
    SCOPED_TRACE("tp " + std::to_string(tp) + " x dp " + std::to_string(world->size() / tp));
    ProcessGrid grid(world, tp);

    TransformerModel model(cfg, grid.tp());
    model.init_random(31, test_init());
    const auto all = model.select("");
    Curvature curv(model, grid.dp(), all);
    curv.prepare(shard_batches(grid.dp_rank()));

    // The serial reference sees every DP shard's batches in one process.
    auto local = make_local_communicator(), local_dp = make_local_communicator();
    TransformerModel ref(cfg, *local);
    ref.init_random(31, test_init());
    std::vector<Batch> every;
    for (int r = 0; r < grid.dp_size(); ++r)
      for (auto& b : shard_batches(r)) every.push_back(b);
    Curvature ref_curv(ref, *local_dp, ref.select(""));
    ref_curv.prepare(every);

    EXPECT_EQ(curv.num_targets(), ref_curv.num_targets());
    EXPECT_NEAR(curv.loss(), ref_curv.loss(), kTol * ref_curv.loss());
    std::string worst;
    EXPECT_LE(worst_rel_err(curv.gradient(), ref_curv.gradient(), model, all, &worst), kTol) << worst;
    const ShardedVector v = random_vector(model, all, 77), v_ref = random_vector(ref, ref.select(""), 77);
    EXPECT_NEAR(v.dot(v), v_ref.dot(v_ref), 1e-12 * v_ref.dot(v_ref));  // replicated entries counted once
    EXPECT_LE(worst_rel_err(curv.hvp(v), ref_curv.hvp(v_ref), model, all, &worst), kTol) << "H·v " << worst;
    EXPECT_LE(worst_rel_err(curv.gvp(v), ref_curv.gvp(v_ref), model, all, &worst), kTol) << "G·v " << worst;
    expect_replicated_identical(model, grid.tp());
  }
}

INSTANTIATE_TEST_SUITE_P(Families, TpEquivalence,
                         ::testing::Values(std::pair{Family::kGpt2, std::int64_t{12}},
                                           std::pair{Family::kLlama, std::int64_t{12}},
                                           std::pair{Family::kLlama, std::int64_t{1}}),
                         [](const auto& info) {
                           return to_string(info.param.first) + "_kv" + std::to_string(info.param.second);
                         });

}  // namespace
}  // namespace unlearn::testing
