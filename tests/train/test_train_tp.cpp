// Training under every TP x DP layout of this world equals serial training (float64, 5 steps, 1e-10 norm-wise):
// AdamW, clipping, packing and the DP split together. Also: resume from a saved training state continues
// bit-identically.
#include <gtest/gtest.h>

#include <filesystem>

#include "model_fixtures.h"
#include "train_fixtures.h"
#include "unlearn/comm/mpi_communicator.h"
#include "unlearn/comm/process_grid.h"
#include "unlearn/io/checkpoint.h"
#include "unlearn/train/trainer.h"
#include "unlearn/util/error.h"

namespace unlearn::testing {
namespace {

TrainOptions five_steps() {
  TrainOptions o;
  o.steps = 5;
  o.batch_rows = 4;
  o.micro_batch_rows = 1;
  o.warmup_steps = 2;
  o.lr = 1e-2;
  o.weight_decay = 0.1;
  o.wd_off_fraction = 0.4;
  o.grad_clip = 0.5;  // active: the gradient norm of this model is larger
  return o;
}

class TrainTp : public ::testing::TestWithParam<std::pair<Family, std::int64_t>> {};

TEST_P(TrainTp, FiveStepsEqualSerialForEveryLayout) {
  const auto world = std::shared_ptr<Communicator>(make_mpi_communicator(MPI_COMM_WORLD));
  const ModelConfig cfg = tiny_config(GetParam().first, GetParam().second);  // KV heads split, or 1 replicated
  const auto windows = pattern_windows(11, 30, 14, cfg.vocab_size);
  const TrainOptions o = five_steps();

  ProcessGrid serial(std::shared_ptr<Communicator>(make_local_communicator()), 1);
  TransformerModel ref(cfg, serial.tp());
  ref.init_random(21, test_init());
  BatchStream ref_stream(windows, cfg.max_positions, o.batch_rows, o.seed);
  AdamW ref_adam(ref);
  std::vector<double> ref_loss;
  train(ref, serial, ref_stream, o, ref_adam, 0, o.steps, {}, [&](const StepStats& s) { ref_loss.push_back(s.loss); });

  for (int tp = 1; tp <= world->size(); ++tp) {
    if (world->size() % tp != 0) continue;
    SCOPED_TRACE("tp " + std::to_string(tp) + " x dp " + std::to_string(world->size() / tp));
    ProcessGrid grid(world, tp);
    TransformerModel model(cfg, grid.tp());
    model.init_random(21, test_init());
    BatchStream stream(windows, cfg.max_positions, o.batch_rows, o.seed);
    AdamW adam(model);
    std::vector<double> loss;
    train(model, grid, stream, o, adam, 0, o.steps, {}, [&](const StepStats& s) { loss.push_back(s.loss); });
    ASSERT_EQ(loss.size(), ref_loss.size());
    for (std::size_t i = 0; i < loss.size(); ++i) EXPECT_NEAR(loss[i], ref_loss[i], 1e-10 * ref_loss[i]) << i;
    const auto all = model.select("");
    std::string worst;
    EXPECT_LE(worst_rel_err(model.values(all), ref.values(ref.select("")), model, all, &worst), 1e-10) << worst;
    expect_replicated_identical(model, grid.tp());
  }
}

INSTANTIATE_TEST_SUITE_P(Families, TrainTp,
                         ::testing::Values(std::make_pair(Family::kGpt2, std::int64_t{12}),
                                           std::make_pair(Family::kLlama, std::int64_t{12}),
                                           std::make_pair(Family::kLlama, std::int64_t{1})),
                         [](const auto& info) {
                           return to_string(info.param.first) + "_kv" + std::to_string(info.param.second);
                         });

TEST(TrainResume, FromASavedStateIsBitIdentical) {
  const auto world = std::shared_ptr<Communicator>(make_mpi_communicator(MPI_COMM_WORLD));
  const int tp = world->size() % 2 == 0 ? 2 : 1;
  ProcessGrid grid(world, tp);
  const ModelConfig cfg = tiny_config(Family::kGpt2);
  const auto windows = pattern_windows(12, 30, 14, cfg.vocab_size);
  const TrainOptions o = five_steps();
  std::string dir = "train_resume_" + std::to_string(world->size());
  if (grid.world_rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  world->barrier();
  TrainCheckpointing ck;
  ck.dir = dir;
  ck.every = 2;

  TransformerModel a(cfg, grid.tp());
  a.init_random(8, test_init());
  BatchStream sa(windows, cfg.max_positions, o.batch_rows, o.seed);
  AdamW adam_a(a);
  train(a, grid, sa, o, adam_a, 0, o.steps, ck, nullptr);
  EXPECT_EQ(latest_complete_checkpoint(dir), 4);

  // A fresh process state: other initial weights, a new stream; resume at step 2.
  TransformerModel b(cfg, grid.tp());
  b.init_random(99, test_init());
  BatchStream sb(windows, cfg.max_positions, o.batch_rows, o.seed);
  AdamW adam_b(b);
  load_training_state(dir, 2, b, adam_b, grid, o);
  train(b, grid, sb, o, adam_b, 2, o.steps, {}, nullptr);
  for (std::size_t i = 0; i < a.parameters().size(); ++i)
    EXPECT_TRUE(at::equal(a.parameters()[i].value, b.parameters()[i].value)) << a.parameters()[i].name;

  TrainOptions other = o;
  other.lr *= 2;
  EXPECT_THROW(load_training_state(dir, 2, b, adam_b, grid, other), ConfigError);
  world->barrier();
  if (grid.world_rank() == 0) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace unlearn::testing
