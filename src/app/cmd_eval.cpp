// `unlearn eval`: how much a checkpoint still knows of a forget set, and what unlearning cost (design 3.5):
// perplexity on the validation, test, forget and retain documents; canary exposure by rank and by skew-normal
// extrapolation, with the never-inserted baseline; membership inference (loss, zlib ratio, min-k%) between forget
// and held-out documents as AUCs with bootstrap intervals; with --original, the mean KL to the original model on
// retain documents and the update norm. Writes a JSON report (rank 0, atomically) and logs a readable table.
// Documents are named by id only; no text is ever printed.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>

#include "unlearn/app/subcommands.h"
#include "unlearn/data/dataset.h"
#include "unlearn/data/rng.h"
#include "unlearn/eval/membership.h"
#include "unlearn/eval/scoring.h"
#include "unlearn/eval/skew_normal.h"
#include "unlearn/io/checkpoint.h"
#include "unlearn/model/batching.h"
#include "unlearn/parse/json.h"
#include "unlearn/parse/units.h"
#include "unlearn/util/error.h"
#include "unlearn/util/numerics.h"

namespace unlearn {
namespace {

/// A set of documents (dataset rows) and the scores of their tokens.
struct DocumentSet {
  std::string name;
  std::vector<std::int64_t> rows;
  std::int64_t available = 0;               // documents of the set before sampling
  std::vector<std::vector<double>> tokens;  // per document: -ln p of each scored token
  double nll_sum() const {
    double s = 0;
    for (const auto& d : tokens) s += std::accumulate(d.begin(), d.end(), 0.0);
    return s;
  }
  std::int64_t token_count() const {
    std::int64_t n = 0;
    for (const auto& d : tokens) n += static_cast<std::int64_t>(d.size());
    return n;
  }
  double perplexity() const { return std::exp(nll_sum() / static_cast<double>(token_count())); }
};

std::string fmt(const char* f, double a, double b = 0, double c = 0) {
  char buf[160];
  std::snprintf(buf, sizeof(buf), f, a, b, c);
  return buf;
}

std::string interval_json(const AucInterval& i) {
  return JsonObject().add("value", i.auc).add("lower", i.lower).add("upper", i.upper).add("level", i.level)
      .add("resamples", i.resamples).str();
}

class EvalCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "eval"; }
  std::string_view summary() const override {
    return "perplexity, canary exposure, membership inference and KL of a checkpoint; JSON report and a table";
  }

  void add_options(po::options_description& desc, po::positional_options_description&) override {
    desc.add_options()
        ("checkpoint", po::value<std::string>(&in_)->required(), "checkpoint to evaluate (HDF5, any TP)")
        ("dataset", po::value<std::string>(&dataset_)->required(), "token dataset (unlearn prepare-data)")
        ("original", po::value<std::string>(&original_),
         "the checkpoint before unlearning: adds the mean KL(original || checkpoint) on retain documents and the "
         "update norm")
        ("forget-report", po::value<std::string>(&forget_report_)->value_name("FILE"),
         "forget set = every document of the requests in this `unlearn forget` report")
        ("forget-ids", po::value<std::string>(&forget_ids_)->value_name("IDS"),
         "forget set = these document ids (comma-separated; ';' allowed, all requests together)")
        ("forget-canaries", po::bool_switch(&forget_canaries_), "forget set = every document holding a canary")
        ("output", po::value<std::string>(&out_), "JSON report (default: CHECKPOINT with .eval.json); replaced")
        ("table", po::value<std::string>(&table_)->value_name("FILE"), "also write the table as markdown")
        ("documents", po::value<int>(&documents_)->default_value(200)->value_name("N"),
         "at most N documents per set (validation, test, forget, retain, held-out), a seeded sample; 0: all")
        ("bootstrap", po::value<int>(&bootstrap_)->default_value(1000), "bootstrap resamples for the intervals")
        ("min-k", po::value<double>(&min_k_)->default_value(0.2), "min-k% attack: fraction of least likely tokens")
        ("tokenizer-dir", po::value<std::string>(&tokenizer_dir_)->value_name("DIR"),
         "gpt2-bpe datasets: the tokenizer files, to decode documents for the zlib attack (skipped without)")
        ("seed", po::value<std::uint64_t>(&seed_)->default_value(1234), "document samples and bootstrap")
        ("rows-per-batch", po::value<int>(&rows_per_batch_)->default_value(16), "rows per forward");
  }

  void validate(const po::variables_map&, const CommonOptions&, int) const override {
    if (documents_ < 0) throw ConfigError("--documents must be >= 0");
    if (bootstrap_ < 10) throw ConfigError("--bootstrap must be at least 10");
    if (!(min_k_ > 0 && min_k_ <= 1)) throw ConfigError("--min-k must be in (0, 1]");
    if (rows_per_batch_ < 1) throw ConfigError("--rows-per-batch must be at least 1");
    if (!forget_report_.empty() + !forget_ids_.empty() + forget_canaries_ > 1)
      throw ConfigError("give at most one of --forget-report, --forget-ids and --forget-canaries");
    if (is_temporary_checkpoint_name(in_)) throw ConfigError("--checkpoint '" + in_ + "' is a temporary file name");
    // Read and checked on every rank before any communication: a bad input is one message.
    try {
      dataset_cache_ = read_dataset(dataset_);
    } catch (const IoError& e) {
      throw ConfigError(e.what());
    }
    const TokenDataset& ds = *dataset_cache_;
    forget_.clear();
    auto add_id = [&](std::int64_t id, const std::string& from) {
      const auto it = std::find(ds.doc_ids.begin(), ds.doc_ids.end(), id);
      if (it == ds.doc_ids.end()) UNLEARN_THROW(ConfigError, from << ": no document with id " << id);
      forget_.insert(it - ds.doc_ids.begin());
    };
    if (!forget_ids_.empty()) {
      std::string ids = forget_ids_;
      std::replace(ids.begin(), ids.end(), ';', ',');
      for (int id : parse_int_list(ids, "--forget-ids")) add_id(id, "--forget-ids");
    }
    if (!forget_report_.empty()) {
      std::ifstream f(forget_report_);
      if (!f) throw ConfigError("--forget-report: cannot read '" + forget_report_ + "'");
      std::stringstream text;
      text << f.rdbuf();
      JsonValue report;
      try {
        report = parse_json(text.str(), forget_report_);
      } catch (const IoError& e) {
        throw ConfigError(e.what());
      }
      const JsonValue* requests = report.find("request_reports");
      if (!requests || requests->type != JsonValue::Type::kArray)
        throw ConfigError("--forget-report '" + forget_report_ + "' is not an `unlearn forget` report");
      for (const JsonValue& r : requests->items) {
        const JsonValue* ids = r.find("forget_document_ids");
        if (!ids || ids->type != JsonValue::Type::kArray)
          throw ConfigError("--forget-report: a request without forget_document_ids");
        for (const JsonValue& id : ids->items) {
          if (!id.is_uint64()) throw ConfigError("--forget-report: a document id is not an integer");
          add_id(static_cast<std::int64_t>(id.as_uint64()), "--forget-report");
        }
      }
    }
    if (forget_canaries_) {
      if (ds.canaries.insertions.empty()) throw ConfigError("--forget-canaries: the dataset has no planted canaries");
      for (const auto& ins : ds.canaries.insertions) forget_.insert(ins.document);
    }
    if (ds.tokenizer != "bytes" && tokenizer_dir_.empty())
      zlib_note_ = "skipped: a " + ds.tokenizer + " dataset needs --tokenizer-dir to decode documents";
    else
      tokenizer_ = make_tokenizer(ds.tokenizer, tokenizer_dir_);
    if (tokenizer_ && tokenizer_->identity() != ds.tokenizer_identity)
      throw ConfigError("--tokenizer-dir: these tokenizer files are not the ones the dataset was made with");
  }

  int run(AppContext& ctx) override {
    const auto t_start = std::chrono::steady_clock::now();
    const ProcessGrid& grid = ctx.grid;
    const TokenDataset& ds = *dataset_cache_;
    CheckpointInfo info;
    std::unique_ptr<TransformerModel> model = load_model(in_, grid, &info);
    if (ds.vocab_size > model->config().vocab_size)
      UNLEARN_THROW(AgreedError, "dataset vocabulary " << ds.vocab_size << " exceeds the model's "
                                                       << model->config().vocab_size);
    log_info0("model: " + model->config().describe() + " from " + in_ + " (step " + std::to_string(info.step) + ")");
    std::unique_ptr<TransformerModel> original;
    CheckpointInfo original_info;
    if (!original_.empty()) {
      original = load_model(original_, grid, &original_info);
      if (original->config().describe() != model->config().describe())
        UNLEARN_THROW(AgreedError, "--original '" << original_ << "' has another architecture than '" << in_ << "'");
    }
    window_ = model->config().max_positions;

    // The sets, each a seeded sample of at most --documents documents.
    std::vector<std::int64_t> validation, test, retain, forget(forget_.begin(), forget_.end());
    for (std::int64_t d = 0; d < ds.num_documents(); ++d) {
      if (document_targets(ds.document_tokens(d), window_) == 0) continue;
      const auto split = static_cast<Split>(ds.doc_splits[static_cast<std::size_t>(d)]);
      if (split == Split::kValidation) validation.push_back(d);
      if (split == Split::kTest) test.push_back(d);
      if (split == Split::kTrain && !forget_.count(d)) retain.push_back(d);
    }
    std::vector<std::int64_t> heldout = validation;
    heldout.insert(heldout.end(), test.begin(), test.end());
    std::vector<DocumentSet> sets;
    std::uint64_t stream = 0;
    for (auto [name, rows] : {std::pair{"validation", validation}, std::pair{"test", test},
                              std::pair{"forget", forget}, std::pair{"retain", retain}, std::pair{"heldout", heldout}}) {
      DocumentSet s;
      s.name = name;
      s.available = static_cast<std::int64_t>(rows.size());
      s.rows = sample(rows, ++stream);
      sets.push_back(std::move(s));
    }
    std::vector<ScoredSequence> seqs;
    std::vector<std::pair<std::size_t, std::size_t>> owner;  // (set, document in set) of each window
    for (std::size_t k = 0; k < sets.size(); ++k)
      for (std::size_t i = 0; i < sets[k].rows.size(); ++i)
        for (auto& w : document_windows(ds.document_tokens(sets[k].rows[i]), window_)) {
          seqs.push_back({std::move(w), 1});
          owner.emplace_back(k, i);
        }
    auto t = std::chrono::steady_clock::now();
    const auto per_window = token_nll(*model, grid, seqs, rows_per_batch_);
    for (auto& s : sets) s.tokens.resize(s.rows.size());
    for (std::size_t w = 0; w < seqs.size(); ++w) {
      auto& doc = sets[owner[w].first].tokens[owner[w].second];
      doc.insert(doc.end(), per_window[w].begin(), per_window[w].end());
    }
    const double score_s = seconds_since(t);

    JsonObject report;
    report.add("command", "eval").add_raw("config", ctx.config_json).add("numerics", numerics_description()).add("checkpoint", in_)
        .add("checkpoint_digest", info.content_digest).add("checkpoint_step", info.step).add("dataset", dataset_)
        .add("world_size", grid.world_size()).add("tp", grid.tp_size()).add("dp", grid.dp_size());
    JsonObject perplexity;
    std::vector<std::string> table{"| set | documents (of) | tokens | perplexity |", "|---|---|---|---|"};
    std::vector<std::string> metrics{"| metric | value |", "|---|---|"};
    for (const auto& s : sets) {
      if (s.name == "heldout") continue;  // validation and test together, for the attacks only
      const bool empty = s.token_count() == 0;
      perplexity.add_raw(s.name, JsonObject().add("documents", static_cast<std::int64_t>(s.rows.size()))
                                     .add("available", s.available).add("tokens", s.token_count())
                                     .add_raw("perplexity", empty ? "null" : fmt("%.17g", s.perplexity()))
                                     .add_raw("mean_nll", empty ? "null" : fmt("%.17g", s.nll_sum() / s.token_count()))
                                     .str());
      table.push_back("| " + s.name + " | " + std::to_string(s.rows.size()) + " (" + std::to_string(s.available) +
                      ") | " + std::to_string(s.token_count()) + " | " + (empty ? "-" : fmt("%.3f", s.perplexity())) +
                      " |");
    }
    report.add_raw("perplexity", perplexity.str());

    // Membership inference: forget documents (members) against held-out documents.
    const DocumentSet& members = sets[2];
    const DocumentSet& outsiders = sets[4];
    if (!members.rows.empty() && !outsiders.rows.empty()) {
      JsonObject mia;
      mia.add("members", static_cast<std::int64_t>(members.rows.size()))
          .add("non_members", static_cast<std::int64_t>(outsiders.rows.size()));
      std::string line = "membership inference AUC, forget vs held-out documents (95% bootstrap):";
      auto attack = [&](const std::string& name, auto score) {
        std::vector<double> in, out;
        for (std::size_t i = 0; i < members.rows.size(); ++i) in.push_back(score(members, i));
        for (std::size_t i = 0; i < outsiders.rows.size(); ++i) out.push_back(score(outsiders, i));
        const AucInterval a = bootstrap_auc(in, out, bootstrap_, seed_);
        mia.add_raw(name, interval_json(a));
        line += " " + name + " " + fmt("%.3f [%.3f, %.3f]", a.auc, a.lower, a.upper);
        metrics.push_back("| membership-inference AUC, " + name + " attack (95% bootstrap) | " +
                          fmt("%.3f [%.3f, %.3f]", a.auc, a.lower, a.upper) + " |");
      };
      attack("loss", [](const DocumentSet& s, std::size_t i) { return mia_loss_score(s.tokens[i]); });
      attack("min_k", [&](const DocumentSet& s, std::size_t i) { return mia_min_k_score(s.tokens[i], min_k_); });
      if (tokenizer_)
        attack("zlib", [&](const DocumentSet& s, std::size_t i) {
          return mia_zlib_score(s.tokens[i], tokenizer_->decode(ds.document_tokens(s.rows[i])));
        });
      else
        mia.add("zlib", zlib_note_);
      mia.add("min_k_fraction", min_k_);
      report.add_raw("membership_inference", mia.str());
      log_info0(line);
    } else {
      report.add("membership_inference", std::string("skipped: no forget set (--forget-*) or no held-out documents"));
    }

    // Canary exposure, by rank and extrapolated from a skew-normal fit to the reference candidates.
    if (!ds.canaries.empty()) {
      t = std::chrono::steady_clock::now();
      const std::vector<double> px = canary_px(*model, grid, ds.canaries, rows_per_batch_);
      const ExposureSummary rank = summarize_exposure(ds.canaries, px);
      std::vector<double> refs;
      for (std::size_t c = 0; c < px.size(); ++c)
        if (ds.canaries.candidates[c].role == CanaryRole::kReference) refs.push_back(px[c]);
      const SkewNormalFit fit = fit_skew_normal(refs);
      JsonObject ex;
      ex.add_raw("rank", to_json(rank));
      JsonObject extrapolated;
      extrapolated.add("location", fit.location).add("scale", fit.scale).add("shape", fit.shape)
          .add("log_likelihood", fit.log_likelihood);
      std::string line = describe(rank);
      for (CanaryRole role : {CanaryRole::kEvaluation, CanaryRole::kTuning, CanaryRole::kHeldout}) {
        std::vector<double> by_rank, by_fit;
        for (std::size_t c = 0; c < px.size(); ++c)
          if (ds.canaries.candidates[c].role == role) {
            by_rank.push_back(rank.canaries[c].exposure);
            by_fit.push_back(extrapolated_exposure(fit, px[c]));
          }
        if (by_rank.empty()) continue;
        const std::string name = to_string(role);
        ex.add_raw(name + "_rank_mean", interval_json(bootstrap_mean(by_rank, bootstrap_, seed_)));
        ex.add_raw(name + "_extrapolated_mean", interval_json(bootstrap_mean(by_fit, bootstrap_, seed_)));
        std::string per = "[";
        for (double x : by_fit) per += (per.size() > 1 ? ", " : "") + fmt("%.17g", x);
        extrapolated.add_raw(name, per + "]");
        const double mean = std::accumulate(by_fit.begin(), by_fit.end(), 0.0) / static_cast<double>(by_fit.size());
        metrics.push_back("| mean exposure, " + std::to_string(by_rank.size()) + " " + name +
                          " canaries (bits: rank / extrapolated) | " + fmt("%.2f / %.2f", ex_mean(by_rank), mean) +
                          " |");
      }
      ex.add_raw("extrapolated", extrapolated.str()).add("seconds", seconds_since(t));
      report.add_raw("exposure", ex.str());
      log_info0(line);
    }

    if (original) {
      // Mean KL(original || checkpoint) per retain token, and the size of the change.
      std::vector<ScoredSequence> retain_seqs;
      for (std::size_t w = 0; w < seqs.size(); ++w)
        if (sets[owner[w].first].name == "retain") retain_seqs.push_back(seqs[w]);
      const std::vector<double> kl = sequence_kl(*model, *original, grid, retain_seqs, rows_per_batch_);
      const double tokens = static_cast<double>(sets[3].token_count());
      const double mean_kl = tokens > 0 ? std::accumulate(kl.begin(), kl.end(), 0.0) / tokens : 0.0;
      const auto all = model->select("");
      ShardedVector diff = model->values(all);
      diff.axpy(-1.0, original->values(all));
      const double update = diff.norm(), base = original->values(all).norm();
      report.add("original", original_).add("original_digest", original_info.content_digest)
          .add("retain_kl_per_token", mean_kl).add("update_norm", update).add("relative_update_norm", update / base);
      metrics.push_back("| KL(original ‖ this), mean per retain token (nats) | " + fmt("%.4g", mean_kl) + " |");
      metrics.push_back("| ‖θ − θ_original‖ (relative) | " + fmt("%.4g (%.3g)", update, update / base) + " |");
    }
    report.add("scoring_s", score_s).add("total_s", seconds_since(t_start));

    std::string text;
    for (const auto& l : table) text += l + "\n";
    text += "\n";
    for (const auto& l : metrics) text += l + "\n";
    log_info0("evaluation of " + in_ + ":\n" + text);
    if (grid.world_rank() == 0) {
      write_replacing(out_.empty() ? in_ + ".eval.json" : out_, report.str() + "\n");
      if (!table_.empty()) write_replacing(table_, text);
      log_info0("wrote " + (out_.empty() ? in_ + ".eval.json" : out_) + (table_.empty() ? "" : " and " + table_));
    }
    ctx.metrics.write(JsonObject().add("event", "eval").add_raw("report", report.str()));
    return 0;
  }

 private:
  static double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }
  static double ex_mean(const std::vector<double>& v) {
    return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  }

  /// At most --documents rows, a seeded sample in dataset order (the same on every rank).
  std::vector<std::int64_t> sample(std::vector<std::int64_t> rows, std::uint64_t stream) const {
    if (documents_ == 0 || rows.size() <= static_cast<std::size_t>(documents_)) return rows;
    DataRng(seed_, 0x6576616cull + stream).shuffle(rows);
    rows.resize(static_cast<std::size_t>(documents_));
    std::sort(rows.begin(), rows.end());
    return rows;
  }

  /// A temporary beside `path`, then rename: a reader never sees half a report.
  static void write_replacing(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    {
      std::ofstream f(tmp);
      f << text;
      if (!f.flush()) UNLEARN_THROW(IoError, "cannot write '" << tmp << "'");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) UNLEARN_THROW(IoError, "cannot rename '" << tmp << "' to '" << path << "': " << ec.message());
  }

  std::string in_, dataset_, original_, forget_report_, forget_ids_, out_, table_, tokenizer_dir_;
  mutable std::string zlib_note_;
  bool forget_canaries_ = false;
  int documents_ = 200, bootstrap_ = 1000, rows_per_batch_ = 16;
  double min_k_ = 0.2;
  std::uint64_t seed_ = 1234;
  std::int64_t window_ = 0;
  mutable std::optional<TokenDataset> dataset_cache_;
  mutable std::set<std::int64_t> forget_;
  mutable std::unique_ptr<Tokenizer> tokenizer_;
};

}  // namespace

std::unique_ptr<Subcommand> make_eval_command() { return std::make_unique<EvalCommand>(); }

}  // namespace unlearn
