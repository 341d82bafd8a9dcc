// Tokenizers: raw bytes (vocabulary 256) and GPT-2 byte-level BPE. Both decode exactly to the encoded bytes.
// data layer; the untrusted-file readers they use live in parse (tokenizer_files.h, unicode.h).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "unlearn/parse/tokenizer_files.h"

namespace unlearn {

using TokenId = std::int32_t;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  /// "bytes" | "gpt2-bpe": the kind, as `--tokenizer` names it and datasets record it.
  virtual std::string kind() const = 0;
  /// Kind plus the SHA-256 of every file it was built from: what a dataset and a checkpoint must agree on.
  virtual std::string identity() const = 0;
  virtual std::int64_t vocab_size() const = 0;
  virtual std::vector<TokenId> encode(std::string_view text) const = 0;
  /// Exact inverse of encode; throws ConfigError on an id outside the vocabulary.
  virtual std::string decode(const std::vector<TokenId>& ids) const = 0;
};

/// Every byte is its own token.
class ByteTokenizer final : public Tokenizer {
 public:
  std::string kind() const override { return "bytes"; }
  std::string identity() const override { return "bytes"; }
  std::int64_t vocab_size() const override { return 256; }
  std::vector<TokenId> encode(std::string_view text) const override;
  std::string decode(const std::vector<TokenId>& ids) const override;
};

/// GPT-2 byte-level BPE: pre-tokenise (gpt2_pretokenize), map each piece's bytes to single-byte tokens, then
/// apply merges lowest rank first, all non-overlapping occurrences of a pair left to right (the published
/// algorithm; a heap makes it O(n log n) per piece). Pieces are cached. Encoding treats "<|endoftext|>" as plain
/// text: special tokens are never produced from data. Thread-safe.
class Gpt2Tokenizer final : public Tokenizer {
 public:
  /// `identity` is recorded as given (see from_files for the usual form).
  Gpt2Tokenizer(BpeVocabulary vocab, std::string identity);
  /// Reads DIR/encoder.json and DIR/vocab.bpe; IoError when missing or malformed.
  static std::unique_ptr<Gpt2Tokenizer> from_directory(const std::string& dir);

  std::string kind() const override { return "gpt2-bpe"; }
  std::string identity() const override { return identity_; }
  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(vocab_.tokens.size()); }
  std::vector<TokenId> encode(std::string_view text) const override;
  std::string decode(const std::vector<TokenId>& ids) const override;
  /// Id of "<|endoftext|>", or -1 when the vocabulary has none.
  TokenId end_of_text() const { return end_of_text_; }

 private:
  void bpe(std::string_view piece, std::vector<TokenId>& out) const;

  BpeVocabulary vocab_;
  std::string identity_;
  TokenId end_of_text_ = -1;
  TokenId byte_token_[256];
  std::unordered_map<std::uint64_t, std::pair<std::int32_t, TokenId>> merge_;  // (left,right) -> (rank, result)
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<TokenId>> cache_;
};

/// "bytes" or "gpt2" (files from `dir`); ConfigError for any other kind.
std::unique_ptr<Tokenizer> make_tokenizer(const std::string& kind, const std::string& dir);

}  // namespace unlearn
