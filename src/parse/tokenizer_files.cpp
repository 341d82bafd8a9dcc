// Strict readers of GPT-2's encoder.json and vocab.bpe (see tokenizer_files.h).
#include "unlearn/parse/tokenizer_files.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "unlearn/parse/unicode.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

/// Recursive-descent reader of the one JSON shape encoder.json has. Positions in messages are byte offsets.
class JsonIntObjectReader {
 public:
  JsonIntObjectReader(std::string_view text, std::string_view what) : s_(text), what_(what) {}

  std::vector<std::pair<std::string, std::int64_t>> read() {
    std::vector<std::pair<std::string, std::int64_t>> out;
    std::unordered_set<std::string> seen;
    skip_ws();
    expect('{');
    skip_ws();
    if (peek() == '}') {
      ++p_;
    } else {
      while (true) {
        skip_ws();
        std::string key = read_string();
        skip_ws();
        expect(':');
        skip_ws();
        const std::int64_t value = read_int();
        if (!seen.insert(key).second) fail("duplicate key");
        out.emplace_back(std::move(key), value);
        skip_ws();
        const char c = next();
        if (c == '}') break;
        if (c != ',') fail("expected ',' or '}'");
      }
    }
    skip_ws();
    if (p_ != s_.size()) fail("trailing bytes after the object");
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    UNLEARN_THROW(IoError, what_ << ": malformed JSON at byte " << p_ << ": " << why);
  }
  char peek() const { return p_ < s_.size() ? s_[p_] : '\0'; }
  char next() {
    if (p_ >= s_.size()) fail("unexpected end of file");
    return s_[p_++];
  }
  void expect(char c) {
    if (next() != c) {
      --p_;
      fail(std::string("expected '") + c + "'");
    }
  }
  void skip_ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r')) ++p_;
  }
  char32_t read_hex4() {
    char32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = next();
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<char32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<char32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<char32_t>(c - 'A' + 10);
      else fail("bad \\u escape");
    }
    return v;
  }
  std::string read_string() {
    expect('"');
    std::string out;
    while (true) {
      const auto c = static_cast<unsigned char>(next());
      if (c == '"') return out;
      if (c < 0x20) fail("control character inside a string");
      if (c == '\\') {
        const char e = next();
        switch (e) {
          case '"': out.push_back('"'); break;
          case '\\': out.push_back('\\'); break;
          case '/': out.push_back('/'); break;
          case 'b': out.push_back('\b'); break;
          case 'f': out.push_back('\f'); break;
          case 'n': out.push_back('\n'); break;
          case 'r': out.push_back('\r'); break;
          case 't': out.push_back('\t'); break;
          case 'u': {
            char32_t cp = read_hex4();
            if (cp >= 0xDC00 && cp <= 0xDFFF) fail("lone low surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {  // a pair encodes one supplementary code point
              if (next() != '\\' || next() != 'u') fail("lone high surrogate");
              const char32_t lo = read_hex4();
              if (lo < 0xDC00 || lo > 0xDFFF) fail("lone high surrogate");
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            append_utf8(out, cp);
            break;
          }
          default: fail("unknown escape");
        }
      } else if (c < 0x80) {
        out.push_back(static_cast<char>(c));
      } else {
        --p_;
        const CodePoint d = decode_utf8(s_, p_);
        if (!d.valid) fail("invalid UTF-8");
        out.append(s_.substr(p_, d.length));
        p_ += d.length;
      }
    }
  }
  std::int64_t read_int() {
    const std::size_t start = p_;
    if (peek() == '-') fail("negative id");
    std::int64_t v = 0;
    while (p_ < s_.size() && s_[p_] >= '0' && s_[p_] <= '9') {
      if (v > (std::numeric_limits<std::int64_t>::max() - 9) / 10) fail("integer too large");
      v = v * 10 + (s_[p_] - '0');
      ++p_;
    }
    if (p_ == start) fail("expected a non-negative integer");
    if (p_ - start > 1 && s_[start] == '0') fail("leading zero");
    if (peek() == '.' || peek() == 'e' || peek() == 'E') fail("expected an integer, got a fraction");
    return v;
  }

  std::string_view s_;
  std::string_view what_;
  std::size_t p_ = 0;
};

/// Inverse of gpt2_byte_to_unicode: the code points are all below U+0144.
std::string stand_ins_to_bytes(std::string_view token, std::string_view what, const std::string& where) {
  static const auto inverse = [] {
    std::array<int, 0x144> inv{};
    inv.fill(-1);
    const auto& fwd = gpt2_byte_to_unicode();
    for (int b = 0; b < 256; ++b) inv[fwd[static_cast<std::size_t>(b)]] = b;
    return inv;
  }();
  std::string out;
  for (std::size_t p = 0; p < token.size();) {
    const CodePoint d = decode_utf8(token, p);
    if (!d.valid || d.cp >= inverse.size() || inverse[d.cp] < 0) {
      std::ostringstream hex;
      hex << std::hex << static_cast<std::uint32_t>(d.cp);
      UNLEARN_THROW(IoError, what << ": " << where << ": U+" << hex.str()
                                  << " is not one of the 256 byte stand-ins of byte-level BPE");
    }
    out.push_back(static_cast<char>(inverse[d.cp]));
    p += d.length;
  }
  return out;
}

}  // namespace

std::vector<std::pair<std::string, std::int64_t>> parse_json_int_object(std::string_view text, std::string_view what) {
  return JsonIntObjectReader(text, what).read();
}

std::vector<std::pair<std::string, std::string>> parse_bpe_merges(std::string_view text, std::string_view what) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    const bool last = eol == std::string_view::npos;
    if (last) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_no == 1 && line.substr(0, 8) == "#version") continue;
    if (line.empty()) {
      if (pos >= text.size()) break;  // a blank last line is the file's final newline
      UNLEARN_THROW(IoError, what << ": line " << line_no << ": blank line inside the merge list");
    }
    const std::size_t sp = line.find(' ');
    if (sp == 0 || sp == std::string_view::npos || sp + 1 == line.size() ||
        line.find_first_of(" \t", sp + 1) != std::string_view::npos)
      UNLEARN_THROW(IoError, what << ": line " << line_no << ": expected two tokens separated by one space");
    out.emplace_back(std::string(line.substr(0, sp)), std::string(line.substr(sp + 1)));
  }
  return out;
}

const std::array<char32_t, 256>& gpt2_byte_to_unicode() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      t[static_cast<std::size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

BpeVocabulary parse_gpt2_vocabulary(std::string_view encoder_json, std::string_view vocab_bpe,
                                    std::string_view encoder_name, std::string_view merges_name) {
  const auto entries = parse_json_int_object(encoder_json, encoder_name);
  if (entries.empty()) UNLEARN_THROW(IoError, encoder_name << ": the vocabulary is empty");
  if (entries.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
    UNLEARN_THROW(IoError, encoder_name << ": too many tokens");
  BpeVocabulary v;
  v.tokens.resize(entries.size());
  std::vector<bool> filled(entries.size(), false);
  std::unordered_map<std::string, std::int32_t> by_bytes;
  by_bytes.reserve(entries.size() * 2);
  for (const auto& [key, id] : entries) {
    if (id >= static_cast<std::int64_t>(entries.size()))
      UNLEARN_THROW(IoError, encoder_name << ": id " << id << " is outside 0.." << entries.size() - 1
                                          << " (ids must be dense)");
    const auto i = static_cast<std::size_t>(id);
    if (filled[i]) UNLEARN_THROW(IoError, encoder_name << ": id " << id << " is used twice");
    filled[i] = true;
    v.tokens[i] = stand_ins_to_bytes(key, encoder_name, "token id " + std::to_string(id));
    if (!by_bytes.emplace(v.tokens[i], static_cast<std::int32_t>(id)).second)
      UNLEARN_THROW(IoError, encoder_name << ": token id " << id << " duplicates the bytes of another token");
  }
  for (int b = 0; b < 256; ++b)
    if (!by_bytes.count(std::string(1, static_cast<char>(b))))
      UNLEARN_THROW(IoError, encoder_name << ": byte " << b << " has no token (byte-level BPE needs all 256)");

  const auto merges = parse_bpe_merges(vocab_bpe, merges_name);
  std::unordered_set<std::uint64_t> seen;
  v.merges.reserve(merges.size());
  for (std::size_t r = 0; r < merges.size(); ++r) {
    const std::string where = "merge " + std::to_string(r);
    const std::string left = stand_ins_to_bytes(merges[r].first, merges_name, where);
    const std::string right = stand_ins_to_bytes(merges[r].second, merges_name, where);
    const auto l = by_bytes.find(left), rt = by_bytes.find(right), res = by_bytes.find(left + right);
    if (l == by_bytes.end() || rt == by_bytes.end() || res == by_bytes.end())
      UNLEARN_THROW(IoError, merges_name << ": " << where << " ('" << merges[r].first << "' '" << merges[r].second
                                         << "') uses or produces a token missing from " << encoder_name);
    const std::uint64_t key = (static_cast<std::uint64_t>(l->second) << 32) | static_cast<std::uint32_t>(rt->second);
    if (!seen.insert(key).second) UNLEARN_THROW(IoError, merges_name << ": " << where << " repeats an earlier merge");
    v.merges.push_back({l->second, rt->second, res->second});
  }
  return v;
}

std::string read_file_bytes(const std::string& path) {
  // A directory opens like a file, and libstdc++'s filebuf then throws std::ios_base::failure (EISDIR) out of
  // the read, past the error policy: found by tests/reliability/bad_input.sh.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) UNLEARN_THROW(IoError, "cannot read '" << path << "': a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) UNLEARN_THROW(IoError, "cannot open '" << path << "'");
  std::string data;
  try {
    data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const std::exception& e) {
    UNLEARN_THROW(IoError, "cannot read '" << path << "': " << e.what());
  }
  if (in.bad()) UNLEARN_THROW(IoError, "cannot read '" << path << "'");
  return data;
}

BpeVocabulary read_gpt2_vocabulary(const std::string& encoder_json_path, const std::string& vocab_bpe_path) {
  const std::string enc = read_file_bytes(encoder_json_path);
  const std::string bpe = read_file_bytes(vocab_bpe_path);
  return parse_gpt2_vocabulary(enc, bpe, encoder_json_path, vocab_bpe_path);
}

}  // namespace unlearn
