// The TP x DP equivalence check shared by the CPU model tests and the GPU ones (float64): for every layout of the
// world (TP dividing the world size, DP the rest), loss, gradient, H·v and G·v of a model on `device` equal the
// serial CPU values (TP = 1, one process) within 1e-10 norm-wise. DP shards hold unequal token counts.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model_fixtures.h"
#include "unlearn/comm/mpi_communicator.h"
#include "unlearn/comm/process_grid.h"

namespace unlearn::testing {

/// DP shard r: 1 + r % 2 rows of length 12 + r: unequal target counts across DP ranks.
inline std::vector<Batch> shard_batches(int dp_rank) {
  return {make_batch(100 + dp_rank, 1 + dp_rank % 2, 12 + dp_rank, 67), make_batch(200 + dp_rank, 1, 9, 67)};
}

/// GPT-2, LLaMA with split KV heads and LLaMA with one replicated KV head: (family, KV heads) test parameters.
using FamilyCase = std::pair<Family, std::int64_t>;
inline std::vector<FamilyCase> family_cases() {
  return {{Family::kGpt2, 12}, {Family::kLlama, 12}, {Family::kLlama, 1}};
}
inline std::string family_case_name(const ::testing::TestParamInfo<FamilyCase>& info) {
  return to_string(info.param.first) + "_kv" + std::to_string(info.param.second);
}

/// Calls fn(grid) for every TP x DP layout of the world (TP dividing its size), under a trace naming the layout.
template <typename Fn>
void for_each_layout(const std::shared_ptr<Communicator>& world, const std::string& device, Fn&& fn) {
  for (int tp = 1; tp <= world->size(); ++tp) {
    if (world->size() % tp != 0) continue;
    SCOPED_TRACE("tp " + std::to_string(tp) + " x dp " + std::to_string(world->size() / tp) + " on " + device);
    const ProcessGrid grid(world, tp);
    fn(grid);
  }
}

inline void expect_every_layout_matches_serial_cpu(Family family, std::int64_t kv_heads, const std::string& device) {
  constexpr double kTol = 1e-10;
  const auto world = std::shared_ptr<Communicator>(make_mpi_communicator(MPI_COMM_WORLD));
  ModelConfig cfg = tiny_config(family, kv_heads);
  for_each_layout(world, device, [&](const ProcessGrid& grid) {
    cfg.device = device;
    TransformerModel model(cfg, grid.tp());
    model.init_random(31, test_init());
    const auto all = model.select("");
    Curvature curv(model, grid.dp(), all);
    curv.prepare(shard_batches(grid.dp_rank()));

    // The serial reference sees every DP shard's batches in one process, on the CPU.
    cfg.device = "cpu";
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
  });
}

}  // namespace unlearn::testing
