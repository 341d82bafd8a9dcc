#include "unlearn/eval/scoring.h"

#include <ATen/ATen.h>

#include <cmath>

#include "unlearn/util/error.h"
#include "unlearn/util/log.h"

namespace unlearn {

std::vector<double> sequence_nll(const TransformerModel& model, const ProcessGrid& grid,
                                 const std::vector<ScoredSequence>& sequences, std::int64_t rows_per_batch) {
  at::NoGradGuard no_grad;
  const Range vocab = model.vocab_range();
  Communicator& tp = model.tp();
  std::vector<std::size_t> mine;
  for (std::size_t i = static_cast<std::size_t>(grid.dp_rank()); i < sequences.size();
       i += static_cast<std::size_t>(grid.dp_size()))
    mine.push_back(i);
  at::Tensor result = at::zeros({static_cast<std::int64_t>(sequences.size())}, at::kDouble);
  auto out = result.accessor<double, 1>();
  // Every TP rank of a replica takes part in each forward, so all of them loop over the same micro-batches.
  for (std::size_t b = 0; b < mine.size(); b += static_cast<std::size_t>(rows_per_batch)) {
    const std::size_t e = std::min(mine.size(), b + static_cast<std::size_t>(rows_per_batch));
    std::vector<PackedRow> rows;
    for (std::size_t k = b; k < e; ++k) {
      const ScoredSequence& s = sequences[mine[k]];
      UNLEARN_CHECK(s.first_scored >= 1 && s.first_scored < static_cast<std::int64_t>(s.tokens.size()),
                    "sequence_nll: first scored token " << s.first_scored << " of " << s.tokens.size());
      rows.push_back({s.tokens});
    }
    Batch batch = make_batch(rows);
    // Unscored positions are not targets: only the scored tokens reach the LM head.
    for (std::size_t k = b; k < e; ++k) {
      const auto first = sequences[mine[k]].first_scored;
      batch.targets[static_cast<std::int64_t>(k - b)].narrow(0, 0, first - 1).fill_(-1);
    }
    const ForwardResult f = model.forward(batch);
    const at::Tensor logits = f.logits.to(at::kDouble);
    at::Tensor max = std::get<0>(logits.max(1));
    tp.all_reduce(max, ReduceOp::kMax);
    at::Tensor sum_exp = (logits - max.unsqueeze(1)).exp().sum(1);
    tp.all_reduce(sum_exp, ReduceOp::kSum);
    const at::Tensor local = f.targets.ge(vocab.start).logical_and(f.targets.lt(vocab.end()));
    const at::Tensor idx = (f.targets - vocab.start).clamp(0, vocab.size - 1).unsqueeze(1);
    at::Tensor target_logit = logits.gather(1, idx).squeeze(1) * local.to(at::kDouble);
    tp.all_reduce(target_logit, ReduceOp::kSum);
    const at::Tensor nll = (sum_exp.log() + max - target_logit).to(at::kCPU).contiguous();
    // Targets come row-major, so each row's scored tokens are consecutive.
    const double* v = nll.data_ptr<double>();
    std::int64_t at_target = 0;
    for (std::size_t k = b; k < e; ++k) {
      const ScoredSequence& s = sequences[mine[k]];
      const auto n = static_cast<std::int64_t>(s.tokens.size()) - s.first_scored;
      double sum = 0;
      for (std::int64_t j = 0; j < n; ++j) sum += v[at_target + j];
      out[static_cast<std::int64_t>(mine[k])] = sum;
      at_target += n;
    }
    UNLEARN_CHECK(at_target == nll.numel(), "sequence_nll: " << nll.numel() << " targets, expected " << at_target);
  }
  grid.dp().all_reduce(result, ReduceOp::kSum);
  return std::vector<double>(result.data_ptr<double>(), result.data_ptr<double>() + result.numel());
}

std::vector<double> canary_px(const TransformerModel& model, const ProcessGrid& grid, const CanarySet& canaries,
                              std::int64_t rows_per_batch) {
  std::vector<ScoredSequence> seqs;
  for (std::size_t c = 0; c < canaries.candidates.size(); ++c) {
    const std::vector<TokenId> seq = canaries.sequence(c);
    seqs.push_back({TokenRow(seq.begin(), seq.end()), static_cast<std::int64_t>(canaries.prefix_tokens.size())});
  }
  std::vector<double> px = sequence_nll(model, grid, seqs, rows_per_batch);
  for (double& x : px) x /= std::log(2.0);
  return px;
}

ExposureSummary summarize_exposure(const CanarySet& canaries, const std::vector<double>& px) {
  UNLEARN_CHECK(px.size() == canaries.candidates.size(), "summarize_exposure: " << px.size() << " scores for "
                                                                                << canaries.candidates.size());
  ExposureSummary s;
  std::vector<double> refs;
  for (std::size_t c = 0; c < px.size(); ++c)
    if (canaries.candidates[c].role == CanaryRole::kReference) refs.push_back(px[c]);
  s.references = static_cast<int>(refs.size());
  s.max_exposure = std::log2(static_cast<double>(refs.size()) + 1.0);
  s.canaries.resize(px.size());
  if (refs.empty()) return s;
  const std::vector<RankExposure> all = rank_exposures(px, refs);
  for (std::size_t c = 0; c < px.size(); ++c) {
    const CanaryRole role = canaries.candidates[c].role;
    if (role == CanaryRole::kReference) continue;
    s.canaries[c] = all[c];
    const double x = all[c].exposure;
    if (role == CanaryRole::kEvaluation) s.mean_evaluation += x, ++s.evaluation;
    if (role == CanaryRole::kTuning) s.mean_tuning += x, ++s.tuning;
    if (role == CanaryRole::kHeldout) s.mean_heldout += x, ++s.heldout;
  }
  if (s.evaluation) s.mean_evaluation /= s.evaluation;
  if (s.tuning) s.mean_tuning /= s.tuning;
  if (s.heldout) s.mean_heldout /= s.heldout;
  return s;
}

std::string to_json(const ExposureSummary& s) {
  std::string per = "[";
  for (std::size_t c = 0; c < s.canaries.size(); ++c) {
    if (s.canaries[c].rank == 0) continue;  // a reference candidate
    per += (per.size() > 1 ? ", " : "") + JsonObject().add("candidate", static_cast<std::int64_t>(c))
                                               .add("rank", s.canaries[c].rank).add("exposure", s.canaries[c].exposure)
                                               .str();
  }
  return JsonObject().add("mean_evaluation", s.mean_evaluation).add("mean_tuning", s.mean_tuning)
      .add("mean_heldout_baseline", s.mean_heldout).add("max", s.max_exposure).add("evaluation", s.evaluation)
      .add("tuning", s.tuning).add("heldout", s.heldout).add("references", s.references)
      .add_raw("per_candidate", per + "]").str();
}

std::string describe(const ExposureSummary& s) {
  char line[240];
  std::snprintf(line, sizeof(line),
                "exposure (bits, max %.2f): evaluation canaries %.2f (%d), tuning %.2f (%d), never-inserted held-out "
                "baseline %.2f (%d)",
                s.max_exposure, s.mean_evaluation, s.evaluation, s.mean_tuning, s.tuning, s.mean_heldout, s.heldout);
  return line;
}

}  // namespace unlearn
