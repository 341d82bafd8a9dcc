// data layer: SHA-256, tokenizers, corpus splitters, splits, canaries and the HDF5 dataset round trip.
// Real text: the fortunes-min files when installed (tools/install-deps.sh installs them), else the test skips.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "unlearn/data/corpus.h"
#include "unlearn/data/dataset.h"
#include "unlearn/data/sha256.h"
#include "unlearn/data/tokenizer.h"
#include "unlearn/parse/tokenizer_files.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {
namespace fs = std::filesystem;

const char* kFortunes = "/usr/share/games/fortunes";

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("unlearn_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string str(const std::string& rel = "") const { return rel.empty() ? path_.string() : (path_ / rel).string(); }
  void write(const std::string& rel, const std::string& bytes) const {
    fs::create_directories((path_ / rel).parent_path());
    std::ofstream(path_ / rel, std::ios::binary) << bytes;
  }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

/// Byte-level vocabulary: 256 stand-ins, then `merged` (as stand-in text), then "<|endoftext|>"; merges as given.
std::unique_ptr<Gpt2Tokenizer> tiny_bpe(const std::vector<std::string>& merged, const std::string& merges) {
  const auto& t = gpt2_byte_to_unicode();
  auto key = [](char32_t cp) {
    if (cp == '"' || cp == '\\') return std::string("\\") + static_cast<char>(cp);
    if (cp < 0x80) return std::string(1, static_cast<char>(cp));
    return std::string{static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
  };
  std::string json = "{";
  int id = 0;
  for (int b = 0; b < 256; ++b) json += (b ? ", \"" : "\"") + key(t[static_cast<std::size_t>(b)]) + "\": " + std::to_string(id++);
  for (const auto& m : merged) json += ", \"" + m + "\": " + std::to_string(id++);
  json += ", \"<|endoftext|>\": " + std::to_string(id) + "}";
  return std::make_unique<Gpt2Tokenizer>(parse_gpt2_vocabulary(json, merges), "tiny");
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  Sha256 h;  // incremental across block boundaries
  for (int i = 0; i < 1000; ++i) h.update(std::string(1000, 'a'));
  EXPECT_EQ(h.hex_digest(), sha256_hex(std::string(1000000, 'a')));
}

TEST(ByteTokenizer, RoundTripsEveryByte) {
  ByteTokenizer tok;
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const auto ids = tok.encode(all);
  ASSERT_EQ(ids.size(), 256u);
  EXPECT_EQ(ids[200], 200);
  EXPECT_EQ(tok.decode(ids), all);
  EXPECT_EQ(tok.vocab_size(), 256);
  EXPECT_THROW(tok.decode({256}), ConfigError);
  EXPECT_THROW(tok.decode({-1}), ConfigError);
}

TEST(Gpt2Tokenizer, AppliesMergesByRank) {
  // ids: 256 "Ġt", 257 "he", 258 "Ġthe", 259 "aa", 260 "aaa", 261 <|endoftext|>
  auto tok = tiny_bpe({"\xC4\xA0t", "he", "\xC4\xA0the", "aa", "aaa"},
                      "#version: 0.2\n\xC4\xA0 t\nh e\n\xC4\xA0t he\na a\naa a\n");
  using V = std::vector<TokenId>;
  EXPECT_EQ(tok->encode(" the"), (V{258}));
  EXPECT_EQ(tok->encode("the"), (V{'t', 257}));
  EXPECT_EQ(tok->encode("hehe"), (V{257, 257}));
  EXPECT_EQ(tok->encode("aaa"), (V{260}));       // a a -> [aa, a] (leftmost first), then aa a
  EXPECT_EQ(tok->encode("aaaa"), (V{259, 259}));  // both "a a" merge in one pass; "aa aa" is no merge
  EXPECT_EQ(tok->encode("aaaaa"), (V{259, 260}));
  EXPECT_EQ(tok->encode("the the"), (V{'t', 257, 258}));  // second call hits the cache
  EXPECT_EQ(tok->end_of_text(), 261);
  const auto eot = tok->encode("<|endoftext|>");  // data never produces the special token
  EXPECT_EQ(std::count(eot.begin(), eot.end(), 261), 0);
  EXPECT_EQ(tok->decode(eot), "<|endoftext|>");
  const std::string odd = "x\xFF\xC3 \xE2\x82\xAC\n\n the";
  EXPECT_EQ(tok->decode(tok->encode(odd)), odd);
  EXPECT_THROW(tok->decode({262}), ConfigError);
}

TEST(Gpt2Tokenizer, MissingOrMalformedFilesAreIoErrors) {
  TempDir dir;
  EXPECT_THROW(make_tokenizer("gpt2", dir.str()), IoError);  // both missing
  dir.write("encoder.json", "{\"a\": 0,");
  dir.write("vocab.bpe", "#version: 0.2\n");
  try {
    make_tokenizer("gpt2", dir.str());
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("encoder.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_tokenizer("sentencepiece", dir.str()), ConfigError);
  EXPECT_EQ(make_tokenizer("bytes", "")->vocab_size(), 256);
}

TEST(CorpusSplitters, Fortunes) {
  const auto docs = split_fortunes("first\nline two\n%\n\n%\nsecond\n%\nthird\n", "topic");
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].text, "first\nline two\n");
  EXPECT_EQ(docs[2].text, "third\n");
  EXPECT_EQ(docs[1].group, "topic");
}

TEST(CorpusSplitters, KjvChapters) {
  // The format `bible` prints (verses indented, wrapped lines flush left, headings between blank lines).
  const std::string text =
      "Genesis 1\n\n  1 In the beginning God created the heaven and the earth.\n  2 And the earth was without form,"
      " and void; and darkness was upon the face of\nthe deep. And the Spirit of God moved upon the face of the "
      "waters.\n\nGenesis 2\n\n  1 Thus the heavens and the earth were finished.\n\n1 Kings 3\n\n  1 And Solomon"
      " made affinity with Pharaoh king of Egypt, and took Pharaoh's daughter, and\nbrought her into the city of "
      "David, until he had made an end of building 2\n  2 Only the people sacrificed in high places.\n";
  const auto docs = split_kjv_chapters(text);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].group, "Genesis");
  EXPECT_EQ(docs[2].group, "1 Kings");
  EXPECT_EQ(docs[1].text, "Genesis 2\n\n  1 Thus the heavens and the earth were finished.\n");
  EXPECT_NE(docs[2].text.find("building 2\n  2 Only"), std::string::npos);  // a wrapped line ending in a number
}

TEST(CorpusSplitters, KjvVerses) {
  const std::string text =
      "Genesis 1\n\n  1 In the beginning God created the heaven and the earth.\n  2 And the earth was without form,"
      " and void\nand darkness was upon the face of the deep.\n\n1 Kings 3\n\n 10 And the speech pleased the "
      "Lord.\n";
  const auto docs = split_kjv_verses(text);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].id, 0);
  EXPECT_EQ(docs[2].id, 2);
  EXPECT_EQ(docs[0].text, "Genesis 1:1 In the beginning God created the heaven and the earth.\n");
  EXPECT_EQ(docs[1].text, "Genesis 1:2 And the earth was without form, and void\nand darkness was upon the face of the deep.\n");
  EXPECT_EQ(docs[1].group, "Genesis");
  EXPECT_EQ(docs[2].text, "1 Kings 3:10 And the speech pleased the Lord.\n");
  EXPECT_EQ(docs[2].group, "1 Kings");
  EXPECT_EQ(corpus_source("kjv-verses"), "kjv");
  EXPECT_EQ(corpus_source("notmuch"), "notmuch");
}

TEST(CorpusSplitters, AustenChapters) {
  const auto docs = split_austen_chapters(
      "PERSUASION\n\nby Jane Austen\n\n(1818)\n\n\n\n\nChapter 1\n\n\nSir Walter Elliot, of Kellynch Hall...\n\n"
      "Chapter 2\n\nMr Shepherd, a civil, cautious lawyer...\n\nCHAPTER XII.\n\nAnne and Henrietta...\n",
      "persuasion");
  ASSERT_EQ(docs.size(), 4u);  // front matter + 3 chapters
  EXPECT_EQ(docs[1].text.substr(0, 9), "Chapter 1");
  EXPECT_EQ(docs[3].text.substr(0, 12), "CHAPTER XII.");
  EXPECT_EQ(docs[2].group, "persuasion");
}

TEST(CorpusSplitters, MailKeepsSelectedHeadersAndHashesTheSender) {
  const std::string raw =
      "Return-Path: <x@example.org>\nFrom: Carl Worth <CWorth@Example.ORG>\nTo: notmuch@notmuchmail.org\nSubject: "
      "a long\n  folded subject\nMessage-ID: <1@x>\nDate: Tue, 17 Nov 2009 18:21:38 -0500\n\nBody line.\n";
  const Document d = parse_mail_message(raw);
  EXPECT_EQ(d.text,
            "From: Carl Worth <CWorth@Example.ORG>\nTo: notmuch@notmuchmail.org\nSubject: a long folded subject\n"
            "Date: Tue, 17 Nov 2009 18:21:38 -0500\n\nBody line.\n");
  EXPECT_EQ(d.group, "sender-" + sha256_hex("cworth@example.org").substr(0, 12));
  EXPECT_EQ(d.group.find("worth"), std::string::npos);
}

TEST(LoadCorpus, RealFortunesFiles) {
  if (!fs::exists(std::string(kFortunes) + "/riddles")) GTEST_SKIP() << "fortunes-min is not installed";
  TempDir dir;
  for (const char* f : {"riddles", "literature", "riddles.dat"}) fs::copy_file(std::string(kFortunes) + "/" + f, dir.str(f));
  const Corpus c = load_corpus("fortunes", dir.str());
  // Independent count: records end at lines "%" (the files end with one); none of these files has an empty record.
  std::int64_t expected = 0;
  for (const char* f : {"literature", "riddles"}) {
    std::ifstream in(std::string(kFortunes) + "/" + f);
    std::string line;
    std::int64_t seps = 0;
    bool open = false;
    while (std::getline(in, line)) {
      seps += line == "%";
      open = line != "%";
    }
    expected += seps + (open ? 1 : 0);
  }
  EXPECT_EQ(static_cast<std::int64_t>(c.documents.size()), expected);
  EXPECT_EQ(c.source_files, 2);  // riddles.dat is skipped
  EXPECT_EQ(c.documents.front().group, "literature");
  EXPECT_EQ(c.documents.back().group, "riddles");
  EXPECT_EQ(c.documents.back().id, expected - 1);
  // The manifest hash is sha256sum's output for the files read, sorted by path.
  const std::string manifest = sha256_file_hex(dir.str("literature")) + "  literature\n" +
                               sha256_file_hex(dir.str("riddles")) + "  riddles\n";
  EXPECT_EQ(c.source_sha256, sha256_hex(manifest));
}

TEST(LoadCorpus, BadInput) {
  TempDir dir;
  EXPECT_THROW(load_corpus("enron", dir.str()), ConfigError);
  EXPECT_THROW(load_corpus("fortunes", dir.str("missing")), ConfigError);
  EXPECT_THROW(load_corpus("fortunes", dir.str()), ConfigError);  // no files
  dir.write("empty", "%\n\n%\n");
  try {
    load_corpus("fortunes", dir.str());
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("is empty"), std::string::npos) << e.what();
  }
}

TEST(Splits, ReproducibleFromTheSeedAndSizedByFraction) {
  const auto a = assign_splits(1000, {0.8, 0.1, 0.1}, 7), b = assign_splits(1000, {0.8, 0.1, 0.1}, 7);
  const auto c = assign_splits(1000, {0.8, 0.1, 0.1}, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(std::count(a.begin(), a.end(), 0), 800);
  EXPECT_EQ(std::count(a.begin(), a.end(), 1), 100);
  EXPECT_EQ(std::count(a.begin(), a.end(), 2), 100);
  EXPECT_THROW(assign_splits(10, {0.5, 0.4}, 1), ConfigError);
  EXPECT_THROW(assign_splits(10, {0.5, 0.6, -0.1}, 1), ConfigError);
  EXPECT_THROW(assign_splits(10, {0.5, 0.4, 0.2}, 1), ConfigError);
}

Corpus synthetic_corpus(int n) {
  Corpus c;
  c.name = "fortunes";
  c.source_sha256 = sha256_hex("synthetic");
  for (int i = 0; i < n; ++i)
    c.documents.push_back({i, i % 3 ? "odd" : "even", "Record " + std::to_string(i) + ": the quick brown fox.\n"});
  return c;
}

/// Start offsets of `needle` inside `hay`.
std::vector<std::size_t> occurrences(const std::vector<TokenId>& hay, const std::vector<TokenId>& needle) {
  std::vector<std::size_t> out;
  for (auto it = hay.begin(); (it = std::search(it, hay.end(), needle.begin(), needle.end())) != hay.end(); ++it)
    out.push_back(static_cast<std::size_t>(it - hay.begin()));
  return out;
}

void check_canaries(const TokenDataset& ds, const CanaryOptions& o) {
  const CanarySet& c = ds.canaries;
  ASSERT_EQ(c.candidates.size(), static_cast<std::size_t>(o.count + o.references + (o.heldout ? o.heldout : o.count)));
  std::set<std::string> secrets;
  for (std::size_t k = 0; k < c.candidates.size(); ++k) {
    const auto& cand = c.candidates[k];
    secrets.insert(cand.secret);
    std::int64_t hits = 0;
    std::set<std::int64_t> docs;
    for (std::int64_t d = 0; d < ds.num_documents(); ++d) {
      const auto n = occurrences(ds.document_tokens(d), c.sequence(k)).size();
      if (n) {
        docs.insert(d);
        EXPECT_EQ(ds.doc_splits[static_cast<std::size_t>(d)], 0) << "canary " << k << " outside the training split";
      }
      hits += static_cast<std::int64_t>(n);
    }
    const bool inserted = cand.role == CanaryRole::kTuning || cand.role == CanaryRole::kEvaluation;
    EXPECT_EQ(hits, inserted ? o.repetitions : 0) << "canary " << k;
    EXPECT_EQ(static_cast<std::int64_t>(docs.size()), inserted ? o.repetitions : 0) << "distinct documents, canary " << k;
    EXPECT_EQ(cand.insertions, inserted ? o.repetitions : 0);
  }
  EXPECT_EQ(secrets.size(), c.candidates.size());
  EXPECT_EQ(c.insertions.size(), static_cast<std::size_t>(o.count * o.repetitions));
  for (const auto& ins : c.insertions) {  // recorded offsets point at the sequence
    const auto doc = ds.document_tokens(ins.document);
    const auto seq = c.sequence(static_cast<std::size_t>(ins.candidate));
    ASSERT_LE(ins.offset + static_cast<std::int64_t>(seq.size()), static_cast<std::int64_t>(doc.size()));
    EXPECT_TRUE(std::equal(seq.begin(), seq.end(), doc.begin() + ins.offset));
  }
  std::int64_t roles[4] = {};
  for (const auto& cand : c.candidates) ++roles[static_cast<int>(cand.role)];
  EXPECT_EQ(roles[0], o.tuning);
  EXPECT_EQ(roles[1], o.count - o.tuning);
  EXPECT_EQ(roles[2], o.references);
}

TEST(Canaries, InsertedRTimesIntoDistinctTrainingDocuments) {
  ByteTokenizer tok;
  for (const char* position : {"start", "end"}) {
    TokenDataset ds = build_dataset(synthetic_corpus(60), tok, {0.8, 0.1, 0.1}, 3);
    const auto before = ds.tokens.size();
    CanaryOptions o;
    o.count = 6, o.tuning = 2, o.references = 50, o.heldout = 0, o.repetitions = 7, o.position = position, o.seed = 11;
    plant_canaries(ds, tok, o);
    check_canaries(ds, o);
    const std::size_t per = ds.canaries.sequence(0).size() + 1;  // + "\n"
    EXPECT_EQ(ds.tokens.size(), before + static_cast<std::size_t>(o.count * o.repetitions) * per);
  }
}

TEST(Canaries, PrefixAndSecretAreTokenisedSeparately) {
  // "Ġ1" merges space and digit: tokenising prefix + secret jointly would swallow the prefix's last space.
  auto tok = tiny_bpe({"\xC4\xA0" "1", "is"}, "\xC4\xA0 1\ni s\n");
  TokenDataset ds = build_dataset(synthetic_corpus(30), *tok, {1, 0, 0}, 5);
  CanaryOptions o;
  o.count = 3, o.tuning = 1, o.references = 20, o.repetitions = 4, o.prefix = "my pin is ", o.length = 6, o.seed = 2;
  plant_canaries(ds, *tok, o);
  const CanarySet& c = ds.canaries;
  EXPECT_EQ(c.prefix_tokens, tok->encode("my pin is "));
  EXPECT_EQ(c.prefix_tokens.back(), ' ');  // the trailing space stays in the prefix
  bool differs = false;
  for (std::size_t k = 0; k < c.candidates.size(); ++k) {
    EXPECT_EQ(c.candidates[k].secret_tokens, tok->encode(c.candidates[k].secret));
    if (c.candidates[k].secret[0] == '1') differs |= tok->encode(c.prefix + c.candidates[k].secret) != c.sequence(k);
  }
  check_canaries(ds, o);
  EXPECT_TRUE(differs || std::none_of(c.candidates.begin(), c.candidates.end(), [](const auto& x) { return x.secret[0] == '1'; }));
}

TEST(Canaries, Spaces) {
  EXPECT_EQ(make_canary_space("hex", 4).alphabet.size(), 16u);
  EXPECT_DOUBLE_EQ(make_canary_space("digits", 9).log2_size(), 9 * std::log2(10.0));
  EXPECT_THROW(make_canary_space("emoji", 4), ConfigError);
  EXPECT_THROW(make_canary_space("digits", 0), ConfigError);
  ByteTokenizer tok;
  TokenDataset ds = build_dataset(synthetic_corpus(20), tok, {1, 0, 0}, 1);
  CanaryOptions o;
  o.count = 2, o.space = "lower", o.length = 5, o.references = 10, o.repetitions = 3;
  plant_canaries(ds, tok, o);
  for (const auto& cand : ds.canaries.candidates)
    EXPECT_TRUE(std::all_of(cand.secret.begin(), cand.secret.end(), [](char ch) { return ch >= 'a' && ch <= 'z'; }));
}

TEST(Canaries, BadOptions) {
  ByteTokenizer tok;
  TokenDataset ds = build_dataset(synthetic_corpus(10), tok, {0.5, 0.5, 0}, 1);
  CanaryOptions o;
  o.count = 2, o.repetitions = 6, o.references = 10;
  EXPECT_THROW(plant_canaries(ds, tok, o), ConfigError);  // 5 training documents < 6 repetitions
  o.repetitions = 2, o.tuning = 3;
  EXPECT_THROW(validate_canary_options(o), ConfigError);
  o.tuning = 0, o.space = "digits", o.length = 2, o.references = 90;
  EXPECT_THROW(validate_canary_options(o), ConfigError);  // 100 secrets < 2 x 94 candidates
  o.length = 9, o.position = "middle";
  EXPECT_THROW(validate_canary_options(o), ConfigError);
}

TEST(Dataset, RoundTripThroughHdf5) {
  TempDir dir;
  auto tok = tiny_bpe({"\xC4\xA0t", "he"}, "\xC4\xA0 t\nh e\n");
  TokenDataset ds = build_dataset(synthetic_corpus(40), *tok, {0.7, 0.2, 0.1}, 9);
  CanaryOptions o;
  o.count = 4, o.tuning = 1, o.references = 30, o.heldout = 5, o.repetitions = 3, o.space = "hex", o.length = 8, o.seed = 4;
  plant_canaries(ds, *tok, o);
  const std::string path = dir.str("ds.h5");
  write_dataset(path, ds);
  EXPECT_FALSE(fs::exists(path + ".tmp." + std::to_string(::getpid())));
  const TokenDataset back = read_dataset(path);
  EXPECT_EQ(back.corpus, ds.corpus);
  EXPECT_EQ(back.tokenizer, "gpt2-bpe");
  EXPECT_EQ(back.tokenizer_identity, "tiny");
  EXPECT_EQ(back.vocab_size, ds.vocab_size);
  EXPECT_EQ(back.source_sha256, ds.source_sha256);
  EXPECT_EQ(back.seed, 9u);
  EXPECT_EQ(back.split_fractions, ds.split_fractions);
  EXPECT_EQ(back.tokens, ds.tokens);
  EXPECT_EQ(back.doc_offsets, ds.doc_offsets);
  EXPECT_EQ(back.doc_ids, ds.doc_ids);
  EXPECT_EQ(back.doc_groups, ds.doc_groups);
  EXPECT_EQ(back.doc_splits, ds.doc_splits);
  EXPECT_EQ(back.group_names, (std::vector<std::string>{"even", "odd"}));
  const CanarySet &a = ds.canaries, &b = back.canaries;
  EXPECT_EQ(b.prefix, a.prefix);
  EXPECT_EQ(b.prefix_tokens, a.prefix_tokens);
  EXPECT_EQ(b.separator_tokens, a.separator_tokens);
  EXPECT_EQ(b.space.alphabet, a.space.alphabet);
  EXPECT_EQ(b.space.length, 8);
  EXPECT_EQ(b.repetitions, 3);
  EXPECT_EQ(b.position, "start");
  EXPECT_EQ(b.seed, 4u);
  ASSERT_EQ(b.candidates.size(), a.candidates.size());
  for (std::size_t k = 0; k < a.candidates.size(); ++k) {
    EXPECT_EQ(b.candidates[k].secret, a.candidates[k].secret);
    EXPECT_EQ(b.candidates[k].secret_tokens, a.candidates[k].secret_tokens);
    EXPECT_EQ(b.candidates[k].role, a.candidates[k].role);
    EXPECT_EQ(b.candidates[k].insertions, a.candidates[k].insertions);
  }
  ASSERT_EQ(b.insertions.size(), a.insertions.size());
  for (std::size_t k = 0; k < a.insertions.size(); ++k) {
    EXPECT_EQ(b.insertions[k].candidate, a.insertions[k].candidate);
    EXPECT_EQ(b.insertions[k].document, a.insertions[k].document);
    EXPECT_EQ(b.insertions[k].offset, a.insertions[k].offset);
  }
  // Same inputs and seed: the same dataset, byte for byte in its arrays.
  TokenDataset again = build_dataset(synthetic_corpus(40), *tok, {0.7, 0.2, 0.1}, 9);
  plant_canaries(again, *tok, o);
  EXPECT_EQ(again.tokens, ds.tokens);
}

TEST(Dataset, WithoutCanariesAndBadFiles) {
  TempDir dir;
  ByteTokenizer tok;
  const TokenDataset ds = build_dataset(synthetic_corpus(5), tok, {1, 0, 0}, 1);
  write_dataset(dir.str("plain.h5"), ds);
  EXPECT_TRUE(read_dataset(dir.str("plain.h5")).canaries.empty());
  EXPECT_THROW(read_dataset(dir.str("missing.h5")), IoError);
  dir.write("text.h5", "not hdf5");
  EXPECT_THROW(read_dataset(dir.str("text.h5")), IoError);
  TokenDataset broken = ds;
  broken.tokens[0] = 300;  // outside the byte vocabulary
  EXPECT_THROW(write_dataset(dir.str("broken.h5"), broken), IoError);
  EXPECT_FALSE(fs::exists(dir.str("broken.h5")));
  EXPECT_THROW(write_dataset(dir.str("no/such/dir/x.h5"), ds), IoError);
}

}  // namespace
}  // namespace unlearn
