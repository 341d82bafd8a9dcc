#include "unlearn/model/batching.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "unlearn/util/error.h"

namespace unlearn {

std::vector<TokenRow> document_windows(const std::vector<std::int32_t>& tokens, std::int64_t window) {
  UNLEARN_CHECK(window >= 1, "document_windows: window " << window);
  std::vector<TokenRow> out;
  const auto w = static_cast<std::size_t>(window);
  for (std::size_t start = 0; start + 1 < tokens.size(); start += w) {
    const std::size_t end = std::min(tokens.size(), start + w + 1);
    out.emplace_back(tokens.begin() + static_cast<std::ptrdiff_t>(start),
                     tokens.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return out;
}

std::int64_t document_targets(const std::vector<std::int32_t>& tokens, std::int64_t window) {
  std::int64_t n = 0;
  for (const auto& r : document_windows(tokens, window)) n += static_cast<std::int64_t>(r.size()) - 1;
  return n;
}

std::vector<std::vector<std::size_t>> pack_in_order(const std::vector<std::int64_t>& inputs, std::int64_t row_inputs) {
  std::vector<std::vector<std::size_t>> rows;
  std::int64_t used = row_inputs;  // forces a new row for the first item
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    UNLEARN_CHECK(inputs[i] >= 1 && inputs[i] <= row_inputs,
                  "pack_in_order: an item of " << inputs[i] << " inputs, rows of " << row_inputs);
    if (used + inputs[i] > row_inputs) {
      rows.emplace_back();
      used = 0;
    }
    rows.back().push_back(i);
    used += inputs[i];
  }
  return rows;
}

std::vector<PackedRow> pack_windows(const std::vector<TokenRow>& windows, std::int64_t row_inputs) {
  std::vector<std::int64_t> inputs;
  for (const auto& w : windows) inputs.push_back(static_cast<std::int64_t>(w.size()) - 1);
  std::vector<PackedRow> rows;
  for (const auto& idx : pack_in_order(inputs, row_inputs)) {
    rows.emplace_back();
    for (std::size_t i : idx) rows.back().push_back(windows[i]);
  }
  return rows;
}

Batch make_batch(const std::vector<PackedRow>& rows) {
  std::int64_t T = 1;
  for (const auto& row : rows) {
    std::int64_t n = 0;
    for (const auto& w : row) n += static_cast<std::int64_t>(w.size()) - 1;
    T = std::max(T, n);
  }
  const auto B = static_cast<std::int64_t>(rows.size());
  // Filled in plain vectors, then one copy each: per-element tensor indexing is slow.
  std::vector<std::int64_t> tok(static_cast<std::size_t>(B * T), 0), tgt(tok.size(), -1), seg(tok.size(), 0),
      pos(tok.size(), 0);
  for (std::int64_t b = 0; b < B; ++b) {
    std::int64_t t = 0, s = 0;
    for (const auto& w : rows[static_cast<std::size_t>(b)]) {
      for (std::size_t i = 0; i + 1 < w.size(); ++i, ++t) {
        const auto k = static_cast<std::size_t>(b * T + t);
        tok[k] = w[i];
        tgt[k] = w[i + 1];
        seg[k] = s;
        pos[k] = static_cast<std::int64_t>(i);
      }
      ++s;
    }
    for (; t < T; ++t) seg[static_cast<std::size_t>(b * T + t)] = s;  // padding: its own segment, no targets
  }
  auto tensor = [&](std::vector<std::int64_t>& v) { return at::from_blob(v.data(), {B, T}, at::kLong).clone(); };
  Batch batch;
  batch.tokens = tensor(tok);
  batch.targets = tensor(tgt);
  batch.segments = tensor(seg);
  batch.positions = tensor(pos);
  return batch;
}

std::vector<Batch> batches_of(const std::vector<TokenRow>& windows, std::int64_t rows_per_batch) {
  UNLEARN_CHECK(rows_per_batch >= 1, "batches_of: rows_per_batch " << rows_per_batch);
  std::vector<Batch> out;
  for (std::size_t b = 0; b < windows.size(); b += static_cast<std::size_t>(rows_per_batch)) {
    const std::size_t e = std::min(windows.size(), b + static_cast<std::size_t>(rows_per_batch));
    std::vector<PackedRow> rows;
    for (std::size_t i = b; i < e; ++i) rows.push_back({windows[i]});
    out.push_back(make_batch(rows));
  }
  return out;
}

std::vector<Batch> replica_batches(const std::vector<std::int64_t>& documents,
                                   const std::function<std::vector<std::int32_t>(std::int64_t)>& tokens_of,
                                   std::int64_t window, std::int64_t rows_per_batch, int dp_rank, int dp_size) {
  std::vector<TokenRow> rows;
  for (std::size_t i = static_cast<std::size_t>(dp_rank); i < documents.size(); i += static_cast<std::size_t>(dp_size))
    for (auto& w : document_windows(tokens_of(documents[i]), window)) rows.push_back(std::move(w));
  return batches_of(rows, rows_per_batch);
}

}  // namespace unlearn
