// A strict JSON reader for untrusted input (RFC 8259: no comments, no trailing commas, no duplicate keys), with
// exact integers for offsets and shapes. parse layer: no LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace unlearn {

struct JsonValue {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  double number = 0;
  std::string text;  // kString: the decoded UTF-8 value; kNumber: the literal as written
  std::vector<JsonValue> items;                             // kArray
  std::vector<std::pair<std::string, JsonValue>> members;   // kObject, in file order

  /// Member `key` of an object, or nullptr (also for non-objects).
  const JsonValue* find(std::string_view key) const;
  /// True for a number written as a plain non-negative integer (no sign, fraction or exponent) that fits 64 bits.
  bool is_uint64() const;
  std::uint64_t as_uint64() const;  // precondition: is_uint64()
  std::string_view type_name() const;
};

/// Parses one JSON document (surrounding whitespace allowed). Throws IoError naming `what` and the byte offset.
/// Nesting deeper than 64 levels is refused, so hostile input cannot exhaust the stack.
JsonValue parse_json(std::string_view text, std::string_view what);

}  // namespace unlearn
