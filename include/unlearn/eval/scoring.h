// Scores of token sequences under a TP x DP model, by forward passes only: per-sequence negative log-likelihoods
// (perplexity, membership inference) and canary Px (design 3.5). eval layer, on top of the model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "unlearn/comm/process_grid.h"
#include "unlearn/data/canaries.h"
#include "unlearn/eval/exposure.h"
#include "unlearn/model/batching.h"

namespace unlearn {

/// A sequence to score: tokens[j] for j >= first_scored (>= 1) are scored given tokens[0 .. j-1]. At most
/// max_positions + 1 tokens.
struct ScoredSequence {
  TokenRow tokens;
  std::int64_t first_scored = 1;
};

/// Sum over each sequence's scored tokens of -ln p(token | earlier tokens), in natural-log units. Sequence i is
/// computed by DP replica i % dp and the results are summed over DP: every rank returns every value.
/// Collective over the grid.
std::vector<double> sequence_nll(const TransformerModel& model, const ProcessGrid& grid,
                                 const std::vector<ScoredSequence>& sequences, std::int64_t rows_per_batch = 32);

/// The same per scored token: token_nll(...)[i][j] = -ln p(tokens[first_scored + j] | earlier tokens).
std::vector<std::vector<double>> token_nll(const TransformerModel& model, const ProcessGrid& grid,
                                           const std::vector<ScoredSequence>& sequences,
                                           std::int64_t rows_per_batch = 32);

/// Per sequence, the sum over its scored positions of KL(p_reference || p_model) of the next-token distributions
/// (nats). Both models live on the same grid with the same TP layout. Collective over the grid.
std::vector<double> sequence_kl(const TransformerModel& model, const TransformerModel& reference,
                                const ProcessGrid& grid, const std::vector<ScoredSequence>& sequences,
                                std::int64_t rows_per_batch = 32);

/// Px of every candidate of `canaries`: the sum over the secret's tokens of -log2 p(token | prefix, earlier secret
/// tokens), prefix and secret tokenised separately (CanarySet::sequence). The prefix is computed once per row of
/// up to `rows_per_batch` candidates (a shared-prefix segment), not once per candidate.
std::vector<double> canary_px(const TransformerModel& model, const ProcessGrid& grid, const CanarySet& canaries,
                              std::int64_t rows_per_batch = 32);

/// Rank exposure of the inserted canaries and of the held-out never-inserted candidates (the baseline), each
/// ranked against the reference candidates.
struct ExposureSummary {
  std::vector<RankExposure> canaries;  // per candidate index; role kTuning / kEvaluation / kHeldout, else empty
  double mean_evaluation = 0, mean_tuning = 0, mean_heldout = 0;
  int evaluation = 0, tuning = 0, heldout = 0, references = 0;
  double max_exposure = 0;  // log2(references + 1)
};
ExposureSummary summarize_exposure(const CanarySet& canaries, const std::vector<double>& px);

/// The means and counts as a JSON object (for reports); canaries by index only, never their secrets.
std::string to_json(const ExposureSummary& s);
/// One log line: "exposure (bits, max M): evaluation canaries E (n), tuning T (n), never-inserted baseline B (n)".
std::string describe(const ExposureSummary& s);

}  // namespace unlearn
