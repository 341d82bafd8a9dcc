#include "unlearn/eval/scoring.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <functional>

#include "unlearn/util/error.h"
#include "unlearn/util/log.h"

namespace unlearn {
namespace {

/// ln sum_v exp(logits[r, v]) over the whole (TP-sharded) vocabulary, per row, in float64.
at::Tensor log_sum_exp(const at::Tensor& logits, Communicator& tp) {
  at::Tensor max = std::get<0>(logits.max(1));
  tp.all_reduce(max, ReduceOp::kMax);
  at::Tensor sum_exp = (logits - max.unsqueeze(1)).exp().sum(1);
  tp.all_reduce(sum_exp, ReduceOp::kSum);
  return sum_exp.log() + max;
}

/// logits[rows[q], tokens[q]] with global token ids: each TP rank adds the ones in its vocabulary shard.
at::Tensor global_logits(const at::Tensor& logits, const at::Tensor& rows, const at::Tensor& tokens, Range vocab,
                         Communicator& tp) {
  const at::Tensor local = tokens.ge(vocab.start).logical_and(tokens.lt(vocab.end()));
  const at::Tensor cols = (tokens - vocab.start).clamp(0, vocab.size - 1);
  at::Tensor v = logits.index({rows, cols}) * local.to(logits.scalar_type());
  tp.all_reduce(v, ReduceOp::kSum);
  return v;
}

/// -ln p(target) of every target row of a forward.
at::Tensor target_nll(const ForwardResult& f, Range vocab, Communicator& tp) {
  const at::Tensor logits = f.logits.to(at::kDouble);
  const at::Tensor rows = at::arange(logits.size(0), f.targets.options());
  return log_sum_exp(logits, tp) - global_logits(logits, rows, f.targets, vocab, tp);
}

/// Runs `per_target` (a [n_targets] float64 tensor per micro-batch) over the sequences, sequence i on DP replica
/// i % dp, and returns the values of every sequence's scored tokens, concatenated in sequence order, on every rank.
at::Tensor score_sequences(const ProcessGrid& grid, const std::vector<ScoredSequence>& sequences,
                           std::int64_t rows_per_batch, const std::function<at::Tensor(const Batch&)>& per_target,
                           std::vector<std::int64_t>& offsets) {
  c10::NoGradGuard no_grad;
  offsets.assign(1, 0);
  for (const auto& s : sequences) {
    UNLEARN_CHECK(s.first_scored >= 1 && s.first_scored < static_cast<std::int64_t>(s.tokens.size()),
                  "scoring: first scored token " << s.first_scored << " of " << s.tokens.size());
    offsets.push_back(offsets.back() + static_cast<std::int64_t>(s.tokens.size()) - s.first_scored);
  }
  at::Tensor result = at::zeros({offsets.back()}, at::kDouble);
  double* out = result.data_ptr<double>();
  std::vector<std::size_t> mine;
  for (std::size_t i = static_cast<std::size_t>(grid.dp_rank()); i < sequences.size();
       i += static_cast<std::size_t>(grid.dp_size()))
    mine.push_back(i);
  // Every TP rank of a replica takes part in each forward, so all of them loop over the same micro-batches.
  for (std::size_t b = 0; b < mine.size(); b += static_cast<std::size_t>(rows_per_batch)) {
    const std::size_t e = std::min(mine.size(), b + static_cast<std::size_t>(rows_per_batch));
    std::vector<PackedRow> rows;
    for (std::size_t k = b; k < e; ++k) rows.push_back({sequences[mine[k]].tokens});
    Batch batch = make_batch(rows);
    // Unscored positions are not targets: only the scored tokens reach the LM head.
    for (std::size_t k = b; k < e; ++k)
      batch.targets[static_cast<std::int64_t>(k - b)].narrow(0, 0, sequences[mine[k]].first_scored - 1).fill_(-1);
    const at::Tensor v = per_target(batch).to(at::kCPU).contiguous();
    // Targets come row-major, so each row's scored tokens are consecutive.
    const double* p = v.data_ptr<double>();
    std::int64_t at_target = 0;
    for (std::size_t k = b; k < e; ++k) {
      const std::size_t i = mine[k];
      for (std::int64_t j = offsets[i]; j < offsets[i + 1]; ++j) out[j] = p[at_target++];
    }
    UNLEARN_CHECK(at_target == v.numel(), "scoring: " << v.numel() << " targets, expected " << at_target);
  }
  grid.dp().all_reduce(result, ReduceOp::kSum);
  return result;
}

std::vector<double> sums(const at::Tensor& values, const std::vector<std::int64_t>& offsets) {
  const double* v = values.data_ptr<double>();
  std::vector<double> out;
  for (std::size_t i = 0; i + 1 < offsets.size(); ++i) {
    double s = 0;
    for (std::int64_t j = offsets[i]; j < offsets[i + 1]; ++j) s += v[j];
    out.push_back(s);
  }
  return out;
}

}  // namespace

std::vector<std::vector<double>> token_nll(const TransformerModel& model, const ProcessGrid& grid,
                                           const std::vector<ScoredSequence>& sequences, std::int64_t rows_per_batch) {
  std::vector<std::int64_t> offsets;
  const at::Tensor v = score_sequences(grid, sequences, rows_per_batch, [&](const Batch& b) {
    return target_nll(model.forward(b), model.vocab_range(), model.tp());
  }, offsets);
  std::vector<std::vector<double>> out;
  const double* p = v.data_ptr<double>();
  for (std::size_t i = 0; i + 1 < offsets.size(); ++i) out.emplace_back(p + offsets[i], p + offsets[i + 1]);
  return out;
}

std::vector<double> sequence_nll(const TransformerModel& model, const ProcessGrid& grid,
                                 const std::vector<ScoredSequence>& sequences, std::int64_t rows_per_batch) {
  std::vector<std::int64_t> offsets;
  const at::Tensor v = score_sequences(grid, sequences, rows_per_batch, [&](const Batch& b) {
    return target_nll(model.forward(b), model.vocab_range(), model.tp());
  }, offsets);
  return sums(v, offsets);
}

std::vector<double> sequence_kl(const TransformerModel& model, const TransformerModel& reference,
                                const ProcessGrid& grid, const std::vector<ScoredSequence>& sequences,
                                std::int64_t rows_per_batch) {
  UNLEARN_CHECK(model.vocab_range().start == reference.vocab_range().start &&
                    model.vocab_range().size == reference.vocab_range().size,
                "sequence_kl: the two models shard the vocabulary differently");
  std::vector<std::int64_t> offsets;
  const at::Tensor v = score_sequences(grid, sequences, rows_per_batch, [&](const Batch& b) {
    const at::Tensor q = model.forward(b).logits.to(at::kDouble);
    const at::Tensor p = reference.forward(b).logits.to(at::kDouble);
    const at::Tensor log_p = p - log_sum_exp(p, reference.tp()).unsqueeze(1);
    const at::Tensor log_q = q - log_sum_exp(q, model.tp()).unsqueeze(1);
    at::Tensor kl = (log_p.exp() * (log_p - log_q)).sum(1);  // this rank's vocabulary shard
    model.tp().all_reduce(kl, ReduceOp::kSum);
    return kl;
  }, offsets);
  return sums(v, offsets);
}

std::vector<double> canary_px(const TransformerModel& model, const ProcessGrid& grid, const CanarySet& canaries,
                              std::int64_t rows_per_batch) {
  c10::NoGradGuard no_grad;
  const std::vector<TokenId>& prefix = canaries.prefix_tokens;
  const auto P = static_cast<std::int64_t>(prefix.size());
  UNLEARN_CHECK(P >= 1, "canary_px: an empty prefix");
  // Rows hold the prefix once (segment -1: visible to every later segment) and then the secrets of several
  // candidates, each its own segment with positions continuing after the prefix. The last prefix position predicts
  // every candidate's first secret token; each candidate's own inputs predict the rest. A row holds at most
  // `rows_per_batch` candidates (as many targets as that many separate rows would have) and is one forward.
  const std::int64_t row_limit = std::max<std::int64_t>(model.config().max_positions, 256);
  std::vector<std::vector<std::size_t>> rows;
  std::int64_t used = row_limit;
  for (std::size_t c = 0; c < canaries.candidates.size(); ++c) {
    const auto S = static_cast<std::int64_t>(canaries.candidates[c].secret_tokens.size());
    UNLEARN_CHECK(S >= 1 && P + S - 1 <= model.config().max_positions,
                  "canary_px: candidate " << c << " needs " << P + S << " positions");
    if (rows.empty() || used + S - 1 > row_limit || static_cast<std::int64_t>(rows.back().size()) >= rows_per_batch)
      rows.emplace_back(), used = P;
    rows.back().push_back(c);
    used += S - 1;
  }
  std::vector<double> px(canaries.candidates.size(), 0.0);
  std::vector<std::size_t> mine;
  for (std::size_t r = static_cast<std::size_t>(grid.dp_rank()); r < rows.size();
       r += static_cast<std::size_t>(grid.dp_size()))
    mine.push_back(r);
  for (std::size_t b = 0; b < mine.size(); ++b) {
    const std::size_t e = b + 1;
    std::int64_t T = 1;
    for (std::size_t k = b; k < e; ++k) {
      std::int64_t n = P;
      for (std::size_t c : rows[mine[k]]) n += static_cast<std::int64_t>(canaries.candidates[c].secret_tokens.size()) - 1;
      T = std::max(T, n);
    }
    const auto B = static_cast<std::int64_t>(e - b);
    std::vector<std::int64_t> tok(static_cast<std::size_t>(B * T), 0), tgt(tok.size(), -1), seg(tok.size(), 0),
        pos(tok.size(), 0);
    // Queries: (candidate, batch position, token); sorted by position they match the forward's target rows.
    struct Query {
      std::size_t candidate;
      std::int64_t position;
      std::int64_t token;
    };
    std::vector<Query> queries;
    for (std::int64_t r = 0; r < B; ++r) {
      const auto& row = rows[mine[b + static_cast<std::size_t>(r)]];
      const std::int64_t base = r * T;
      for (std::int64_t i = 0; i < P; ++i) {
        tok[static_cast<std::size_t>(base + i)] = prefix[static_cast<std::size_t>(i)];
        seg[static_cast<std::size_t>(base + i)] = -1;
        pos[static_cast<std::size_t>(base + i)] = i;
      }
      tgt[static_cast<std::size_t>(base + P - 1)] = canaries.candidates[row.front()].secret_tokens.front();
      std::int64_t t = P;
      for (std::size_t j = 0; j < row.size(); ++j) {
        const auto& s = canaries.candidates[row[j]].secret_tokens;
        queries.push_back({row[j], base + P - 1, s[0]});
        for (std::size_t i = 0; i + 1 < s.size(); ++i, ++t) {
          const auto k = static_cast<std::size_t>(base + t);
          tok[k] = s[i];
          tgt[k] = s[i + 1];
          seg[k] = static_cast<std::int64_t>(j);
          pos[k] = P + static_cast<std::int64_t>(i);
          queries.push_back({row[j], base + t, s[i + 1]});
        }
      }
      for (; t < T; ++t) seg[static_cast<std::size_t>(base + t)] = static_cast<std::int64_t>(row.size());  // padding
    }
    auto tensor = [&](std::vector<std::int64_t>& v) { return at::from_blob(v.data(), {B, T}, at::kLong).clone(); };
    Batch batch;
    batch.tokens = tensor(tok);
    batch.targets = tensor(tgt);
    batch.segments = tensor(seg);
    batch.positions = tensor(pos);
    const ForwardResult f = model.forward(batch);
    // Target row of each batch position (row-major order of the targets).
    std::vector<std::int64_t> row_of(tgt.size(), -1);
    std::int64_t n = 0;
    for (std::size_t k = 0; k < tgt.size(); ++k)
      if (tgt[k] >= 0) row_of[k] = n++;
    UNLEARN_CHECK(n == f.logits.size(0), "canary_px: " << f.logits.size(0) << " target rows, expected " << n);
    std::vector<std::int64_t> q_rows, q_tokens;
    for (const Query& q : queries) {
      q_rows.push_back(row_of[static_cast<std::size_t>(q.position)]);
      q_tokens.push_back(q.token);
    }
    const at::Tensor logits = f.logits.to(at::kDouble);
    const at::Tensor qr = at::tensor(q_rows, at::kLong).to(logits.device());
    const at::Tensor qt = at::tensor(q_tokens, at::kLong).to(logits.device());
    const at::Tensor nll = (log_sum_exp(logits, model.tp()).index({qr}) -
                            global_logits(logits, qr, qt, model.vocab_range(), model.tp()))
                               .to(at::kCPU).contiguous();
    for (std::size_t q = 0; q < queries.size(); ++q) px[queries[q].candidate] += nll.data_ptr<double>()[q];
  }
  at::Tensor all = at::tensor(px, at::kDouble);
  grid.dp().all_reduce(all, ReduceOp::kSum);
  for (std::size_t c = 0; c < px.size(); ++c) px[c] = all.data_ptr<double>()[c] / std::log(2.0);
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
