// Decoders of untrusted bytes, beyond what the fuzzers assert: the findings of the fuzzing work stay fixed
// (invalid UTF-8 in JSON strings, quadratic duplicate-key detection), and the checkpoint attribute decoder that
// the HDF5 reader calls (decode_checkpoint_attributes) rejects each malformed attribute with a message naming it.
// Label unit: torch-free, also leak-checked in the ASan+UBSan tree.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <string>

#include "unlearn/parse/checkpoint_attributes.h"
#include "unlearn/parse/json.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

template <typename E, typename F>
void expect_error(F body, const std::string& part) {
  try {
    body();
    ADD_FAILURE() << "no exception; expected one mentioning: " << part;
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what() << "\nlacks: " << part;
  }
}

// ---- JSON ------------------------------------------------------------------------------------------------------

TEST(JsonFindings, RejectsInvalidUtf8InStringsAndKeys) {
  // Found by fuzz_json (regressions/json/invalid_utf8_in_key): raw bytes >= 0x80 were copied without validation.
  for (const char* bad : {"\"\xff\"", "\"\xc3\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"",
                          "{\"a\x80\": 1}", "[\"ok\", \"\xe2\x82\"]"}) {
    SCOPED_TRACE(bad);
    expect_error<IoError>([&] { parse_json(bad, "doc"); }, "invalid UTF-8");
  }
  EXPECT_EQ(parse_json("\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", "doc").text, "caf\xc3\xa9 \xf0\x9f\x98\x80");
}

TEST(JsonFindings, ManyKeysParseInLinearTime) {
  // A safetensors header may be 100 MB. The member-by-member duplicate check took 13 s for 40,000 keys (-O2) and
  // grew quadratically; with a hash set 200,000 keys take well under a second (seconds under ASan).
  std::string doc = "{";
  const int n = 200000;
  for (int i = 0; i < n; ++i) doc += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
  const auto start = std::chrono::steady_clock::now();
  const JsonValue v = parse_json(doc + "}", "header");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(v.members.size(), static_cast<std::size_t>(n));
  EXPECT_LT(seconds, 30.0) << "quadratic again?";
  expect_error<IoError>([&] { parse_json(doc + ",\"k123456\":0}", "header"); }, "duplicate key \"k123456\"");
}

// ---- model config text -----------------------------------------------------------------------------------------

TEST(ModelConfigText, DecodesOverDefaults) {
  const ModelConfigValues v = decode_model_config({{"family", "llama"}, {"n_heads", "8"}, {"d_model", "-3"}});
  EXPECT_EQ(v.family, "llama");
  EXPECT_EQ(v.n_heads, 8);
  EXPECT_EQ(v.n_kv_heads, 8);       // defaults to n_heads
  EXPECT_EQ(v.norm_eps, 1e-6);      // LLaMA default
  EXPECT_EQ(v.d_model, -3);         // sizes are ModelConfig::validate's business
  EXPECT_EQ(decode_model_config({{"norm_eps", "2.5e-5"}}).norm_eps, 2.5e-5);
  EXPECT_EQ(decode_model_config({{"vocab_size", "-9223372036854775808"}}).vocab_size, INT64_MIN);
}

TEST(ModelConfigText, RejectsMalformedValues) {
  const std::pair<const char*, const char*> cases[][1] = {
      {{"d_model", "12x"}}, {{"d_model", ""}}, {{"d_model", " 12"}}, {{"d_model", "1e3"}},
      {{"n_layers", "9223372036854775808"}}, {{"norm_eps", "nan"}}, {{"norm_eps", "inf"}},
      {{"rope_theta", "1e999"}}, {{"rope_theta", "0x10"}}, {{"norm_eps", " 1e-5"}}};
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c[0].first) + " = '" + c[0].second + "'");
    expect_error<ConfigError>([&] { decode_model_config({{c[0].first, c[0].second}}); },
                              std::string("model config: ") + c[0].first + " = '" + c[0].second + "' is not");
  }
  expect_error<ConfigError>([] { decode_model_config({{"family", "gpt3"}}); }, "unknown model family 'gpt3'");
  expect_error<ConfigError>([] { decode_model_config({{"dtype", "float16"}}); }, "unsupported model dtype");
  expect_error<ConfigError>([] { decode_model_config({{"colour", "blue"}}); }, "unknown key 'colour'");
}

// ---- checkpoint root attributes --------------------------------------------------------------------------------

Attributes good_checkpoint() {
  return {{"format", std::string("unlearn-checkpoint")}, {"format_version", std::int64_t{1}},
          {"kind", std::string("model")},                 {"step", std::int64_t{12}},
          {"dtype", std::string("bf16")},                 {"tokenizer", std::string("bytes")},
          {"content_digest", std::string("0123456789abcdef")},
          {"config.family", std::string("gpt2")},         {"config.d_model", std::string("32")},
          {"config.n_heads", std::int64_t{4}},            {"provenance.seed", std::string("3")},
          {"provenance.rate", 0.5}};
}

TEST(CheckpointAttributesDecode, AcceptsAWellFormedCheckpoint) {
  const CheckpointAttributes c = decode_checkpoint_attributes(good_checkpoint(), "m.h5");
  EXPECT_EQ(c.step, 12);
  EXPECT_EQ(c.storage, StorageType::kBFloat16);
  EXPECT_EQ(c.config_text.at("n_heads"), "4");  // integer attributes read as text
  EXPECT_EQ(c.provenance.at("rate"), "0.5");
  EXPECT_EQ(c.content_digest, "0123456789abcdef");
}

TEST(CheckpointAttributesDecode, NamesTheBadAttribute) {
  struct Case {
    const char* key;
    AttributeValue value;  // std::monostate-free: erase the key when `erase`
    bool erase;
    const char* message;
  };
  const Case cases[] = {
      {"format", std::string("unlearn-optimizer"), false, "is an HDF5 file but not an unlearn checkpoint"},
      {"format", std::string(), true, "not an unlearn checkpoint"},
      {"format_version", std::int64_t{2}, false, "has format_version 2; this build reads version 1"},
      {"format_version", std::string("1"), false, "lacks the integer attribute 'format_version'"},
      {"kind", std::string("optimizer"), false, "holds 'optimizer', not a model"},
      {"step", 12.0, false, "lacks the integer attribute 'step'"},
      {"step", std::int64_t{-1}, false, "negative step -1"},
      {"tokenizer", std::string(), true, "lacks the attribute 'tokenizer'"},
      {"dtype", std::string("float8"), false, "unknown storage dtype 'float8'"},
      {"content_digest", std::string("0123456789ABCDEF"), false, "is not 16 lower-case hex digits"},
      {"content_digest", std::string("01234"), false, "is not 16 lower-case hex digits"},
      {"config.d_model", std::string("thirty"), false, "holds an invalid model config: model config: d_model"},
      {"config.colour", std::string("blue"), false, "invalid model config: model config: unknown key 'colour'"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.key);
    Attributes a = good_checkpoint();
    if (c.erase) {
      a.erase(c.key);
    } else {
      a[c.key] = c.value;
    }
    expect_error<IoError>([&] { decode_checkpoint_attributes(a, "dir/m.h5"); }, c.message);
    expect_error<IoError>([&] { decode_checkpoint_attributes(a, "dir/m.h5"); }, "dir/m.h5");
  }
}

// ---- the attribute record rank 0 broadcasts --------------------------------------------------------------------

TEST(AttributeRecord, RoundTripsEveryValueKind) {
  Attributes a = good_checkpoint();
  a["empty"] = std::string();
  a["colon:in:key"] = std::string("x:1:y");
  a["nul"] = std::string("a\0b", 3);
  a["min"] = std::int64_t{INT64_MIN};
  a["neg zero"] = -0.0;
  const std::string record = encode_attribute_record(a);
  const Attributes back = decode_attribute_record(record);
  EXPECT_EQ(back, a);
  EXPECT_TRUE(std::signbit(std::get<double>(back.at("neg zero"))));
  EXPECT_EQ(encode_attribute_record(back), record);
}

TEST(AttributeRecord, RejectsWhatTheEncoderNeverWrites) {
  // The old decoder (std::stoull on substrings) threw std::invalid_argument or std::out_of_range here, or read a
  // length that wrapped the position back to the start of the record.
  for (const std::string bad : {"x1:a1:b", "s1:a", "s1:a9:b", "s:a1:b", "s01:a1:b", "sa:a1:b", "i1:a2:07",
                                "i1:a1:+", "i1:a20:99999999999999999999", "d1:a3:1.5", "s1:b1:xs1:a1:y",
                                "s1:a1:xs1:a1:y", "s99999999999999999999999:a", "s18446744073709551615:a"}) {
    SCOPED_TRACE(bad);
    expect_error<IoError>([&] { decode_attribute_record(bad); }, "malformed attribute record");
  }
  EXPECT_TRUE(decode_attribute_record("").empty());
}

}  // namespace
}  // namespace unlearn
