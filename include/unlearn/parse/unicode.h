// UTF-8 decoding, the Unicode classes GPT-2's pre-tokeniser needs (\p{L}, \p{N}, JavaScript's \s), and the
// pre-tokeniser itself. parse layer: untrusted text in, no LibTorch.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace unlearn {

/// One decoded UTF-8 sequence. Invalid or truncated input yields the single byte as `cp` with `valid` false, so
/// every byte of the input belongs to exactly one CodePoint and byte-level tokenisation stays exact.
struct CodePoint {
  char32_t cp = 0;
  std::size_t length = 1;  // bytes consumed, 1..4
  bool valid = true;
};
/// Decodes the sequence at `pos` (< text.size()). Rejects overlong forms, surrogates and values > U+10FFFF.
CodePoint decode_utf8(std::string_view text, std::size_t pos);

enum class CharClass { kLetter, kNumber, kSpace, kOther };
/// Letter = general category L*, number = N* (tables generated from Python's unicodedata, see
/// unicode_version()), space = JavaScript's \s (WhiteSpace and LineTerminator of ECMA-262).
/// Invalid bytes are kOther. Code points assigned after unicode_version() are kOther as well.
CharClass classify(char32_t cp);
bool is_js_space(char32_t cp);
const char* unicode_version();

/// Splits UTF-8 text into GPT-2's pre-tokens, matching the regex
///   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
/// as JavaScript (`u` flag) and Python's `regex` evaluate it, by hand (std::regex has no \p{..}).
/// The pieces are views into `text` and concatenate to it exactly, invalid bytes included.
std::vector<std::string_view> gpt2_pretokenize(std::string_view text);

}  // namespace unlearn
