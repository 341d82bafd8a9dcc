// Training building blocks on one process: packing and batches, the data stream, schedules, AdamW against its
// closed form, loss decrease, sequence scoring against the loss. float64.
#include <gtest/gtest.h>

#include <cmath>

#include "model_fixtures.h"
#include "train_fixtures.h"
#include "unlearn/comm/process_grid.h"
#include "unlearn/eval/scoring.h"
#include "unlearn/train/trainer.h"
#include "unlearn/util/error.h"

namespace unlearn::testing {
namespace {

ProcessGrid local_grid() { return ProcessGrid(std::shared_ptr<Communicator>(make_local_communicator()), 1); }

TEST(Packing, GreedyInOrderAndDocumentMasked) {
  const auto rows = pack_in_order({3, 4, 2, 5, 1}, 8);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], (std::vector<std::size_t>{0, 1}));     // 3 + 4; the 2 would make 9
  EXPECT_EQ(rows[1], (std::vector<std::size_t>{2, 3, 4}));  // 2 + 5 + 1 = 8 fits exactly
  const Batch b = unlearn::make_batch(std::vector<PackedRow>{{{10, 11, 12}, {20, 21}}, {{30, 31, 32, 33}}});
  ASSERT_EQ(b.tokens.sizes(), (at::IntArrayRef{2, 3}));
  // Row 0: document A (inputs 10, 11 -> targets 11, 12) then document B (input 20 -> 21), positions restart.
  EXPECT_EQ(b.tokens[0][2].item<std::int64_t>(), 20);
  EXPECT_EQ(b.targets[0][1].item<std::int64_t>(), 12);
  EXPECT_EQ(b.targets[0][2].item<std::int64_t>(), 21);
  EXPECT_EQ(b.segments[0][1].item<std::int64_t>(), 0);
  EXPECT_EQ(b.segments[0][2].item<std::int64_t>(), 1);
  EXPECT_EQ(b.positions[0][2].item<std::int64_t>(), 0);
  EXPECT_EQ(b.num_targets(), 6);
  EXPECT_THROW(pack_in_order({9}, 8), Error);
}

TEST(Packing, DocumentWindowsCoverEveryTarget) {
  std::vector<std::int32_t> doc(23);
  for (int i = 0; i < 23; ++i) doc[static_cast<std::size_t>(i)] = i;
  const auto w = document_windows(doc, 8);
  ASSERT_EQ(w.size(), 3u);  // inputs 0-7, 8-15, 16-21
  EXPECT_EQ(w[1].front(), 8);
  EXPECT_EQ(w[1].back(), 16);
  EXPECT_EQ(document_targets(doc, 8), 22);
  EXPECT_TRUE(document_windows({5}, 8).empty());
}

TEST(BatchStream, DeterministicEpochsCoverEveryWindowOnce) {
  const auto windows = pattern_windows(1, 40, 9, 67);
  BatchStream a(windows, 16, 4, 7), b(windows, 16, 4, 7), c(windows, 16, 4, 8);
  auto flat = [](const std::vector<PackedRow>& rows) {
    std::vector<std::int64_t> t;
    for (const auto& r : rows)
      for (const auto& w : r) t.insert(t.end(), w.begin(), w.end());
    return t;
  };
  EXPECT_EQ(flat(a.rows(5)), flat(b.rows(5)));  // random access equals the same step from another stream
  EXPECT_NE(flat(a.rows(0)), flat(c.rows(0)));  // another seed, another order
  // The rows of epoch 0 hold every window exactly once.
  std::int64_t tokens = 0, expect = 0;
  for (const auto& w : windows) expect += static_cast<std::int64_t>(w.size());
  BatchStream one(windows, 16, 1, 3);
  for (std::int64_t s = 0; one.epoch_at(s) < 1.0; ++s) {
    const auto rows = one.rows(s);
    for (const auto& w : rows.front()) tokens += static_cast<std::int64_t>(w.size());
  }
  EXPECT_EQ(tokens, expect);
  EXPECT_THROW(BatchStream({}, 16, 4, 1), ConfigError);
}

TEST(Schedule, WarmupCosineAndWeightDecayOff) {
  TrainOptions o;
  o.steps = 100;
  o.warmup_steps = 10;
  o.lr = 1e-3;
  o.min_lr_ratio = 0.1;
  o.wd_off_fraction = 0.2;
  EXPECT_DOUBLE_EQ(learning_rate(o, 0), 1e-4);
  EXPECT_DOUBLE_EQ(learning_rate(o, 9), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(o, 10), 1e-3);
  EXPECT_NEAR(learning_rate(o, 55), 0.55e-3, 1e-15);  // halfway down the cosine: (1 + 0.1) / 2
  EXPECT_NEAR(learning_rate(o, 100), 1e-4, 1e-15);
  EXPECT_EQ(weight_decay_at(o, 79), o.weight_decay);
  EXPECT_EQ(weight_decay_at(o, 80), 0.0);
  EXPECT_THROW(o.validate(32), ConfigError);  // 16 rows cannot feed 32 replicas
}

TEST(AdamW, MatchesTheClosedFormOfTwoSteps) {
  auto grid = local_grid();
  ModelConfig cfg = tiny_config(Family::kGpt2);
  TransformerModel model(cfg, grid.tp());
  model.init_random(3, test_init());
  const auto all = model.select("");
  const ShardedVector g1 = random_vector(model, all, 1), g2 = random_vector(model, all, 2);
  const ShardedVector p0 = model.values(all);
  TrainOptions o;
  o.beta1 = 0.8;
  o.beta2 = 0.9;
  o.eps = 1e-3;
  AdamW adam(model);
  adam.step(model, g1, o, 0.1, 0.5, 1);
  adam.step(model, g2, o, 0.05, 0.0, 2);
  for (std::size_t i = 0; i < all.size(); ++i) {
    const bool decay = model.parameters()[i].global_shape.size() >= 2;
    at::Tensor p = p0[i].clone();
    at::Tensor m = 0.2 * g1[i], v = 0.1 * g1[i] * g1[i];
    if (decay) p = p * (1 - 0.1 * 0.5);
    p = p - 0.1 * (m / 0.2) / ((v / 0.1).sqrt() + 1e-3);
    m = 0.8 * m + 0.2 * g2[i];
    v = 0.9 * v + 0.1 * g2[i] * g2[i];
    p = p - 0.05 * (m / (1 - 0.64)) / ((v / (1 - 0.81)).sqrt() + 1e-3);
    EXPECT_LE(rel_err(model.parameters()[i].value.detach(), p), 1e-13) << model.parameters()[i].name;
  }
}

TEST(Train, LossDecreases) {
  auto grid = local_grid();
  ModelConfig cfg = tiny_config(Family::kGpt2);
  TransformerModel model(cfg, grid.tp());
  model.init_random(5, InitOptions{0.02, 0.0, 0.0});
  BatchStream stream(pattern_windows(9, 64, 12, cfg.vocab_size), cfg.max_positions, 8, 1);
  TrainOptions o;
  o.steps = 40;
  o.batch_rows = 8;
  o.micro_batch_rows = 3;  // several micro-batches per step
  o.warmup_steps = 5;
  o.lr = 3e-3;
  AdamW adam(model);
  std::vector<double> losses;
  train(model, grid, stream, o, adam, 0, o.steps, {}, [&](const StepStats& s) { losses.push_back(s.loss); });
  ASSERT_EQ(losses.size(), 40u);
  const double first = (losses[0] + losses[1] + losses[2]) / 3, last = (losses[37] + losses[38] + losses[39]) / 3;
  EXPECT_LT(last, 0.6 * first) << "loss " << first << " -> " << last;
  EXPECT_GT(first, std::log(67.0) * 0.9);  // starts near uniform
}

TEST(Scoring, SequenceNllSumsToTheLoss) {
  auto grid = local_grid();
  ModelConfig cfg = tiny_config(Family::kLlama, 3);
  TransformerModel model(cfg, grid.tp());
  model.init_random(4, test_init());
  const auto windows = pattern_windows(2, 10, 12, cfg.vocab_size);
  std::vector<ScoredSequence> seqs;
  for (const auto& w : windows) seqs.push_back({w, 1});
  const auto nll = sequence_nll(model, grid, seqs, 3);
  const LossGradient lg = loss_and_gradient(model, grid.dp(), model.select(""), batches_of(windows, 4));
  double sum = 0;
  for (double x : nll) sum += x;
  EXPECT_NEAR(sum / static_cast<double>(lg.num_targets), lg.loss, 1e-12 * lg.loss);
  // Scoring only a suffix drops exactly the prefix's terms: nll(all) = nll(prefix part) + nll(suffix).
  seqs = {{windows[0], 1}, {windows[0], 2}};
  TokenRow head(windows[0].begin(), windows[0].begin() + 2);
  seqs.push_back({head, 1});
  const auto parts = sequence_nll(model, grid, seqs, 8);
  EXPECT_NEAR(parts[0], parts[1] + parts[2], 1e-12 * parts[0]);
}

}  // namespace
}  // namespace unlearn::testing
