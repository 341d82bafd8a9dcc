// UTF-8 decoding, Unicode classes and the GPT-2 pre-tokeniser (see unicode.h).
#include "unlearn/parse/unicode.h"

#include <algorithm>
#include <cstdint>

namespace unlearn {
namespace {

enum RangeClass : std::uint8_t { kL, kN };
struct UnicodeRange {
  char32_t lo, hi;
  RangeClass cls;
};
#include "unicode_tables.inc"

}  // namespace

const char* unicode_version() { return kUnicodeVersion; }

CodePoint decode_utf8(std::string_view text, std::size_t pos) {
  const auto b0 = static_cast<unsigned char>(text[pos]);
  CodePoint bad{b0, 1, false};
  if (b0 < 0x80) return {b0, 1, true};
  std::size_t len = 0;
  char32_t cp = 0, min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return bad;  // continuation byte or 0xF8..0xFF
  }
  if (pos + len > text.size()) return bad;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(text[pos + k]);
    if ((b & 0xC0) != 0x80) return bad;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return bad;
  return {cp, len, true};
}

bool is_js_space(char32_t c) {
  // ECMA-262 WhiteSpace (TAB VT FF SP NBSP ZWNBSP and category Zs) plus LineTerminator (LF CR LS PS).
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0xA0: case 0x1680:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000: case 0xFEFF:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

CharClass classify(char32_t c) {
  if (is_js_space(c)) return CharClass::kSpace;
  if (c < 0x80) {  // fast path for ASCII
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return CharClass::kLetter;
    if (c >= '0' && c <= '9') return CharClass::kNumber;
    return CharClass::kOther;
  }
  const auto* end = std::end(kUnicodeRanges);
  const auto* it = std::upper_bound(std::begin(kUnicodeRanges), end, c,
                                    [](char32_t v, const UnicodeRange& r) { return v < r.lo; });
  if (it == std::begin(kUnicodeRanges)) return CharClass::kOther;
  --it;
  if (c > it->hi) return CharClass::kOther;
  return it->cls == kL ? CharClass::kLetter : CharClass::kNumber;
}

std::vector<std::string_view> gpt2_pretokenize(std::string_view text) {
  // Decode once: classes and byte offsets per code point (invalid bytes are their own kOther "code point").
  std::vector<std::size_t> offset;
  std::vector<CharClass> cls;
  std::vector<char32_t> cps;
  offset.reserve(text.size() + 1);
  for (std::size_t p = 0; p < text.size();) {
    const CodePoint d = decode_utf8(text, p);
    offset.push_back(p);
    cps.push_back(d.valid ? d.cp : 0xFFFFFFFFu);
    cls.push_back(d.valid ? classify(d.cp) : CharClass::kOther);
    p += d.length;
  }
  const std::size_t n = cps.size();
  offset.push_back(text.size());

  std::vector<std::string_view> out;
  auto emit = [&](std::size_t i, std::size_t j) { out.push_back(text.substr(offset[i], offset[j] - offset[i])); };
  auto run_end = [&](std::size_t j, CharClass c) {
    while (j < n && cls[j] == c) ++j;
    return j;
  };
  std::size_t i = 0;
  while (i < n) {
    // 's|'t|'re|'ve|'m|'ll|'d  (case-sensitive, ASCII apostrophe only)
    if (cps[i] == '\'' && i + 1 < n) {
      const char32_t a = cps[i + 1];
      const char32_t b = i + 2 < n ? cps[i + 2] : 0;
      std::size_t len = 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') len = 2;
      else if ((a == 'r' || a == 'v') && b == 'e') len = 3;
      else if (a == 'l' && b == 'l') len = 3;
      if (len) {
        emit(i, i + len);
        i += len;
        continue;
      }
    }
    //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+ : an optional U+0020 then a run of one class.
    const std::size_t k = (cps[i] == ' ' && i + 1 < n && cls[i + 1] != CharClass::kSpace) ? i + 1 : i;
    if (cls[k] != CharClass::kSpace) {
      const std::size_t j = run_end(k + 1, cls[k]);
      emit(i, j);
      i = j;
      continue;
    }
    // \s+(?!\S) | \s+ : a whitespace run; when a non-space follows, its last character is left to start the
    // next piece (so " word" keeps its space), unless the run is a single character.
    std::size_t j = run_end(i + 1, CharClass::kSpace);
    if (j < n && j - i >= 2) --j;
    emit(i, j);
    i = j;
  }
  return out;
}

}  // namespace unlearn
