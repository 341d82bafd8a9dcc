// `unlearn train`: TP x DP training of a GPT-2 or LLaMA model on a token dataset (issue 5), with periodic atomic
// checkpoints and bit-identical resume; at the end the train-set gradient, the stationarity ratio of design 3.0 and,
// when the dataset holds planted canaries, their exposure. Documents are named by id only, never by text.
#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include "model_options.h"
#include "unlearn/app/subcommands.h"
#include "unlearn/data/dataset.h"
#include "unlearn/eval/scoring.h"
#include "unlearn/io/checkpoint.h"
#include "unlearn/model/curvature.h"
#include "unlearn/parse/units.h"
#include "unlearn/train/trainer.h"
#include "unlearn/util/error.h"
#include "unlearn/util/numerics.h"
#include "unlearn/util/stop_signal.h"

namespace unlearn {
namespace {

std::string format_duration(double s) {
  char buf[32];
  const auto t = static_cast<long long>(std::max(0.0, s));
  if (t >= 3600) std::snprintf(buf, sizeof(buf), "%lldh%02lldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(buf, sizeof(buf), "%lldm%02llds", t / 60, t % 60);
  else std::snprintf(buf, sizeof(buf), "%.1fs", s);
  return buf;
}

class TrainCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "train"; }
  std::string_view summary() const override {
    return "train a model on a token dataset (TP x DP, AdamW, checkpoints, resume); reports memorisation";
  }

  void add_options(po::options_description& desc, po::positional_options_description&) override {
    desc.add_options()
        ("dataset", po::value<std::string>(&dataset_)->required()->value_name("FILE.h5"),
         "token dataset (unlearn prepare-data); the train split is used")
        ("output", po::value<std::string>(&out_)->required()->value_name("FILE.h5"),
         "final checkpoint; must not exist (written atomically)")
        ("report", po::value<std::string>(&report_)->value_name("FILE.json"),
         "training report (default: OUTPUT with .report.json)")
        ("init", po::value<std::string>(&init_)->value_name("FILE.h5"),
         "start from this checkpoint instead of a fresh model (its config wins over the model options)");
    model_.add_to(desc);
    desc.add_options()
        ("steps", po::value<std::int64_t>(&opt_.steps)->default_value(1000), "optimizer steps")
        ("batch-rows", po::value<std::int64_t>(&opt_.batch_rows)->default_value(16),
         "rows of max-positions tokens per step, all replicas together (documents packed with a document mask)")
        ("micro-batch-rows", po::value<std::int64_t>(&opt_.micro_batch_rows)->default_value(8),
         "rows per forward/backward on one rank (memory; does not change the result beyond rounding)")
        ("lr", po::value<double>(&opt_.lr)->default_value(1e-3), "peak learning rate")
        ("min-lr-ratio", po::value<double>(&opt_.min_lr_ratio)->default_value(0.1), "cosine floor as a fraction of --lr")
        ("warmup-steps", po::value<std::int64_t>(&opt_.warmup_steps)->default_value(50), "linear warm-up steps")
        ("beta1", po::value<double>(&opt_.beta1)->default_value(0.9), "AdamW β1")
        ("beta2", po::value<double>(&opt_.beta2)->default_value(0.95), "AdamW β2")
        ("adam-eps", po::value<double>(&opt_.eps)->default_value(1e-8), "AdamW ε")
        ("weight-decay", po::value<double>(&opt_.weight_decay)->default_value(0.1),
         "decoupled weight decay on matrices and embeddings")
        ("wd-off-fraction", po::value<double>(&opt_.wd_off_fraction)->default_value(0.2),
         "final fraction of the steps without weight decay, so training ends near a stationary point of the "
         "unregularised loss (Newton removal assumes one)")
        ("grad-clip", po::value<double>(&opt_.grad_clip)->default_value(1.0), "global gradient-norm limit (0: off)")
        ("seed", po::value<std::uint64_t>(&opt_.seed)->default_value(1234), "data order")
        ("exclude-canaries", po::bool_switch(&exclude_canaries_),
         "leave out every document holding a planted canary: the retrain-from-scratch reference of unlearning "
         "those documents (same seed, same options)")
        ("exclude-ids", po::value<std::string>(&exclude_ids_)->value_name("ID,..."),
         "leave out these document ids (a retrain reference for an id-based forget set)")
        ("checkpoint-dir", po::value<std::string>(&ck_.dir)->value_name("DIR"),
         "periodic checkpoints step-N.h5 + step-N.optim.h5 (model and AdamW state)")
        ("checkpoint-every", po::value<std::int64_t>(&ck_.every)->default_value(0)->value_name("K"),
         "steps between periodic checkpoints (0: none)")
        ("resume", po::bool_switch(&resume_),
         "continue from the latest complete checkpoint in --checkpoint-dir (none: start fresh); the result is "
         "bit-identical to an uninterrupted run with the same options and rank layout")
        ("stop-after", po::value<std::int64_t>(&stop_after_)->default_value(0)->value_name("STEP"),
         "end after this step with a checkpoint, as SIGTERM/SIGUSR1 do (time-limited allocations; 0: never)")
        ("log-every", po::value<std::int64_t>(&log_every_)->default_value(0),
         "steps between progress lines (0: about 20 lines per run)")
        ("stationarity-docs", po::value<std::int64_t>(&stat_docs_)->default_value(0),
         "documents for the final train-set and canary-document gradients (0: all; a sample bounds the cost on "
         "large corpora)")
        ("eval-rows", po::value<std::int64_t>(&eval_rows_)->default_value(32), "rows per micro-batch of the final scoring");
  }

  void validate(const po::variables_map&, const CommonOptions& common, int world_size) const override {
    const int dp = world_size / std::max(1, common.tp);
    opt_.validate(dp);
    if (ck_.every < 0) throw ConfigError("--checkpoint-every must be >= 0");
    if ((ck_.every > 0 || resume_ || stop_after_ > 0) && ck_.dir.empty())
      throw ConfigError("--checkpoint-every, --resume and --stop-after need --checkpoint-dir");
    if (stop_after_ < 0 || (stop_after_ > 0 && stop_after_ >= opt_.steps))
      throw ConfigError("--stop-after must be in [1, --steps) (0: never)");
    if (log_every_ < 0 || stat_docs_ < 0 || eval_rows_ < 1)
      throw ConfigError("--log-every and --stationarity-docs must be >= 0, --eval-rows >= 1");
    if (std::filesystem::exists(out_)) UNLEARN_THROW(ConfigError, "--output '" << out_ << "' exists; it is never replaced");
    if (!init_.empty() && is_temporary_checkpoint_name(init_))
      throw ConfigError("--init '" + init_ + "' is a temporary file name");
    try {
      dataset_cache_ = read_dataset(dataset_);
    } catch (const IoError& e) {
      throw ConfigError(e.what());
    }
    const TokenDataset& ds = *dataset_cache_;
    excluded_.clear();
    if (!exclude_ids_.empty()) {
      for (int id : parse_int_list(exclude_ids_, "--exclude-ids")) {
        const auto it = std::find(ds.doc_ids.begin(), ds.doc_ids.end(), id);
        if (it == ds.doc_ids.end()) UNLEARN_THROW(ConfigError, "--exclude-ids: no document with id " << id);
        excluded_.insert(it - ds.doc_ids.begin());
      }
    }
    if (exclude_canaries_) {
      if (ds.canaries.insertions.empty()) throw ConfigError("--exclude-canaries: the dataset has no planted canaries");
      for (const auto& ins : ds.canaries.insertions) excluded_.insert(ins.document);
    }
    if (init_.empty()) {
      const ModelConfig cfg = model_.config(ds.vocab_size);
      cfg.validate(common.tp);
      check_vocab(cfg, ds);
    }
  }

  int run(AppContext& ctx) override {
    const auto t_start = std::chrono::steady_clock::now();
    const ProcessGrid& grid = ctx.grid;
    const TokenDataset& ds = *dataset_cache_;

    std::unique_ptr<TransformerModel> model;
    std::string init_digest;
    if (!init_.empty()) {
      CheckpointInfo info;
      model = load_model(init_, grid, &info);
      init_digest = info.content_digest;
      check_vocab<AgreedError>(model->config(), ds);  // every rank loaded the same config
    } else {
      model = std::make_unique<TransformerModel>(model_.config(ds.vocab_size), grid.tp());
      model->init_random(model_.init_seed, InitOptions{model_.init_std, 0.0, 0.0});
    }
    const ModelConfig& cfg = model->config();
    const std::int64_t window = cfg.max_positions;

    // Training windows: train-split documents, minus the excluded ones.
    std::vector<TokenRow> windows;
    std::int64_t train_docs = 0, train_targets = 0;
    std::vector<std::int64_t> train_rows;
    for (std::int64_t d = 0; d < ds.num_documents(); ++d) {
      if (ds.doc_splits[static_cast<std::size_t>(d)] != static_cast<std::uint8_t>(Split::kTrain) || excluded_.count(d))
        continue;
      auto w = document_windows(ds.document_tokens(d), window);
      if (w.empty()) continue;
      ++train_docs;
      train_rows.push_back(d);
      for (auto& r : w) {
        train_targets += static_cast<std::int64_t>(r.size()) - 1;
        windows.push_back(std::move(r));
      }
    }
    BatchStream stream(windows, window, opt_.batch_rows, opt_.seed);
    log_info0("model: " + cfg.describe() + ", " + std::to_string(model->global_numel()) + " parameters" +
              (init_.empty() ? std::string(", fresh (init seed ") + std::to_string(model_.init_seed) + ")"
                             : ", from " + init_));
    log_info0("data: " + ds.corpus + " (" + ds.tokenizer + "), " + std::to_string(train_docs) + " training documents" +
              (excluded_.empty() ? std::string() : " (" + std::to_string(excluded_.size()) + " excluded)") + ", " +
              std::to_string(train_targets) + " target tokens in " + std::to_string(stream.windows()) +
              " windows; " + std::to_string(opt_.batch_rows) + " rows x " + std::to_string(window) +
              " positions per step, about " +
              std::to_string(static_cast<double>(opt_.steps * opt_.batch_rows * window) /
                             static_cast<double>(std::max<std::int64_t>(1, train_targets))) +
              " epochs");

    ck_.tokenizer = ds.tokenizer_identity;
    ck_.provenance["train.dataset"] = dataset_;
    ck_.provenance["train.dataset_source_sha256"] = ds.source_sha256;
    ck_.provenance["train.config"] = ctx.config_json;
    if (!init_digest.empty()) ck_.provenance["train.init_digest"] = init_digest;
    if (!ck_.dir.empty() && grid.world_rank() == 0) std::filesystem::create_directories(ck_.dir);
    grid.world().barrier();

    AdamW adam(*model);
    std::int64_t first_step = 0;
    if (resume_) {
      first_step = latest_complete_checkpoint(ck_.dir);
      discard_uncommitted_training_state(ck_.dir, first_step, grid);
      if (first_step > 0) {
        load_training_state(ck_.dir, first_step, *model, adam, grid, opt_);
        log_info0("resumed from " + ck_.dir + "/" + checkpoint_file_name(first_step) + " (step " +
                  std::to_string(first_step) + " of " + std::to_string(opt_.steps) + ")");
      } else {
        log_info0("--resume: no complete checkpoint in " + ck_.dir + "; starting at step 0");
      }
    }

    install_stop_signals();
    const std::int64_t log_every = log_every_ > 0 ? log_every_ : std::max<std::int64_t>(1, opt_.steps / 20);
    const auto t_train = std::chrono::steady_clock::now();
    std::int64_t tokens_since = 0, stopped_at = 0;
    double loss_since = 0;
    int steps_since = 0;
    auto t_log = t_train;
    StepStats last;
    // Run in chunks between stop checks: a signal on any rank stops every rank after the same step.
    for (std::int64_t step = first_step; step < opt_.steps;) {
      const std::int64_t until = std::min(opt_.steps, step + 1);
      train(*model, grid, stream, opt_, adam, step, until, ck_, [&](const StepStats& s) {
        last = s;
        tokens_since += s.tokens;
        loss_since += s.loss;
        ++steps_since;
        if (s.step % log_every == 0 || s.step == opt_.steps || s.step == first_step + 1) {
          const auto now = std::chrono::steady_clock::now();
          const double dt = std::chrono::duration<double>(now - t_log).count();
          const double elapsed = std::chrono::duration<double>(now - t_train).count();
          const double eta = elapsed / static_cast<double>(s.step - first_step) * static_cast<double>(opt_.steps - s.step);
          char line[256];
          std::snprintf(line, sizeof(line),
                        "step %6lld/%lld  loss %.4f  |g| %.3f  lr %.2e%s  epoch %.2f  %.0f tok/s  elapsed %s  ETA %s",
                        static_cast<long long>(s.step), static_cast<long long>(opt_.steps),
                        loss_since / steps_since, s.grad_norm, s.lr, s.wd > 0 ? "" : " (wd off)", s.epoch,
                        static_cast<double>(tokens_since) / std::max(dt, 1e-9), format_duration(elapsed).c_str(),
                        format_duration(eta).c_str());
          log_info0(line);
          ctx.metrics.write(JsonObject().add("event", "train_step").add("step", s.step)
                                .add("loss", loss_since / steps_since).add("grad_norm", s.grad_norm).add("lr", s.lr)
                                .add("weight_decay", s.wd).add("epoch", s.epoch)
                                .add("tokens_per_s", static_cast<double>(tokens_since) / std::max(dt, 1e-9)));
          tokens_since = 0;
          loss_since = 0;
          steps_since = 0;
          t_log = now;
        }
      });
      step = until;
      const std::int64_t signal_any = grid.world().all_reduce_scalar(std::int64_t{stop_signal_received()}, ReduceOp::kMax);
      if ((signal_any || step == stop_after_) && step < opt_.steps) {
        if (ck_.dir.empty()) {
          // Nothing to resume from: say so, and end with a failure status (the job did not finish).
          if (grid.world_rank() == 0) log_warn("signal " + std::to_string(signal_any) + ": stopped after step " + std::to_string(step) +
                   " without a checkpoint (no --checkpoint-dir); nothing was saved");
          return 1;
        }
        if (!(ck_.every > 0 && step % ck_.every == 0)) save_training_state(ck_, *model, adam, grid, opt_, step);
        log_info0(std::string(signal_any ? "signal " + std::to_string(signal_any) : std::string("--stop-after")) +
                  ": stopped after step " + std::to_string(step) + " with a checkpoint in " + ck_.dir +
                  "; continue with --resume");
        stopped_at = step;
        break;
      }
    }
    const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_train).count();
    if (stopped_at > 0) return 0;

    SaveOptions save;
    save.step = opt_.steps;
    save.tokenizer = ds.tokenizer_identity;
    save.seed = opt_.seed;
    save.input_digest = init_digest;
    save.provenance = ck_.provenance;
    const CheckpointInfo out_info = save_checkpoint(out_, *model, grid, save);
    log_info0("wrote " + out_ + " (step " + std::to_string(opt_.steps) + ", digest " + out_info.content_digest + ")");

    // Final statistics: train-set loss and gradient, the stationarity ratio against the canary documents (the
    // forget set the demo removes), and the canaries' exposure.
    const auto t_eval = std::chrono::steady_clock::now();
    std::vector<std::size_t> all(model->parameters().size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    auto gradient_over = [&](const std::vector<std::int64_t>& docs) {
      return loss_and_gradient(*model, grid.dp(), all,
                               replica_batches(docs, [&](std::int64_t d) { return ds.document_tokens(d); }, window,
                                               eval_rows_, grid.dp_rank(), grid.dp_size()));
    };
    std::vector<std::int64_t> stat_rows = train_rows;
    if (stat_docs_ > 0 && static_cast<std::int64_t>(stat_rows.size()) > stat_docs_) stat_rows.resize(stat_docs_);
    const LossGradient full = gradient_over(stat_rows);
    const double full_norm = full.gradient.norm();
    JsonObject report;
    report.add("command", "train").add_raw("config", ctx.config_json).add("numerics", numerics_description()).add("model", cfg.describe())
        .add("parameters", model->global_numel()).add("steps", opt_.steps)
        .add("resumed_from_step", first_step).add("training_documents", train_docs)
        .add("excluded_documents", static_cast<std::int64_t>(excluded_.size()))
        .add("training_target_tokens", train_targets).add("final_step_loss", last.loss)
        .add("train_loss", full.loss).add("train_gradient_norm", full_norm)
        .add("train_stat_documents", static_cast<std::int64_t>(stat_rows.size()));
    std::set<std::int64_t> canary_docs;
    for (const auto& ins : ds.canaries.insertions) canary_docs.insert(ins.document);
    if (!canary_docs.empty()) {
      // Design 3.0: ‖∇L_D‖ / ‖(n_f/n_r) Δ‖ with the canary documents as D_f.
      std::vector<std::int64_t> canary_rows(canary_docs.begin(), canary_docs.end());
      if (stat_docs_ > 0 && static_cast<std::int64_t>(canary_rows.size()) > stat_docs_) canary_rows.resize(stat_docs_);
      const LossGradient forget = gradient_over(canary_rows);
      // n_f and n_r count the whole training set (the gradient norms may come from a sample of it).
      const double n_f = static_cast<double>(forget.num_targets);
      const double n_r = static_cast<double>(std::max<std::int64_t>(1, train_targets - forget.num_targets));
      const double ratio = full_norm / (n_f / n_r * forget.gradient.norm());
      report.add("canary_documents", static_cast<std::int64_t>(canary_docs.size()))
          .add("canary_document_loss", forget.loss).add("stationarity_ratio", ratio);
      log_info0("train loss " + std::to_string(full.loss) + ", ‖∇L_D‖ " + std::to_string(full_norm) +
                "; canary documents: loss " + std::to_string(forget.loss) + ", stationarity ratio " +
                std::to_string(ratio) + (ratio > 0.1 ? " (> 0.1: prefer --gradient-source retain when unlearning)" : ""));
    } else {
      log_info0("train loss " + std::to_string(full.loss) + ", ‖∇L_D‖ " + std::to_string(full_norm));
    }
    if (!ds.canaries.empty()) {
      const std::vector<double> px = canary_px(*model, grid, ds.canaries, eval_rows_);
      const ExposureSummary ex = summarize_exposure(ds.canaries, px);
      report.add("exposure_evaluation_mean", ex.mean_evaluation).add("exposure_heldout_mean", ex.mean_heldout)
          .add_raw("exposure", to_json(ex));
      log_info0(describe(ex));
    }
    const double eval_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_eval).count();
    report.add("train_s", train_s).add("final_eval_s", eval_s)
        .add("total_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count())
        .add("output_checkpoint", out_).add("output_digest", out_info.content_digest)
        .add("world_size", grid.world_size()).add("tp", grid.tp_size()).add("dp", grid.dp_size());
    if (grid.world_rank() == 0) {
      const std::string path = report_.empty() ? out_ + ".report.json" : report_;
      std::ofstream f(path);
      f << report.str() << '\n';
      if (!f) UNLEARN_THROW(IoError, "cannot write the report '" << path << "'");
      log_info0("wrote " + path);
    }
    ctx.metrics.write(JsonObject().add("event", "train").add_raw("report", report.str()));
    return 0;
  }

 private:
  template <class E = ConfigError>
  static void check_vocab(const ModelConfig& cfg, const TokenDataset& ds) {
    if (ds.vocab_size > cfg.vocab_size)
      UNLEARN_THROW(E, "the dataset's vocabulary (" << ds.vocab_size << ", " << ds.tokenizer
                                                              << ") is larger than the model's (" << cfg.vocab_size
                                                              << "): token ids would fall outside the embedding");
  }

  std::string dataset_, out_, report_, init_, exclude_ids_;
  ModelOptions model_;
  TrainOptions opt_;
  TrainCheckpointing ck_;
  bool exclude_canaries_ = false, resume_ = false;
  std::int64_t stop_after_ = 0, log_every_ = 0, stat_docs_ = 0, eval_rows_ = 32;
  mutable std::optional<TokenDataset> dataset_cache_;
  mutable std::set<std::int64_t> excluded_;
};

}  // namespace

std::unique_ptr<Subcommand> make_train_command() { return std::make_unique<TrainCommand>(); }

}  // namespace unlearn
