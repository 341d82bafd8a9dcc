// `unlearn prepare-data`: a real corpus -> tokens -> splits -> canaries -> one HDF5 token dataset.
// Rank 0 does the work with serial HDF5 calls; other ranks only learn whether it succeeded. Documents and secrets
// are private: the log names counts, ids and hashes only.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>

#include "unlearn/app/subcommands.h"
#include "unlearn/data/corpus.h"
#include "unlearn/data/dataset.h"
#include "unlearn/util/error.h"
#include "unlearn/util/log.h"

namespace unlearn {
namespace {

/// Share of the training documents holding a canary above which prepare-data warns (a forget set, not the data).
constexpr double kCanaryShareWarning = 0.2;

std::string default_cache_dir() {
  if (const char* c = std::getenv("UNLEARN_CORPORA"); c && *c) return c;
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/unlearn/corpora";
  return "out/corpora";
}

std::vector<double> parse_fractions(const std::string& text) {
  std::vector<double> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size())
      UNLEARN_THROW(ConfigError, "--split: '" << item << "' is not a number (expected e.g. 0.9,0.05,0.05)");
    out.push_back(v);
  }
  assign_splits(0, out, 0);  // validates count, range and sum
  return out;
}

class PrepareDataCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "prepare-data"; }
  std::string_view summary() const override {
    return "tokenise a real corpus into an HDF5 token dataset with splits and planted canaries";
  }

  void add_options(po::options_description& d, po::positional_options_description&) override {
    d.add_options()
        ("corpus", po::value<std::string>(&corpus_)->value_name("NAME"), "fortunes | kjv | kjv-verses | austen | notmuch (required)")
        ("corpus-dir", po::value<std::string>(&corpus_dir_)->value_name("DIR"),
         "extracted corpus (tools/fetch-corpora.sh); default $UNLEARN_CORPORA/NAME or ~/.cache/unlearn/corpora/NAME")
        ("tokenizer", po::value<std::string>(&tokenizer_)->default_value("bytes")->value_name("KIND"), "bytes | gpt2")
        ("tokenizer-dir", po::value<std::string>(&tokenizer_dir_)->value_name("DIR"),
         "directory with encoder.json and vocab.bpe (gpt2); default the corpora cache's gpt2/")
        ("output", po::value<std::string>(&output_)->value_name("FILE.h5"), "dataset to write (required; atomic)")
        ("seed", po::value<std::int64_t>(&seed_)->default_value(1234), "seed of the split and the canaries")
        ("split", po::value<std::string>(&split_)->default_value("0.9,0.05,0.05")->value_name("T,V,E"),
         "train, validation, test fractions of the documents")
        ("max-documents", po::value<std::int64_t>(&max_docs_)->default_value(0)->value_name("N"),
         "keep the first N documents in load order (0 = all): a small slice for quick runs")
        ("canaries", po::value<int>(&canary_.count)->default_value(0)->value_name("N"),
         "canaries to insert (tuning + evaluation)")
        ("canary-tuning", po::value<int>(&canary_.tuning)->default_value(0)->value_name("K"),
         "how many of them are tuning canaries (the rest are evaluation canaries)")
        ("canary-repeats", po::value<int>(&canary_.repetitions)->default_value(20)->value_name("R"),
         "insertions per canary, into distinct training documents")
        ("canary-references", po::value<int>(&canary_.references)->default_value(1000)->value_name("N"),
         "never-inserted candidates the exposure rank uses")
        ("canary-heldout", po::value<int>(&canary_.heldout)->default_value(0)->value_name("M"),
         "never-inserted candidates for the baseline exposure (0 = as many as --canaries)")
        ("canary-prefix", po::value<std::string>(&canary_.prefix)->default_value("my secret number is "),
         "text before every secret (tokenised separately from it)")
        ("canary-space", po::value<std::string>(&canary_.space)->default_value("digits"),
         "alphabet of the secrets: digits | hex | lower | upper | alnum")
        ("canary-length", po::value<int>(&canary_.length)->default_value(9), "characters per secret")
        ("canary-position", po::value<std::string>(&canary_.position)->default_value("start"),
         "start | end: where a canary goes in its document");
  }

  void validate(const po::variables_map&, const CommonOptions&, int) const override {
    if (corpus_.empty()) UNLEARN_THROW(ConfigError, "prepare-data: --corpus is required");
    const auto& names = corpus_names();
    if (std::find(names.begin(), names.end(), corpus_) == names.end())
      UNLEARN_THROW(ConfigError, "unknown corpus '" << corpus_ << "' (known: fortunes, kjv, austen, notmuch)");
    if (output_.empty()) UNLEARN_THROW(ConfigError, "prepare-data: --output is required");
    if (tokenizer_ != "bytes" && tokenizer_ != "gpt2")
      UNLEARN_THROW(ConfigError, "unknown tokenizer '" << tokenizer_ << "' (use bytes or gpt2)");
    if (seed_ < 0) UNLEARN_THROW(ConfigError, "--seed must be >= 0");
    if (max_docs_ < 0) UNLEARN_THROW(ConfigError, "--max-documents must be >= 0");
    parse_fractions(split_);
    validate_canary_options(canary_);
  }

  int run(AppContext& ctx) override {
    std::int64_t ok = 1;
    std::string error;
    if (ctx.grid.world_rank() == 0) {
      try {
        prepare(ctx);
      } catch (const Error& e) {  // bad input found while reading: one message, every rank exits 1
        ok = 0;
        error = e.what();
      }
    }
    ok = ctx.grid.world().all_reduce_scalar(ok, ReduceOp::kMin);
    if (!ok) {
      if (ctx.grid.world_rank() == 0) std::fprintf(stderr, "unlearn: error: %s\n", error.c_str());
      return 1;
    }
    return 0;
  }

 private:
  void prepare(AppContext& ctx) {
    const std::string cache = default_cache_dir();
    const std::string dir = corpus_dir_.empty() ? cache + "/" + corpus_source(corpus_) : corpus_dir_;
    const std::string tok_dir = tokenizer_dir_.empty() ? cache + "/gpt2" : tokenizer_dir_;
    const auto tokenizer = make_tokenizer(tokenizer_, tok_dir);
    Corpus corpus = load_corpus(corpus_, dir);
    UNLEARN_LOG_INFO0("corpus " << corpus_ << ": " << corpus.documents.size() << " documents from " << corpus.source_files
                                << " files (" << corpus.source_bytes << " bytes), source sha256 " << corpus.source_sha256);
    if (max_docs_ > 0 && static_cast<std::int64_t>(corpus.documents.size()) > max_docs_) {
      corpus.documents.resize(static_cast<std::size_t>(max_docs_));
      UNLEARN_LOG_INFO0("kept the first " << max_docs_ << " documents (ids 0.." << max_docs_ - 1 << ")");
    }
    TokenDataset ds = build_dataset(corpus, *tokenizer, parse_fractions(split_), static_cast<std::uint64_t>(seed_));
    CanaryOptions co = canary_;
    co.seed = static_cast<std::uint64_t>(seed_);
    plant_canaries(ds, *tokenizer, co);
    write_dataset(output_, ds);

    std::int64_t per_split[3] = {0, 0, 0}, canary_documents = 0;
    for (std::uint8_t s : ds.doc_splits) ++per_split[s];
    UNLEARN_LOG_INFO0("tokenizer " << ds.tokenizer_identity << ", vocabulary " << ds.vocab_size);
    UNLEARN_LOG_INFO0("documents: " << per_split[0] << " train, " << per_split[1] << " validation, " << per_split[2]
                                    << " test in " << ds.group_names.size() << " groups; " << ds.tokens.size()
                                    << " tokens");
    if (!ds.canaries.empty()) {
      std::int64_t roles[4] = {0, 0, 0, 0};
      for (const auto& c : ds.canaries.candidates) ++roles[static_cast<int>(c.role)];
      UNLEARN_LOG_INFO0("canaries: " << roles[0] << " tuning + " << roles[1] << " evaluation, each inserted "
                                     << ds.canaries.repetitions << " times (" << ds.canaries.insertions.size()
                                     << " insertions); " << roles[2] << " references, " << roles[3]
                                     << " held out; space " << ds.canaries.space.name << ":" << ds.canaries.space.length
                                     << " (2^" << ds.canaries.space.log2_size() << ")");
      // The forget set of a canary experiment is every document holding a canary: when that is a large share of
      // the training data, "unlearning" it is close to retraining on a remnant and the comparison means little.
      std::set<std::int64_t> docs;
      for (const auto& ins : ds.canaries.insertions) docs.insert(ins.document);
      canary_documents = static_cast<std::int64_t>(docs.size());
      const double share = per_split[0] > 0 ? static_cast<double>(canary_documents) / per_split[0] : 0.0;
      UNLEARN_LOG_INFO0("canary documents: " << canary_documents << " of " << per_split[0] << " training documents ("
                                             << std::lround(100 * share) << "%)");
      if (share > kCanaryShareWarning)
        log_warn("the canaries are in " + std::to_string(std::lround(100 * share)) +
                 "% of the training documents: forgetting them removes most of what the model was trained on. For "
                 "an unlearning experiment use more documents or fewer --canaries / --canary-repeats");
    }
    UNLEARN_LOG_INFO0("wrote " << output_);
    ctx.metrics.write(JsonObject()
                          .add("event", "dataset")
                          .add("corpus", ds.corpus)
                          .add("output", output_)
                          .add("tokenizer", ds.tokenizer_identity)
                          .add("documents", ds.num_documents())
                          .add("tokens", static_cast<std::int64_t>(ds.tokens.size()))
                          .add("train_documents", per_split[0])
                          .add("validation_documents", per_split[1])
                          .add("test_documents", per_split[2])
                          .add("canary_candidates", static_cast<std::int64_t>(ds.canaries.candidates.size()))
                          .add("canary_insertions", static_cast<std::int64_t>(ds.canaries.insertions.size()))
                          .add("canary_documents", canary_documents)
                          .add("source_sha256", ds.source_sha256));
  }

  std::string corpus_, corpus_dir_, tokenizer_, tokenizer_dir_, output_, split_;
  std::int64_t seed_ = 1234;  // int64: the start-up config table prints it
  std::int64_t max_docs_ = 0;
  CanaryOptions canary_;
};

}  // namespace

std::unique_ptr<Subcommand> make_prepare_data_command() { return std::make_unique<PrepareDataCommand>(); }

}  // namespace unlearn
