// Readers of GPT-2 tokenizer files (encoder.json, vocab.bpe) and the byte <-> unicode map of byte-level BPE.
// parse layer: untrusted files in, no LibTorch. Missing files throw IoError; malformed ones IoError naming the
// file and the line or byte offset.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace unlearn {

/// Strict JSON of one object whose values are all non-negative integers (`{"!": 0, "\u0120t": 83}`), as in
/// encoder.json. Keys are returned as UTF-8 in file order; duplicate keys, other value types and trailing bytes are
/// errors. `what` names the source in messages.
std::vector<std::pair<std::string, std::int64_t>> parse_json_int_object(std::string_view text, std::string_view what);

/// vocab.bpe: an optional "#version" line, then one merge "LEFT RIGHT" per line in rank order; a final newline is
/// optional, blank lines are errors (except the very last).
std::vector<std::pair<std::string, std::string>> parse_bpe_merges(std::string_view text, std::string_view what);

/// GPT-2's printable stand-in for each byte: bytes 33-126, 161-172 and 174-255 map to themselves, the other 68
/// bytes to U+0100.. in increasing order.
const std::array<char32_t, 256>& gpt2_byte_to_unicode();

/// A loaded byte-level BPE vocabulary: every token as raw bytes, and every merge as (left id, right id) -> result
/// id in rank order. Validated: ids are 0..n-1 without gaps, all 256 single bytes are tokens, and every merge's
/// parts and result are tokens.
struct BpeVocabulary {
  std::vector<std::string> tokens;  // id -> raw bytes (the special "<|endoftext|>" as its 13 ASCII bytes)
  struct Merge {
    std::int32_t left, right, result;
  };
  std::vector<Merge> merges;  // index = rank
};

/// Reads both files; throws IoError when one is missing, unreadable or malformed.
BpeVocabulary read_gpt2_vocabulary(const std::string& encoder_json_path, const std::string& vocab_bpe_path);
/// The same from file contents (`*_name` only names them in messages); the fuzzable entry point.
BpeVocabulary parse_gpt2_vocabulary(std::string_view encoder_json, std::string_view vocab_bpe,
                                    std::string_view encoder_name = "encoder.json",
                                    std::string_view merges_name = "vocab.bpe");

/// Whole file as bytes; IoError naming the path when it cannot be opened or read.
std::string read_file_bytes(const std::string& path);

}  // namespace unlearn
