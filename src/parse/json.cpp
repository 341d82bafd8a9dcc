// Strict recursive-descent JSON reader with a depth limit, exact integer literals and UTF-16 surrogate handling.
#include "unlearn/parse/json.h"

#include <cstdlib>
#include <sstream>
#include <unordered_set>

#include "unlearn/parse/unicode.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

constexpr int kMaxDepth = 64;

class Parser {
 public:
  Parser(std::string_view s, std::string_view what) : s_(s), what_(what) {}

  JsonValue document() {
    skip_ws();
    JsonValue v = value(0);
    skip_ws();
    if (p_ != s_.size()) fail("trailing characters after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    UNLEARN_THROW(IoError, what_ << ": malformed JSON at byte " << p_ << ": " << why);
  }

  void skip_ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r')) ++p_;
  }

  char peek() const { return p_ < s_.size() ? s_[p_] : '\0'; }

  void expect(char c) {
    if (peek() != c || p_ >= s_.size()) fail(std::string("expected '") + c + "'");
    ++p_;
  }

  void literal(std::string_view word) {
    if (s_.substr(p_, word.size()) != word) fail("invalid literal");
    p_ += word.size();
  }

  JsonValue value(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than 64 levels");
    JsonValue v;
    switch (peek()) {
      case '{': object(v, depth); break;
      case '[': array(v, depth); break;
      case '"':
        v.type = JsonValue::Type::kString;
        v.text = string();
        break;
      case 't':
        literal("true");
        v.type = JsonValue::Type::kBool;
        v.boolean = true;
        break;
      case 'f':
        literal("false");
        v.type = JsonValue::Type::kBool;
        break;
      case 'n': literal("null"); break;
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) {
          number(v);
        } else {
          fail(p_ >= s_.size() ? "unexpected end of input" : "unexpected character");
        }
    }
    return v;
  }

  void object(JsonValue& v, int depth) {
    v.type = JsonValue::Type::kObject;
    expect('{');
    skip_ws();
    if (peek() == '}') {
      ++p_;
      return;
    }
    // A hash set, not a scan of the members: a 100 MB safetensors header may hold millions of keys, and a
    // quadratic duplicate check took minutes for 40,000 (tests/reliability/test_decoders.cpp).
    std::unordered_set<std::string> keys;
    for (;;) {
      skip_ws();
      if (peek() != '"') fail("expected a string key");
      std::string key = string();
      if (!keys.insert(key).second) fail("duplicate key \"" + key + "\"");
      skip_ws();
      expect(':');
      skip_ws();
      v.members.emplace_back(std::move(key), value(depth + 1));
      skip_ws();
      if (peek() == ',') {
        ++p_;
        continue;
      }
      expect('}');
      return;
    }
  }

  void array(JsonValue& v, int depth) {
    v.type = JsonValue::Type::kArray;
    expect('[');
    skip_ws();
    if (peek() == ']') {
      ++p_;
      return;
    }
    for (;;) {
      skip_ws();
      v.items.push_back(value(depth + 1));
      skip_ws();
      if (peek() == ',') {
        ++p_;
        continue;
      }
      expect(']');
      return;
    }
  }

  void number(JsonValue& v) {
    const std::size_t start = p_;
    if (peek() == '-') ++p_;
    auto digits = [&] {
      const std::size_t d = p_;
      while (p_ < s_.size() && s_[p_] >= '0' && s_[p_] <= '9') ++p_;
      if (p_ == d) fail("expected a digit");
    };
    if (peek() == '0') {
      ++p_;
    } else {
      digits();
    }
    if (peek() == '.') {
      ++p_;
      digits();
    }
    if (peek() == 'e' || peek() == 'E') {
      ++p_;
      if (peek() == '+' || peek() == '-') ++p_;
      digits();
    }
    v.type = JsonValue::Type::kNumber;
    v.text = std::string(s_.substr(start, p_ - start));
    v.number = std::strtod(v.text.c_str(), nullptr);
  }

  unsigned hex4() {
    if (p_ + 4 > s_.size()) fail("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[p_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
      else fail("invalid \\u escape");
    }
    return v;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (p_ >= s_.size()) fail("unterminated string");
      const auto c = static_cast<unsigned char>(s_[p_]);
      if (c == '"') {
        ++p_;
        return out;
      }
      if (c < 0x20) fail("control character inside a string");
      if (c >= 0x80) {
        // RFC 8259 text is UTF-8: invalid sequences would reach tensor names and file names undetected.
        const CodePoint d = decode_utf8(s_, p_);
        if (!d.valid) fail("invalid UTF-8 inside a string");
        out.append(s_.substr(p_, d.length));
        p_ += d.length;
        continue;
      }
      if (c != '\\') {
        out += static_cast<char>(c);
        ++p_;
        continue;
      }
      ++p_;
      const char e = peek();
      ++p_;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.substr(p_, 2) != "\\u") fail("unpaired UTF-16 surrogate");
            p_ += 2;
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("unpaired UTF-16 surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("unpaired UTF-16 surrogate");
          }
          append_utf8(out, cp);
          break;
        }
        default: --p_; fail("invalid escape");
      }
    }
  }

  std::string_view s_;
  std::string_view what_;
  std::size_t p_ = 0;
};

}  // namespace

const JsonValue* JsonValue::find(std::string_view key) const {
  if (type != Type::kObject) return nullptr;
  for (const auto& m : members)
    if (m.first == key) return &m.second;
  return nullptr;
}

bool JsonValue::is_uint64() const {
  if (type != Type::kNumber || text.empty() || text.size() > 20) return false;
  for (char c : text)
    if (c < '0' || c > '9') return false;
  if (text.size() > 1 && text[0] == '0') return false;
  return text.size() < 20 || text <= "18446744073709551615";
}

std::uint64_t JsonValue::as_uint64() const { return std::strtoull(text.c_str(), nullptr, 10); }

std::string_view JsonValue::type_name() const {
  switch (type) {
    case Type::kNull: return "null";
    case Type::kBool: return "a boolean";
    case Type::kNumber: return "a number";
    case Type::kString: return "a string";
    case Type::kArray: return "an array";
    case Type::kObject: return "an object";
  }
  return "?";
}

JsonValue parse_json(std::string_view text, std::string_view what) { return Parser(text, what).document(); }

}  // namespace unlearn
