// parse layer: UTF-8, Unicode classes, the GPT-2 pre-tokeniser and the strict encoder.json / vocab.bpe readers.
// Links unlearn_parse only (no LibTorch, no HDF5): cheap under the sanitizers.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "unlearn/parse/tokenizer_files.h"
#include "unlearn/parse/unicode.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

std::vector<std::string> pieces(std::string_view text) {
  std::vector<std::string> out;
  for (auto p : gpt2_pretokenize(text)) out.emplace_back(p);
  return out;
}

TEST(Utf8, DecodesAndRejectsMalformedSequences) {
  EXPECT_EQ(decode_utf8("A", 0).cp, U'A');
  const CodePoint e = decode_utf8("\xC3\xA9", 0);  // é
  EXPECT_TRUE(e.valid);
  EXPECT_EQ(e.cp, 0xE9u);
  EXPECT_EQ(e.length, 2u);
  EXPECT_EQ(decode_utf8("\xF0\x9F\x98\x80", 0).cp, 0x1F600u);
  for (const char* bad : {"\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\x80", "\xE2\x82", "\xFF"}) {
    const CodePoint d = decode_utf8(bad, 0);
    EXPECT_FALSE(d.valid) << bad;
    EXPECT_EQ(d.length, 1u);
  }
}

TEST(UnicodeClasses, MatchGeneralCategoriesAndJavaScriptSpace) {
  EXPECT_EQ(classify(U'a'), CharClass::kLetter);
  EXPECT_EQ(classify(0xE9), CharClass::kLetter);     // é (Ll)
  EXPECT_EQ(classify(0x4E2D), CharClass::kLetter);   // 中 (Lo)
  EXPECT_EQ(classify(0x02B0), CharClass::kLetter);   // ʰ (Lm)
  EXPECT_EQ(classify(U'7'), CharClass::kNumber);
  EXPECT_EQ(classify(0x0663), CharClass::kNumber);   // Arabic-Indic three (Nd)
  EXPECT_EQ(classify(0x00BD), CharClass::kNumber);   // ½ (No)
  EXPECT_EQ(classify(0x2167), CharClass::kNumber);   // Roman numeral eight (Nl)
  EXPECT_EQ(classify(0x00A0), CharClass::kSpace);    // no-break space
  EXPECT_EQ(classify(0x3000), CharClass::kSpace);
  EXPECT_EQ(classify(0xFEFF), CharClass::kSpace);    // JavaScript counts the BOM as \s
  EXPECT_EQ(classify(0x0085), CharClass::kOther);    // NEL is not \s in JavaScript
  EXPECT_EQ(classify(0x0301), CharClass::kOther);    // combining acute (Mn)
  EXPECT_EQ(classify(0x1F600), CharClass::kOther);   // emoji (So)
  EXPECT_EQ(classify(0x10FFFF), CharClass::kOther);
  EXPECT_STREQ(unicode_version(), "14.0.0");
}

TEST(Gpt2Pretokenize, FollowsTheRegexAlternatives) {
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(pieces("I'm don't we'll they've she'd you're it's"),
            (V{"I", "'m", " don", "'t", " we", "'ll", " they", "'ve", " she", "'d", " you", "'re", " it", "'s"}));
  EXPECT_EQ(pieces("IT'S"), (V{"IT", "'", "S"}));  // contractions are case-sensitive
  EXPECT_EQ(pieces("abc123 456!!?"), (V{"abc", "123", " 456", "!!?"}));
  EXPECT_EQ(pieces("a  b"), (V{"a", " ", " b"}));          // \s+(?!\S) leaves the last space to " b"
  EXPECT_EQ(pieces("a\n\nb"), (V{"a", "\n", "\n", "b"}));
  EXPECT_EQ(pieces("a \n b"), (V{"a", " \n", " b"}));
  EXPECT_EQ(pieces("end   "), (V{"end", "   "}));            // trailing run kept whole
  EXPECT_EQ(pieces("x\ty"), (V{"x", "\t", "y"}));            // a single non-space-led whitespace char
  EXPECT_EQ(pieces(" 'tis"), (V{" '", "tis"}));             // " ?[^\s\p{L}\p{N}]+" takes the apostrophe
  EXPECT_EQ(pieces("caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87"), (V{"caf\xC3\xA9", " \xE4\xB8\xAD\xE6\x96\x87"}));
  EXPECT_EQ(pieces(""), V{});
}

TEST(Gpt2Pretokenize, PiecesConcatenateToTheInputEvenWithInvalidBytes) {
  const std::string text = "ok \xFF\xFEjunk\xC3 then 12\xE2\x82\xAC\n\n  x'";
  std::string joined;
  for (auto p : gpt2_pretokenize(text)) joined += p;
  EXPECT_EQ(joined, text);
}

TEST(ByteToUnicode, IsGpt2sTable) {
  const auto& t = gpt2_byte_to_unicode();
  EXPECT_EQ(t[' '], 0x120u);   // Ġ
  EXPECT_EQ(t['\n'], 0x10Au);  // Ċ
  EXPECT_EQ(t['A'], U'A');
  EXPECT_EQ(t[0], 0x100u);
  EXPECT_EQ(t[173], 0x143u);   // the last stand-in
  std::vector<char32_t> v(t.begin(), t.end());
  std::sort(v.begin(), v.end());
  EXPECT_EQ(std::unique(v.begin(), v.end()), v.end());
}

TEST(JsonIntObject, ParsesEscapesAndRejectsMalformedInput) {
  const auto e = parse_json_int_object(R"( {"a": 0, "\u0120t": 1, "\"\\\/": 2, "\ud83d\ude00": 3} )", "t");
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[1].first, "\xC4\xA0t");
  EXPECT_EQ(e[2].first, "\"\\/");
  EXPECT_EQ(e[3].first, "\xF0\x9F\x98\x80");
  EXPECT_EQ(e[3].second, 3);
  EXPECT_TRUE(parse_json_int_object("{}", "t").empty());
  for (const char* bad : {"", "{", "[]", R"({"a": 1,})", R"({"a": -1})", R"({"a": 1.5})", R"({"a": "1"})",
                          R"({"a": 1} x)", R"({"a": 1, "a": 2})", R"({"\ud800": 1})", R"({"a": 01})",
                          "{\"a\n\": 1}", R"({"a" 1})", R"({"\q": 1})"}) {
    EXPECT_THROW(parse_json_int_object(bad, "t"), IoError) << bad;
  }
  try {
    parse_json_int_object(R"({"a": 1, "b": x})", "encoder.json");
    FAIL();
  } catch (const IoError& err) {
    EXPECT_NE(std::string(err.what()).find("encoder.json: malformed JSON at byte 14"), std::string::npos) << err.what();
  }
}

TEST(BpeMerges, ParsesAndRejectsMalformedLines) {
  const auto m = parse_bpe_merges("#version: 0.2\n\xC4\xA0 t\nh e\n", "v");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].first, "\xC4\xA0");
  EXPECT_EQ(m[1].second, "e");
  EXPECT_EQ(parse_bpe_merges("a b", "v").size(), 1u);  // no final newline
  for (const char* bad : {"a\n", "a b c\n", "a  b\n", " a\n", "a b\n\nc d\n", "a \n"})
    EXPECT_THROW(parse_bpe_merges(bad, "v"), IoError) << bad;
}

/// A complete byte-level vocabulary: the 256 stand-ins, then the given merged tokens, then "<|endoftext|>".
std::string tiny_encoder(const std::vector<std::string>& merged) {
  std::string json = "{";
  const auto& t = gpt2_byte_to_unicode();
  int id = 0;
  auto key = [](char32_t cp) {
    std::string s;
    if (cp == '"' || cp == '\\') return std::string("\\") + static_cast<char>(cp);
    if (cp < 0x80) return std::string(1, static_cast<char>(cp));
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    return s;
  };
  for (int b = 0; b < 256; ++b) json += (b ? ", \"" : "\"") + key(t[static_cast<std::size_t>(b)]) + "\": " + std::to_string(id++);
  for (const auto& m : merged) json += ", \"" + m + "\": " + std::to_string(id++);
  json += ", \"<|endoftext|>\": " + std::to_string(id) + "}";
  return json;
}

TEST(Gpt2Vocabulary, LoadsAValidVocabulary) {
  const auto v = parse_gpt2_vocabulary(tiny_encoder({"\xC4\xA0t", "he", "\xC4\xA0the"}), "#version: 0.2\n\xC4\xA0 t\nh e\n\xC4\xA0t he\n");
  EXPECT_EQ(v.tokens.size(), 260u);
  EXPECT_EQ(v.tokens[256], " t");
  EXPECT_EQ(v.tokens[258], " the");
  EXPECT_EQ(v.tokens[259], "<|endoftext|>");
  ASSERT_EQ(v.merges.size(), 3u);
  EXPECT_EQ(v.merges[2].left, 256);
  EXPECT_EQ(v.merges[2].right, 257);
  EXPECT_EQ(v.merges[2].result, 258);
}

TEST(Gpt2Vocabulary, RejectsInconsistentFiles) {
  const std::string enc = tiny_encoder({"he"});
  EXPECT_THROW(parse_gpt2_vocabulary(enc, "x y\n"), IoError);      // result "xy" not in the vocabulary
  EXPECT_THROW(parse_gpt2_vocabulary(enc, "h e\nh e\n"), IoError);  // repeated merge
  EXPECT_THROW(parse_gpt2_vocabulary(R"({"a": 0})", ""), IoError);  // bytes missing
  EXPECT_THROW(parse_gpt2_vocabulary(R"({"a": 5})", ""), IoError);  // ids not dense
  EXPECT_THROW(parse_gpt2_vocabulary("{}", ""), IoError);
  std::string bad_char = enc;
  bad_char.replace(bad_char.find("\"he\""), 4, "\"h\xE2\x82\xAC\"");  // € is not a byte stand-in
  EXPECT_THROW(parse_gpt2_vocabulary(bad_char, ""), IoError);
}

TEST(Gpt2Vocabulary, MissingFilesNameThePath) {
  try {
    read_gpt2_vocabulary("/nonexistent/encoder.json", "/nonexistent/vocab.bpe");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/encoder.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace unlearn
