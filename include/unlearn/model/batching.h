// From documents to Batches: windows of at most `window` inputs, one document window per row (forget, eval) or
// several packed into one row with a document mask (training: design 3.0, documents never attend across borders).
// model layer.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "unlearn/model/transformer.h"

namespace unlearn {

using TokenRow = std::vector<std::int64_t>;

/// A document cut into consecutive windows of at most `window` + 1 tokens (`window` inputs and their next tokens);
/// each window attends within itself. Documents of fewer than 2 tokens give no window.
std::vector<TokenRow> document_windows(const std::vector<std::int32_t>& tokens, std::int64_t window);

/// Target tokens of a document cut into windows: sum over windows of (length - 1).
std::int64_t document_targets(const std::vector<std::int32_t>& tokens, std::int64_t window);

/// One row of a batch: windows side by side, each its own segment with positions from 0.
using PackedRow = std::vector<TokenRow>;

/// Greedy packing in order: items of `inputs[i]` inputs go into the current row while it has room for them within
/// `row_inputs`, else a new row starts. Returns the item indices of each row. Every item needs 1..row_inputs.
std::vector<std::vector<std::size_t>> pack_in_order(const std::vector<std::int64_t>& inputs, std::int64_t row_inputs);

/// pack_in_order on windows (a window of n tokens has n - 1 inputs).
std::vector<PackedRow> pack_windows(const std::vector<TokenRow>& windows, std::int64_t row_inputs);

/// One Batch of the rows, padded to the longest row with non-target positions in a segment of their own.
Batch make_batch(const std::vector<PackedRow>& rows);

/// Micro-batches of at most `rows_per_batch` single-window rows each.
std::vector<Batch> batches_of(const std::vector<TokenRow>& windows, std::int64_t rows_per_batch);

/// batches_of this DP replica's share of `documents` (document i goes to replica i % dp_size), each cut into
/// windows; `tokens_of(d)` gives document d's tokens.
std::vector<Batch> replica_batches(const std::vector<std::int64_t>& documents,
                                   const std::function<std::vector<std::int32_t>(std::int64_t)>& tokens_of,
                                   std::int64_t window, std::int64_t rows_per_batch, int dp_rank, int dp_size);

}  // namespace unlearn
