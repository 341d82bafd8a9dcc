// Scoring under every TP x DP layout of this world (float64): the shared-prefix canary scores equal scoring each
// candidate's whole sequence on its own, per-token NLLs sum to the sequence NLL, and the KL to a reference model
// equals the serial one computed from full softmaxes (and is 0 against itself).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "model_fixtures.h"
#include "train_fixtures.h"
#include "unlearn/comm/mpi_communicator.h"
#include "unlearn/comm/process_grid.h"
#include "unlearn/eval/scoring.h"

namespace unlearn::testing {
namespace {

/// A prefix of 4 tokens and 23 candidates with secrets of 1 to 5 tokens (uneven rows, single-token secrets).
CanarySet test_canaries(std::int64_t vocab) {
  CanarySet c;
  c.prefix_tokens = {5, 17, 3, 40};
  for (int i = 0; i < 23; ++i) {
    CanaryCandidate cand;
    for (int t = 0; t < 1 + i % 5; ++t) cand.secret_tokens.push_back((7 * i + 11 * t + 1) % static_cast<int>(vocab));
    c.candidates.push_back(cand);
  }
  return c;
}

class ScoringTp : public ::testing::TestWithParam<Family> {};

TEST_P(ScoringTp, SharedPrefixKlAndTokenScoresMatchSerial) {
  const auto world = std::shared_ptr<Communicator>(make_mpi_communicator(MPI_COMM_WORLD));
  const ModelConfig cfg = tiny_config(GetParam());
  const CanarySet canaries = test_canaries(cfg.vocab_size);
  std::vector<ScoredSequence> seqs;
  for (std::size_t c = 0; c < canaries.candidates.size(); ++c) {
    const auto s = canaries.sequence(c);
    seqs.push_back({TokenRow(s.begin(), s.end()), static_cast<std::int64_t>(canaries.prefix_tokens.size())});
  }
  for (const auto& w : pattern_windows(3, 9, 15, cfg.vocab_size)) seqs.push_back({w, 1});

  // Serial references: each sequence alone, KL from full log-softmaxes.
  ProcessGrid serial(std::shared_ptr<Communicator>(make_local_communicator()), 1);
  TransformerModel ref(cfg, serial.tp()), ref_other(cfg, serial.tp());
  ref.init_random(8, test_init());
  ref_other.init_random(9, test_init());
  const std::vector<double> ref_nll = sequence_nll(ref, serial, seqs, 1);
  std::vector<double> ref_kl;
  for (const auto& s : seqs) {
    const Batch b = unlearn::make_batch(std::vector<PackedRow>{{s.tokens}});
    const at::Tensor lq = at::log_softmax(ref.forward(b).logits, 1), lp = at::log_softmax(ref_other.forward(b).logits, 1);
    const at::Tensor per = (lp.exp() * (lp - lq)).sum(1);
    ref_kl.push_back(per.narrow(0, s.first_scored - 1, per.size(0) - s.first_scored + 1).sum().item<double>());
  }

  for (int tp = 1; tp <= world->size(); ++tp) {
    if (world->size() % tp != 0) continue;
    SCOPED_TRACE("tp " + std::to_string(tp) + " x dp " + std::to_string(world->size() / tp));
    ProcessGrid grid(world, tp);
    TransformerModel model(cfg, grid.tp()), other(cfg, grid.tp());
    model.init_random(8, test_init());
    other.init_random(9, test_init());
    for (std::int64_t per_row : {1, 4, 32}) {
      const std::vector<double> px = canary_px(model, grid, canaries, per_row);
      for (std::size_t c = 0; c < px.size(); ++c)
        EXPECT_NEAR(px[c] * std::log(2.0), ref_nll[c], 1e-11 * ref_nll[c]) << "candidate " << c << " rows " << per_row;
    }
    const auto tokens = token_nll(model, grid, seqs, 3);
    const auto kl = sequence_kl(model, other, grid, seqs, 3);
    const auto self = sequence_kl(model, model, grid, seqs, 3);
    ASSERT_EQ(tokens.size(), seqs.size());
    for (std::size_t i = 0; i < seqs.size(); ++i) {
      ASSERT_EQ(static_cast<std::int64_t>(tokens[i].size()),
                static_cast<std::int64_t>(seqs[i].tokens.size()) - seqs[i].first_scored);
      double sum = 0;
      for (double x : tokens[i]) sum += x;
      EXPECT_NEAR(sum, ref_nll[i], 1e-11 * ref_nll[i]) << i;
      EXPECT_NEAR(kl[i], ref_kl[i], 1e-11 * ref_kl[i] + 1e-14) << i;
      EXPECT_GT(kl[i], 0.0);
      EXPECT_NEAR(self[i], 0.0, 1e-13) << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, ScoringTp, ::testing::Values(Family::kGpt2, Family::kLlama));

}  // namespace
}  // namespace unlearn::testing
