// The torch-free decoders behind `unlearn convert`: strict JSON and safetensors headers and shard indexes, against
// well-formed and malformed input (label unit: part of the ASan+UBSan build's leak-checked set).
#include <gtest/gtest.h>

#include <string>

#include "unlearn/parse/json.h"
#include "unlearn/parse/safetensors.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

/// `body` throws IoError whose message contains `part`.
template <typename F>
void expect_io_error(F body, const std::string& part) {
  try {
    body();
    ADD_FAILURE() << "no exception; expected one mentioning: " << part;
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what() << "\nlacks: " << part;
  }
}

TEST(Json, ParsesEveryValueKind) {
  const JsonValue v = parse_json(R"( {"a": [1, -2.5e3, true, false, null], "s": "x\"\\\/\n\u00e9\ud83d\ude00",
                                       "big": 18446744073709551615, "o": {}} )", "doc");
  ASSERT_EQ(v.type, JsonValue::Type::kObject);
  const JsonValue& a = *v.find("a");
  ASSERT_EQ(a.items.size(), 5u);
  EXPECT_TRUE(a.items[0].is_uint64());
  EXPECT_EQ(a.items[0].as_uint64(), 1u);
  EXPECT_FALSE(a.items[1].is_uint64());
  EXPECT_DOUBLE_EQ(a.items[1].number, -2500.0);
  EXPECT_TRUE(a.items[2].boolean);
  EXPECT_EQ(a.items[4].type, JsonValue::Type::kNull);
  EXPECT_EQ(v.find("s")->text, "x\"\\/\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_TRUE(v.find("big")->is_uint64());
  EXPECT_EQ(v.find("big")->as_uint64(), 18446744073709551615ull);
  EXPECT_EQ(v.find("o")->type, JsonValue::Type::kObject);
  EXPECT_EQ(v.find("missing"), nullptr);
}

TEST(Json, RejectsMalformedInput) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "unexpected end"},
      {"{\"a\":1,}", "string key"},
      {"[1,]", "unexpected character"},
      {"{\"a\":1,\"a\":2}", "duplicate key"},
      {"[01]", "expected ']'"},
      {"\"abc", "unterminated"},
      {"\"a\x01\"", "control character"},
      {"\"\\x\"", "invalid escape"},
      {"\"\\ud800\"", "surrogate"},
      {"[1] 2", "trailing"},
      {"tru", "invalid literal"},
      {"-", "digit"},
      {"1.", "digit"},
  };
  for (const auto& c : cases) {  // (lambdas may not capture structured bindings in C++17)
    SCOPED_TRACE(c.first);
    expect_io_error([&] { parse_json(c.first, "doc"); }, c.second);
  }
  expect_io_error([] { parse_json(std::string(100, '[') + std::string(100, ']'), "doc"); }, "deeper than 64");
  EXPECT_FALSE(parse_json("18446744073709551616", "n").is_uint64());  // 2^64
  EXPECT_FALSE(parse_json("1e3", "n").is_uint64());
}

std::string le64(std::uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return s;
}

TEST(Safetensors, EncodedHeadersDecode) {
  std::vector<SafetensorsEntry> entries = {{"b", "F32", {2, 3}, 0, 0}, {"a", "BF16", {5}, 0, 0},
                                           {"empty", "F16", {0, 4}, 0, 0}};
  const std::string block = encode_safetensors_header(entries, {{"format", "pt"}});
  EXPECT_EQ((block.size() - 8) % 8, 0u);
  const std::uint64_t data = 24 + 10;
  const std::uint64_t n = safetensors_header_length(block.substr(0, 8), block.size() + data, "f");
  EXPECT_EQ(n, block.size() - 8);
  const SafetensorsHeader h = parse_safetensors_header(block.substr(8), block.size() + data, "f");
  ASSERT_EQ(h.tensors.size(), 3u);
  EXPECT_EQ(h.data_offset, block.size());
  EXPECT_EQ(h.metadata.at("format"), "pt");
  const SafetensorsEntry* b = h.find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->begin, 0u);
  EXPECT_EQ(b->end, 24u);
  EXPECT_EQ(h.find("a")->end, 34u);
  EXPECT_EQ(h.find("empty")->begin, h.find("empty")->end);
}

TEST(Safetensors, RejectsMalformedHeaders) {
  auto parse = [](const std::string& json, std::uint64_t data_bytes) {
    return parse_safetensors_header(json, 8 + json.size() + data_bytes, "m.safetensors");
  };
  const std::pair<std::string, const char*> cases[] = {
      {R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)", "malformed JSON"},
      {R"([1,2])", "not a JSON object"},
      {R"({"t":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}})", "unknown dtype 'F7'"},
      {R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,80]}})", "run past the end"},
      {R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "need 12"},
      {R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", "non-negative integers"},
      {R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", "reversed"},
      {R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", "not a pair"},
      {R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", "unexpected keys"},
      {R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", "overflows"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
       "overlaps"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", "gap"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "belong to no tensor"},
      {R"({"__metadata__":{"k":1}})", "not a string"},
      {R"({"t":3})", "is a number"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.first);
    expect_io_error([&] { parse(c.first, 8); }, c.second);
  }
}

TEST(Safetensors, RejectsImpossibleHeaderLengths) {
  expect_io_error([] { safetensors_header_length("abc", 3, "f"); }, "too short");
  expect_io_error([] { safetensors_header_length(le64(0), 100, "f"); }, "empty safetensors header");
  expect_io_error([] { safetensors_header_length(le64(93), 100, "f"); }, "larger than the file");
  expect_io_error([] { safetensors_header_length(le64(1ull << 40), 1ull << 41, "f"); }, "100 MB");
  EXPECT_EQ(safetensors_header_length(le64(92), 100, "f"), 92u);
}

TEST(Safetensors, ShardIndex) {
  const auto m = parse_safetensors_index(
      R"({"metadata":{"total_size":8},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"x.safetensors"}})",
      "index");
  EXPECT_EQ(m.at("a"), "model-00001-of-00002.safetensors");
  expect_io_error([] { parse_safetensors_index(R"({"weight_map":{"a":"../etc/passwd"}})", "i"); }, "leaves");
  expect_io_error([] { parse_safetensors_index(R"({"weight_map":{"a":3}})", "i"); }, "not a file name");
  expect_io_error([] { parse_safetensors_index(R"({"metadata":{}})", "i"); }, "no 'weight_map'");
  expect_io_error([] { parse_safetensors_index(R"({"weight_map":{}})", "i"); }, "empty");
}

}  // namespace
}  // namespace unlearn
