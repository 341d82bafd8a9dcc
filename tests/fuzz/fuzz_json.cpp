// Fuzz target: the strict JSON reader behind config.json, safetensors headers and shard indexes, and the option
// value decoders of the command line and INI files (sizes "256M", id lists "1,2,4"). Invariants: an accepted
// document re-serialised (canonically, below) parses to the same tree; strings are valid UTF-8; exact integers
// round-trip; accepted sizes and lists print back to values that parse to the same result.
#include <algorithm>
#include <string>

#include "fuzz_common.h"
#include "unlearn/parse/json.h"
#include "unlearn/parse/unicode.h"
#include "unlearn/parse/units.h"

using namespace unlearn;

namespace {

void write_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

void write(std::string& out, const JsonValue& v) {
  switch (v.type) {
    case JsonValue::Type::kNull: out += "null"; break;
    case JsonValue::Type::kBool: out += v.boolean ? "true" : "false"; break;
    case JsonValue::Type::kNumber: out += v.text; break;  // the literal as written
    case JsonValue::Type::kString: write_string(out, v.text); break;
    case JsonValue::Type::kArray:
      out += '[';
      for (std::size_t i = 0; i < v.items.size(); ++i) {
        if (i) out += ',';
        write(out, v.items[i]);
      }
      out += ']';
      break;
    case JsonValue::Type::kObject:
      out += '{';
      for (std::size_t i = 0; i < v.members.size(); ++i) {
        if (i) out += ',';
        write_string(out, v.members[i].first);
        out += ':';
        write(out, v.members[i].second);
      }
      out += '}';
      break;
  }
}

bool same(const JsonValue& a, const JsonValue& b) {
  if (a.type != b.type || a.boolean != b.boolean || a.text != b.text || a.items.size() != b.items.size() ||
      a.members.size() != b.members.size())
    return false;
  if (a.type == JsonValue::Type::kNumber && !(a.number == b.number || (a.number != a.number && b.number != b.number)))
    return false;
  for (std::size_t i = 0; i < a.items.size(); ++i)
    if (!same(a.items[i], b.items[i])) return false;
  for (std::size_t i = 0; i < a.members.size(); ++i)
    if (a.members[i].first != b.members[i].first || !same(a.members[i].second, b.members[i].second)) return false;
  return true;
}

/// RFC 8259 text is UTF-8: every accepted string (keys too) is valid UTF-8.
bool valid_utf8(const std::string& s) {
  for (std::size_t p = 0; p < s.size();) {
    const CodePoint c = decode_utf8(s, p);
    if (!c.valid) return false;
    p += c.length;
  }
  return true;
}

void check_values(const JsonValue& v) {
  if (v.is_uint64()) FUZZ_ASSERT(std::to_string(v.as_uint64()) == v.text);
  if (v.type == JsonValue::Type::kString) FUZZ_ASSERT(valid_utf8(v.text));
  for (const auto& i : v.items) check_values(i);
  for (const auto& m : v.members) {
    FUZZ_ASSERT(v.find(m.first) != nullptr && valid_utf8(m.first));
    check_values(m.second);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = fuzz::bytes(data, size);
  JsonValue v;
  if (fuzz::accepts([&] { v = parse_json(text, "doc"); })) {
    check_values(v);
    std::string out;
    write(out, v);
    const JsonValue back = parse_json(out, "re-serialised");  // must not throw
    FUZZ_ASSERT(same(v, back));
  }

  // Command-line and INI option values are short: the first line only.
  const std::string_view line = text.substr(0, std::min<std::size_t>(text.find('\n'), 64));
  std::uint64_t bytes = 0;
  if (fuzz::accepts([&] { bytes = parse_byte_size(line, "--size"); }))
    FUZZ_ASSERT(parse_byte_size(std::to_string(bytes), "--size") == bytes);
  std::vector<int> ids;
  if (fuzz::accepts([&] { ids = parse_int_list(line, "--ids"); })) {
    FUZZ_ASSERT(!ids.empty());
    std::string joined;
    for (int id : ids) {
      FUZZ_ASSERT(id > 0);
      joined += (joined.empty() ? "" : ",") + std::to_string(id);
    }
    FUZZ_ASSERT(parse_int_list(joined, "--ids") == ids);
  }
  return 0;
}
