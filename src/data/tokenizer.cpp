// Byte and GPT-2 byte-level BPE tokenizers (see tokenizer.h).
#include "unlearn/data/tokenizer.h"

#include <queue>

#include "unlearn/data/sha256.h"
#include "unlearn/parse/unicode.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

constexpr std::size_t kMaxCacheEntries = 1 << 18;  // cleared when full: real text repeats few distinct pieces

void check_id(TokenId id, std::int64_t vocab) {
  if (id < 0 || id >= vocab) UNLEARN_THROW(ConfigError, "token id " << id << " is outside the vocabulary (size " << vocab << ")");
}

}  // namespace

std::vector<TokenId> ByteTokenizer::encode(std::string_view text) const {
  std::vector<TokenId> ids(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<TokenId>& ids) const {
  std::string out(ids.size(), '\0');
  for (std::size_t i = 0; i < ids.size(); ++i) {
    check_id(ids[i], 256);
    out[i] = static_cast<char>(ids[i]);
  }
  return out;
}

Gpt2Tokenizer::Gpt2Tokenizer(BpeVocabulary vocab, std::string identity)
    : vocab_(std::move(vocab)), identity_(std::move(identity)) {
  for (auto& b : byte_token_) b = -1;
  for (std::size_t id = 0; id < vocab_.tokens.size(); ++id) {
    const std::string& t = vocab_.tokens[id];
    if (t.size() == 1) byte_token_[static_cast<unsigned char>(t[0])] = static_cast<TokenId>(id);
    if (t == "<|endoftext|>") end_of_text_ = static_cast<TokenId>(id);
  }
  for (TokenId b : byte_token_)
    UNLEARN_CHECK(b >= 0, "BPE vocabulary lacks a single-byte token (parse_gpt2_vocabulary validates this)");
  merge_.reserve(vocab_.merges.size() * 2);
  for (std::size_t r = 0; r < vocab_.merges.size(); ++r) {
    const auto& m = vocab_.merges[r];
    const std::uint64_t key = (static_cast<std::uint64_t>(m.left) << 32) | static_cast<std::uint32_t>(m.right);
    merge_.emplace(key, std::make_pair(static_cast<std::int32_t>(r), m.result));
  }
}

std::unique_ptr<Gpt2Tokenizer> Gpt2Tokenizer::from_directory(const std::string& dir) {
  const std::string enc_path = dir + "/encoder.json", bpe_path = dir + "/vocab.bpe";
  const std::string enc = read_file_bytes(enc_path), bpe = read_file_bytes(bpe_path);
  BpeVocabulary v = parse_gpt2_vocabulary(enc, bpe, enc_path, bpe_path);
  const std::string identity = "gpt2-bpe encoder.json:sha256=" + sha256_hex(enc) + " vocab.bpe:sha256=" + sha256_hex(bpe);
  return std::make_unique<Gpt2Tokenizer>(std::move(v), identity);
}

void Gpt2Tokenizer::bpe(std::string_view piece, std::vector<TokenId>& out) const {
  const std::size_t n = piece.size();
  if (n == 1) {
    out.push_back(byte_token_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  // Symbols form a linked list; `gen` changes whenever a symbol changes, so stale heap entries are skipped.
  std::vector<TokenId> sym(n);
  std::vector<std::int64_t> next(n), prev(n);
  std::vector<std::uint32_t> gen(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    sym[i] = byte_token_[static_cast<unsigned char>(piece[i])];
    next[i] = static_cast<std::int64_t>(i) + 1;
    prev[i] = static_cast<std::int64_t>(i) - 1;
  }
  next[n - 1] = -1;
  struct Cand {
    std::int32_t rank;
    std::int64_t left;  // symbols keep their original order, so the left index orders equal ranks left to right
    std::int64_t right;
    std::uint32_t gl, gr;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](std::int64_t l, std::int64_t r) {
    if (l < 0 || r < 0) return;
    const std::uint64_t key = (static_cast<std::uint64_t>(sym[l]) << 32) | static_cast<std::uint32_t>(sym[r]);
    const auto it = merge_.find(key);
    if (it != merge_.end()) heap.push({it->second.first, l, r, gen[l], gen[r]});
  };
  for (std::size_t i = 0; i + 1 < n; ++i) push(static_cast<std::int64_t>(i), static_cast<std::int64_t>(i) + 1);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    if (next[c.left] != c.right || gen[c.left] != c.gl || gen[c.right] != c.gr) continue;  // stale
    const auto it = merge_.find((static_cast<std::uint64_t>(sym[c.left]) << 32) | static_cast<std::uint32_t>(sym[c.right]));
    sym[c.left] = it->second.second;
    ++gen[c.left];
    ++gen[c.right];  // the right symbol is gone
    next[c.left] = next[c.right];
    if (next[c.left] >= 0) prev[next[c.left]] = c.left;
    push(prev[c.left], c.left);
    push(c.left, next[c.left]);
  }
  for (std::int64_t i = 0; i >= 0; i = next[i]) out.push_back(sym[i]);
}

std::vector<TokenId> Gpt2Tokenizer::encode(std::string_view text) const {
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 1);
  std::vector<TokenId> ids;
  for (std::string_view piece : gpt2_pretokenize(text)) {
    {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      const auto it = cache_.find(std::string(piece));
      if (it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        continue;
      }
    }
    ids.clear();
    bpe(piece, ids);
    out.insert(out.end(), ids.begin(), ids.end());
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(piece), ids);
  }
  return out;
}

std::string Gpt2Tokenizer::decode(const std::vector<TokenId>& ids) const {
  std::string out;
  for (TokenId id : ids) {
    check_id(id, vocab_size());
    out += vocab_.tokens[static_cast<std::size_t>(id)];
  }
  return out;
}

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& kind, const std::string& dir) {
  if (kind == "bytes") return std::make_unique<ByteTokenizer>();
  if (kind == "gpt2" || kind == "gpt2-bpe") return Gpt2Tokenizer::from_directory(dir);
  UNLEARN_THROW(ConfigError, "unknown tokenizer '" << kind << "' (use bytes or gpt2)");
}

}  // namespace unlearn
