// Token datasets in HDF5: tokens, document offsets, ids, groups and splits, provenance attributes and the
// planted canaries. Written and read by one process with serial HDF5 calls (readable by h5py/h5dump; the layout
// is in docs/data.md). data layer, no LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "unlearn/data/canaries.h"
#include "unlearn/data/corpus.h"
#include "unlearn/data/tokenizer.h"

namespace unlearn {

enum class Split : std::uint8_t { kTrain = 0, kValidation = 1, kTest = 2 };
const char* to_string(Split s);

struct TokenDataset {
  std::string corpus;
  std::string tokenizer;           // kind: bytes | gpt2-bpe
  std::string tokenizer_identity;  // kind + SHA-256 of its files
  std::int64_t vocab_size = 0;
  std::string source_sha256;       // Corpus::source_sha256
  std::uint64_t seed = 0;
  std::vector<double> split_fractions;  // train, validation, test

  std::vector<TokenId> tokens;
  std::vector<std::int64_t> doc_offsets{0};  // size num_documents() + 1; document i is [offsets[i], offsets[i+1])
  std::vector<std::int64_t> doc_ids;         // Document::id
  std::vector<std::int32_t> doc_groups;      // index into group_names
  std::vector<std::uint8_t> doc_splits;      // Split
  std::vector<std::string> group_names;
  CanarySet canaries;

  std::int64_t num_documents() const { return static_cast<std::int64_t>(doc_ids.size()); }
  std::int64_t document_length(std::int64_t i) const { return doc_offsets[i + 1] - doc_offsets[i]; }
  std::vector<TokenId> document_tokens(std::int64_t i) const;
  /// Replaces document i's tokens (canary insertion); offsets after it shift.
  void set_document_tokens(std::int64_t i, const std::vector<TokenId>& t);
  /// Throws IoError naming the first broken invariant (offsets monotone and closing on tokens.size(), token ids
  /// inside the vocabulary, per-document arrays of equal length, valid splits/groups, canary indices in range).
  void validate(const std::string& what) const;
};

/// Split of each of n documents: a seeded shuffle, the first round(f0*n) train, the next round(f1*n) validation,
/// the rest test. Fractions must be >= 0 and sum to 1 (ConfigError).
std::vector<std::uint8_t> assign_splits(std::int64_t n, const std::vector<double>& fractions, std::uint64_t seed);

/// Tokenises every document of `corpus` and assigns splits; no canaries.
TokenDataset build_dataset(const Corpus& corpus, const Tokenizer& tokenizer, const std::vector<double>& fractions,
                           std::uint64_t seed);

/// Writes `path` atomically (a temporary beside it, then rename). IoError on failure.
void write_dataset(const std::string& path, const TokenDataset& ds);
/// Reads and validates; IoError when the file is missing, not a dataset, of another format version, or broken.
TokenDataset read_dataset(const std::string& path);

}  // namespace unlearn
