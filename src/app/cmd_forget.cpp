// `unlearn forget`: load a checkpoint, then for each unlearning request (a forget set of documents) build the forget
// set and a retain sample from a token dataset, compute a Newton-type update (design 3.2) or the gradient-ascent
// baseline, optionally backtrack the step against a retain-loss budget, and apply it; finally write the unlearned
// checkpoint atomically and an audit report (JSON, rank 0). `--dry-run` estimates memory and time per rank from the
// checkpoint's metadata alone. Documents are named by id only: the report and the log never hold text (design 7).
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "forget_estimate.h"
#include "solver_state.h"
#include "unlearn/app/subcommands.h"
#include "unlearn/data/dataset.h"
#include "unlearn/data/rng.h"
#include "unlearn/eval/scoring.h"
#include "unlearn/io/checkpoint.h"
#include "unlearn/model/batching.h"
#include "unlearn/parse/units.h"
#include "unlearn/solver/newton.h"
#include "unlearn/util/error.h"
#include "unlearn/util/numerics.h"
#include "unlearn/util/stop_signal.h"

namespace unlearn {
namespace {

/// An option's value as text (the types the options of this command use).
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

/// Per-tensor global norms, each replicated tensor counted once.
std::string tensor_norms_json(const ShardedVector& v) {
  JsonObject obj;
  for (std::size_t i = 0; i < v.size(); ++i) {
    double local = v.layout()[i].counted ? v[i].to(at::kDouble).pow(2).sum().item<double>() : 0.0;
    obj.add(v.layout()[i].name, std::sqrt(v.group()->all_reduce_scalar(local)));
  }
  return obj.str();
}

std::string json_array(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out + "]";
}

/// One unlearning request: dataset rows to forget, and how the user named them (for the report).
struct Request {
  std::string source;
  std::set<std::int64_t> rows;
};

enum class StepPolicy { kNone, kBacktrack };
StepPolicy parse_step_policy(const std::string& s) {
  if (s == "none") return StepPolicy::kNone;
  if (s == "backtrack") return StepPolicy::kBacktrack;
  UNLEARN_THROW(ConfigError, "unknown --step-policy '" << s << "' (none, backtrack)");
}

class ForgetCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "forget"; }
  std::string_view summary() const override {
    return "remove forget sets from a checkpoint with Newton-type updates; writes a checkpoint and an audit report";
  }

  void add_options(po::options_description& desc, po::positional_options_description&) override {
    desc.add_options()
        ("checkpoint", po::value<std::string>(&in_)->required(), "input checkpoint (HDF5, any TP)")
        ("dataset", po::value<std::string>(&dataset_)->required(), "token dataset (unlearn prepare-data)")
        ("output", po::value<std::string>(&out_), "unlearned checkpoint; must not exist (written atomically); "
                                                   "required unless --dry-run")
        ("report", po::value<std::string>(&report_), "audit report JSON (default: OUTPUT with .report.json)")
        ("forget-ids", po::value<std::string>(&forget_ids_)->value_name("IDS[;IDS...]"),
         "document ids to forget, comma-separated; ';' separates sequential requests (removed one after another)")
        ("forget-canaries", po::bool_switch(&forget_canaries_),
         "forget every training document holding a planted canary")
        ("canary-requests", po::value<int>(&canary_requests_)->default_value(1)->value_name("K"),
         "with --forget-canaries: split the canaries into K sequential requests (canary i goes to request i % K)")
        ("retain-sample", po::value<int>(&retain_sample_)->default_value(64),
         "training documents outside the forget sets used for the retain gradient, curvature and loss budget")
        ("method", po::value<std::string>(&method_)->default_value("fisher-removal"),
         "newton-cg | fisher-removal | fisher-forgetting | gradient-ascent")
        ("curvature", po::value<std::string>(&curvature_)->default_value("ggn"), "newton-cg: hessian | ggn | fisher")
        ("damping", po::value<double>(&opt_.damping)->default_value(1e-3), "λ in A = C + λI")
        ("step-scale", po::value<double>(&opt_.step_scale)->default_value(1.0), "η")
        ("gradient-source", po::value<std::string>(&source_)->default_value("forget"),
         "forget: (n_f/n_r) Δ (needs a stationary θ); retain: -∇L_retain")
        ("step-policy", po::value<std::string>(&step_policy_)->default_value("none"),
         "none | backtrack: halve η until the retain-sample loss rises by at most --loss-budget")
        ("loss-budget", po::value<double>(&loss_budget_)->default_value(0.05),
         "backtrack: allowed relative rise of the retain-sample loss (0.05 = 5%)")
        ("backtrack-max", po::value<int>(&backtrack_max_)->default_value(8), "backtrack: most halvings")
        ("ga-lr", po::value<double>(&ga_lr_)->default_value(1e-3), "gradient-ascent: step size")
        ("ga-steps", po::value<int>(&ga_steps_)->default_value(10), "gradient-ascent: steps per request")
        ("cg-max-iters", po::value<int>(&opt_.cg.max_iters)->default_value(50), "CG iteration limit")
        ("cg-rtol", po::value<double>(&opt_.cg.rtol)->default_value(1e-4), "CG relative residual target")
        ("trust-radius", po::value<double>(&opt_.cg.trust_radius)->default_value(0.0), "CG trust radius (0: none)")
        ("fisher-by-cg", po::bool_switch(&opt_.fisher_by_cg), "fisher-*: CG on F̂₀ + λI instead of Woodbury")
        ("preconditioner", po::value<std::string>(&preconditioner_)->default_value("none"),
         "CG solves (newton-cg, --fisher-by-cg): none | diagonal (Jacobi, M = diag(F̂₀) + λ from the retain "
         "documents' gradients: exact for --curvature fisher, the empirical Fisher's diagonal for H and G)")
        ("noise", po::value<double>(&opt_.noise_scale)->default_value(0.0),
         "fisher-forgetting: noise scale, μσ² for quartic-root, α for diagonal (0: no noise)")
        ("noise-form", po::value<std::string>(&noise_form_)->default_value("quartic-root"),
         "fisher-forgetting: quartic-root ((μσ²)^¼ (F̂₀ + λI)^-¼ n, the paper) | diagonal (sqrt(α) (diag F̂₀ + λ)^-½ "
         "n, Golatkar et al. 2020)")
        ("seed", po::value<std::uint64_t>(&seed_)->default_value(1234), "retain sampling and noise")
        ("params", po::value<std::string>(&params_)->default_value(""), "regex of the parameters to update (all)")
        ("rows-per-batch", po::value<int>(&rows_per_batch_)->default_value(8), "rows per micro-batch")
        ("solver-sharding", po::value<std::string>(&solver_sharding_)->default_value("dp"),
         "dp: with DP > 1 every rank keeps 1/DP of each CG vector and Fisher row, products all-gather and "
         "reduce-scatter over DP (design 3.4) | none: every DP replica holds them whole")
        ("state-dir", po::value<std::string>(&state_dir_)->value_name("DIR"),
         "CG solver-state checkpoints (cg-r<request>-i<iteration>.h5); SIGTERM/SIGUSR1 save one and stop")
        ("state-every", po::value<int>(&state_every_)->default_value(0)->value_name("K"),
         "with --state-dir: save the CG state every K iterations (0: only when stopped)")
        ("resume", po::bool_switch(&resume_),
         "continue from the latest state in --state-dir (none: start fresh); the output is bit-identical to an "
         "uninterrupted run with the same options and rank layout")
        ("stop-after-iteration", po::value<int>(&stop_after_iteration_)->default_value(0)->value_name("K"),
         "stop with a saved state after CG iteration K of the first request that reaches it in this run, as "
         "SIGTERM does (tests, time-limited allocations; 0: never)")
        ("dry-run", po::bool_switch(&dry_run_),
         "print the memory and time estimate per rank from the checkpoint's metadata, load nothing, write nothing")
        ("memory-limit", po::value<std::string>(&memory_limit_)->default_value("auto")->value_name("BYTES"),
         "refuse to start when the estimate per rank exceeds this (auto: MemAvailable / ranks on the node; "
         "0: never refuse)");
  }

  void validate(const po::variables_map&, const CommonOptions&, int) const override {
    const Method method = parse_method(method_);
    parse_curvature(curvature_);
    parse_gradient_source(source_);
    parse_step_policy(step_policy_);
    parse_noise_form(noise_form_);
    if (preconditioner_ != "none" && preconditioner_ != "diagonal")
      throw ConfigError("unknown --preconditioner '" + preconditioner_ + "' (none, diagonal)");
    if (preconditioner_ == "diagonal" && method != Method::kNewtonCg && !opt_.fisher_by_cg)
      throw ConfigError("--preconditioner diagonal preconditions CG: use it with newton-cg or --fisher-by-cg");
    if (opt_.damping <= 0 && preconditioner_ == "diagonal")
      throw ConfigError("--preconditioner diagonal needs --damping > 0 (diag(F̂₀) may vanish)");
    if (solver_sharding_ != "dp" && solver_sharding_ != "none")
      throw ConfigError("unknown --solver-sharding '" + solver_sharding_ + "' (dp, none)");
    if (!(opt_.noise_scale >= 0)) throw ConfigError("--noise must be >= 0");
    if (out_.empty() && !dry_run_) throw ConfigError("--output is required (unless --dry-run)");
    if (forget_ids_.empty() && !forget_canaries_)
      throw ConfigError("no forget set: give --forget-ids or --forget-canaries");
    if (retain_sample_ < 1) throw ConfigError("--retain-sample must be at least 1");
    if (rows_per_batch_ < 1) throw ConfigError("--rows-per-batch must be at least 1");
    if (!(opt_.damping >= 0)) throw ConfigError("--damping must be >= 0");
    if (!(loss_budget_ >= 0)) throw ConfigError("--loss-budget must be >= 0");
    if (backtrack_max_ < 0) throw ConfigError("--backtrack-max must be >= 0");
    if (method == Method::kGradientAscent && (!(ga_lr_ > 0) || ga_steps_ < 1))
      throw ConfigError("gradient-ascent needs --ga-lr > 0 and --ga-steps >= 1");
    if (canary_requests_ < 1) throw ConfigError("--canary-requests must be at least 1");
    // --state-every alone is harmless (a job config may set it; nothing is saved without a directory).
    if ((resume_ || stop_after_iteration_ > 0) && state_dir_.empty())
      throw ConfigError("--resume and --stop-after-iteration need --state-dir");
    if (state_every_ < 0 || stop_after_iteration_ < 0)
      throw ConfigError("--state-every and --stop-after-iteration must be >= 0");
    if (memory_limit_ != "auto") parse_byte_size(memory_limit_, "--memory-limit");
    if (is_temporary_checkpoint_name(in_)) throw ConfigError("--checkpoint '" + in_ + "' is a temporary file name");
    // The dataset and the forget sets are checked here, on every rank, before any communication: a wrong id is one
    // message, not one per rank. Ids only: document text is never printed.
    try {
      dataset_cache_ = read_dataset(dataset_);
    } catch (const IoError& e) {
      throw ConfigError(e.what());
    }
    const TokenDataset& ds = *dataset_cache_;
    requests_.clear();
    if (!forget_ids_.empty()) {
      std::stringstream groups(forget_ids_);
      for (std::string group; std::getline(groups, group, ';');) {
        Request r;
        r.source = "ids";
        for (int id : parse_int_list(group, "--forget-ids")) {
          const auto it = std::find(ds.doc_ids.begin(), ds.doc_ids.end(), id);
          if (it == ds.doc_ids.end()) UNLEARN_THROW(ConfigError, "--forget-ids: no document with id " << id);
          r.rows.insert(it - ds.doc_ids.begin());
        }
        requests_.push_back(std::move(r));
      }
    }
    if (forget_canaries_) {
      if (ds.canaries.insertions.empty()) throw ConfigError("--forget-canaries: the dataset has no planted canaries");
      std::vector<Request> by_canary(static_cast<std::size_t>(canary_requests_));
      for (std::size_t k = 0; k < by_canary.size(); ++k) by_canary[k].source = "canaries";
      for (const auto& ins : ds.canaries.insertions)
        by_canary[static_cast<std::size_t>(ins.candidate % canary_requests_)].rows.insert(ins.document);
      // A document holding canaries of several requests leaves with the first of them.
      std::set<std::int64_t> taken;
      for (auto& r : by_canary) {
        for (auto it = r.rows.begin(); it != r.rows.end();) it = taken.insert(*it).second ? std::next(it) : r.rows.erase(it);
        if (!r.rows.empty()) requests_.push_back(std::move(r));
      }
    }
    std::set<std::int64_t> seen;
    for (std::size_t i = 0; i < requests_.size(); ++i)
      for (std::int64_t row : requests_[i].rows)
        if (!seen.insert(row).second)
          UNLEARN_THROW(ConfigError, "document id " << ds.doc_ids[static_cast<std::size_t>(row)]
                                                    << " is in more than one request (request " << i + 1 << ")");
    for (std::size_t i = 0; i < requests_.size(); ++i)
      if (requests_[i].rows.empty()) UNLEARN_THROW(ConfigError, "request " << i + 1 << " has no documents");
  }

  int run(AppContext& ctx) override {
    const auto t_start = std::chrono::steady_clock::now();
    const ProcessGrid& grid = ctx.grid;
    opt_.method = parse_method(method_);
    opt_.gradient_source = parse_gradient_source(source_);
    opt_.noise_form = parse_noise_form(noise_form_);
    opt_.seed = seed_;
    const StepPolicy policy = parse_step_policy(step_policy_);
    const TokenDataset& ds = *dataset_cache_;
    JsonObject phases;

    // The estimate comes from metadata only, before any weight is loaded: a run that cannot fit is refused here.
    auto t = std::chrono::steady_clock::now();
    const CheckpointInfo meta = read_checkpoint_info(in_, grid.world());
    window_ = meta.config.max_positions;
    ForgetShape shape;
    shape.method = opt_.method;
    shape.curvature = parse_curvature(curvature_);
    shape.params_regex = params_;
    shape.retain_documents = retain_sample_;
    draw_request_sets();
    for (const RequestSets& r : request_sets_) shape.retain_tokens = std::max(shape.retain_tokens, r.sample_tokens);
    shape.cg_iterations = opt_.cg.max_iters;
    shape.rows_per_batch = rows_per_batch_;
    shape.dp_chunks = solver_sharding_ == "dp" ? grid.dp_size() : 1;
    shape.preconditioner = preconditioner_ == "diagonal";
    const ForgetEstimate est = estimate_forget(meta.config, grid, shape);
    const std::int64_t limit = memory_limit_ == "auto"
                                   ? available_memory_per_rank(grid)
                                   : static_cast<std::int64_t>(parse_byte_size(memory_limit_, "--memory-limit"));
    log_info0(describe(est, grid));
    if (dry_run_) return 0;
    // Agreed over the world: the largest rank's estimate against the smallest rank's limit.
    const std::int64_t need = grid.world().all_reduce_scalar(est.total_bytes, ReduceOp::kMax);
    if (limit > 0 && need > limit)
      UNLEARN_THROW(AgreedError, "the estimate needs " << format_bytes(static_cast<std::uint64_t>(need))
                                                       << " per rank, more than the "
                                                       << format_bytes(static_cast<std::uint64_t>(limit))
                                                       << " available (--memory-limit); use --params to restrict the "
                                                          "update, fewer --retain-sample documents, or more ranks");

    std::unique_ptr<TransformerModel> model = load_model(in_, grid, nullptr);
    const CheckpointInfo& info = meta;
    if (ds.vocab_size > model->config().vocab_size)
      UNLEARN_THROW(AgreedError, "dataset vocabulary " << ds.vocab_size << " exceeds the model's "
                                                       << model->config().vocab_size);
    phases.add("load_s", seconds_since(t));
    log_info0("model: " + model->config().describe() + " from " + in_ + " (step " + std::to_string(info.step) + ")");
    window_ = model->config().max_positions;
    const auto subset = model->select(params_);

    std::optional<ExposureSummary> exposure_before;
    if (!ds.canaries.empty()) {
      exposure_before = summarize_exposure(ds.canaries, canary_px(*model, grid, ds.canaries));
      log_info0("before: " + describe(*exposure_before));
    }

    // What decides the solve: a resumed run must match it (the input checkpoint, the rank layout and every option
    // except those that do not change the numbers).
    fingerprint_ = info.content_digest + " tp " + std::to_string(grid.tp_size()) + " dp " + std::to_string(grid.dp_size());
    static const std::set<std::string> neutral = {"resume", "stop-after-iteration", "state-every", "state-dir", "output",
                                                  "report", "metrics", "log-level", "dry-run", "threads", "config",
                                                  "memory-limit"};
    for (const auto& [key, value] : ctx.options)
      if (!neutral.count(key)) fingerprint_ += " " + key + "=" + option_value_text(value.value());
    if (!state_dir_.empty()) {
      if (grid.world_rank() == 0) std::filesystem::create_directories(state_dir_);
      grid.world().barrier();
    }
    if (resume_) {
      resume_from_ = latest_solver_state(state_dir_);
      log_info0(resume_from_ ? "resuming request " + std::to_string(resume_from_->request + 1) + " at CG iteration " +
                                   std::to_string(resume_from_->iteration) + " from " + state_dir_
                             : "--resume: no solver state in " + state_dir_ + "; starting from the beginning");
    }
    install_stop_signals();

    std::vector<std::string> request_reports;
    ShardedVector total_update;
    double solve_s = 0;
    const CommUsage comm_before = comm_usage();
    for (std::size_t r = 0; r < requests_.size(); ++r) {
      opt_.request = r;
      if (requests_.size() > 1)
        log_info0("request " + std::to_string(r + 1) + "/" + std::to_string(requests_.size()) + ": " +
                  std::to_string(requests_[r].rows.size()) + " documents (" + requests_[r].source + ")");
      const auto t_req = std::chrono::steady_clock::now();
      const std::string rep = run_request(*model, grid, subset, requests_[r], request_sets_[r], policy, total_update);
      solve_s += seconds_since(t_req);
      if (stopped_) {
        if (state_dir_.empty()) {
          if (grid.world_rank() == 0)
            log_warn("signal " + std::to_string(stopped_->signal) + ": stopped at request " + std::to_string(r + 1) +
                     ", CG iteration " + std::to_string(stopped_->iteration) +
                     " without a state (no --state-dir); nothing was saved");
          return 1;
        }
        log_info0((stopped_->signal ? "signal " + std::to_string(stopped_->signal) : std::string("--stop-after-iteration")) +
                  ": stopped at request " + std::to_string(r + 1) + ", CG iteration " +
                  std::to_string(stopped_->iteration) + " with its state in " + state_dir_ + "; continue with --resume");
        return 0;
      }
      request_reports.push_back(rep);
    }
    phases.add("requests_s", solve_s);
    const ResourceUsage resources = measure_resource_usage(grid.world(), comm_before, solve_s);
    log_info0(resources.describe());

    std::optional<ExposureSummary> exposure_after;
    if (exposure_before) {
      exposure_after = summarize_exposure(ds.canaries, canary_px(*model, grid, ds.canaries));
      log_info0("after:  " + describe(*exposure_after));
    }

    t = std::chrono::steady_clock::now();
    SaveOptions save;
    save.step = info.step + 1;
    save.tokenizer = info.tokenizer.empty() ? ds.tokenizer_identity : info.tokenizer;
    save.seed = seed_;
    save.input_digest = info.content_digest;
    save.provenance["unlearn.method"] = to_string(opt_.method);
    save.provenance["unlearn.config"] = ctx.config_json;
    const CheckpointInfo out_info = save_checkpoint(out_, *model, grid, save);
    phases.add("save_s", seconds_since(t));
    phases.add("total_s", seconds_since(t_start));

    JsonObject report;
    report.add("command", "forget").add_raw("config", ctx.config_json).add("numerics", numerics_description()).add("method", to_string(opt_.method))
        .add("curvature", opt_.method == Method::kNewtonCg ? curvature_ : std::string("fisher"))
        .add("damping", opt_.damping).add("step_scale", opt_.step_scale).add("gradient_source", source_)
        .add("noise_form", to_string(opt_.noise_form)).add("noise_scale", opt_.noise_scale)
        .add("step_policy", step_policy_).add("requests", static_cast<std::int64_t>(requests_.size()))
        .add_raw("request_reports", json_array(request_reports))
        .add("update_norm", total_update.norm()).add_raw("update_norm_per_tensor", tensor_norms_json(total_update))
        .add_raw("estimate", to_json(est)).add_raw("phases", phases.str()).add_raw("resources", resources.json())
        .add_raw("resumed_from", resume_from_ ? JsonObject().add("request", resume_from_->request + 1)
                                                    .add("iteration", resume_from_->iteration).str()
                                              : std::string("null"))
        .add("input_checkpoint", in_).add("input_digest", info.content_digest)
        .add("output_checkpoint", out_).add("output_digest", out_info.content_digest)
        .add("world_size", grid.world_size()).add("tp", grid.tp_size()).add("dp", grid.dp_size())
        .add_raw("placement", ctx.placement_json);
    if (exposure_before)
      report.add_raw("exposure_before", to_json(*exposure_before)).add_raw("exposure_after", to_json(*exposure_after));
    if (grid.world_rank() == 0) {
      const std::string path = report_.empty() ? out_ + ".report.json" : report_;
      std::ofstream f(path);
      f << report.str() << '\n';
      if (!f) UNLEARN_THROW(IoError, "cannot write the report '" << path << "'");
      log_info0("wrote " + out_ + " and " + path);
    }
    ctx.metrics.write(JsonObject().add("event", "forget").add_raw("report", report.str()));
    return 0;
  }

 private:
  /// Target tokens of one request's forget set and of the retain set (for n_f / n_r), and its retain sample:
  /// --retain-sample training documents outside every forget set so far, drawn by a seeded shuffle.
  struct RequestSets {
    std::int64_t n_forget = 0, n_retain = 0, sample_tokens = 0;
    std::vector<std::int64_t> retain_sample;  // dataset rows, sorted
  };

  /// Draws every request's sets once, before the model is loaded: the estimate and the run use the same samples.
  /// The forget sets leave D one after another, so request r's retain set excludes requests 0..r.
  void draw_request_sets() {
    const TokenDataset& ds = *dataset_cache_;
    std::vector<std::int64_t> targets(static_cast<std::size_t>(ds.num_documents()));
    for (std::int64_t d = 0; d < ds.num_documents(); ++d)
      targets[static_cast<std::size_t>(d)] = document_targets(ds.document_tokens(d), window_);
    std::set<std::int64_t> removed;
    request_sets_.clear();
    for (std::size_t r = 0; r < requests_.size(); ++r) {
      const Request& req = requests_[r];
      removed.insert(req.rows.begin(), req.rows.end());
      RequestSets out;
      for (std::int64_t d = 0; d < ds.num_documents(); ++d) {
        const std::int64_t n = targets[static_cast<std::size_t>(d)];
        if (req.rows.count(d)) {
          out.n_forget += n;
        } else if (!removed.count(d) && n > 0 &&
                   ds.doc_splits[static_cast<std::size_t>(d)] == static_cast<std::uint8_t>(Split::kTrain)) {
          out.n_retain += n;  // the whole retain set's count, for n_f / n_r
          out.retain_sample.push_back(d);
        }
      }
      // Every rank sees the same dataset at the same point: these errors are agreed.
      if (out.n_forget == 0) throw AgreedError("a forget set holds no target tokens (empty documents?)");
      if (out.retain_sample.empty()) throw AgreedError("no training documents remain outside the forget sets");
      // A portable shuffle (std::shuffle differs between standard libraries): the same sample everywhere.
      DataRng(seed_, 0x72657461696eull + r).shuffle(out.retain_sample);
      out.retain_sample.resize(std::min<std::size_t>(out.retain_sample.size(), static_cast<std::size_t>(retain_sample_)));
      std::sort(out.retain_sample.begin(), out.retain_sample.end());
      for (std::int64_t d : out.retain_sample) out.sample_tokens += targets[static_cast<std::size_t>(d)];
      request_sets_.push_back(std::move(out));
    }
  }

  /// This DP replica's single-window rows of `docs` (document i goes to replica i % dp).
  std::vector<Batch> batches_for(const std::vector<std::int64_t>& docs, const ProcessGrid& grid) const {
    return replica_batches(
        docs, [&](std::int64_t d) { return dataset_cache_->document_tokens(d); }, window_, rows_per_batch_,
        grid.dp_rank(), grid.dp_size());
  }

  /// One request: returns its report (JSON) and adds its update to `total`.
  std::string run_request(TransformerModel& model, const ProcessGrid& grid, const std::vector<std::size_t>& subset,
                          const Request& req, const RequestSets& sets, StepPolicy policy,
                          ShardedVector& total) {
    const TokenDataset& ds = *dataset_cache_;
    JsonObject phases;
    const std::int64_t n_forget = sets.n_forget, n_retain = sets.n_retain;
    const std::vector<std::int64_t>& retain_pool = sets.retain_sample;
    const std::vector<std::int64_t> forget_docs(req.rows.begin(), req.rows.end());
    const std::vector<Batch> forget_batches = batches_for(forget_docs, grid);
    const std::vector<Batch> retain_batches = batches_for(retain_pool, grid);

    auto t = std::chrono::steady_clock::now();
    // Only Newton-CG on H or G multiplies by the retain sample's curvature, so only it keeps that sample's graphs;
    // the forget set and everything else need a plain backward (graphs kept for the forget set cost gigabytes).
    const CurvatureKind kind = parse_curvature(curvature_);
    const bool products = opt_.method == Method::kNewtonCg && kind != CurvatureKind::kFisher;
    LossGradient forget_lg = loss_and_gradient(model, grid.dp(), subset, forget_batches);
    std::unique_ptr<Curvature> retain_curv;
    LossGradient retain_lg;
    if (products) {
      retain_curv = std::make_unique<Curvature>(model, grid.dp(), subset);
      retain_curv->prepare(retain_batches);
      retain_lg.loss = retain_curv->loss();
      retain_lg.num_targets = retain_curv->num_targets();
      retain_lg.gradient = retain_curv->gradient();
    } else {
      retain_lg = loss_and_gradient(model, grid.dp(), subset, retain_batches);
    }
    phases.add("gradients_s", seconds_since(t));
    const double forget_before = forget_lg.loss, retain_before = retain_lg.loss;
    const double retain_grad_before = retain_lg.gradient.norm();
    log_info0("forget set: " + std::to_string(forget_docs.size()) + " documents, n_f " + std::to_string(n_forget) +
              " tokens; retain set n_r " + std::to_string(n_retain) + " tokens, sample of " +
              std::to_string(retain_pool.size()) + " documents; forget loss " + std::to_string(forget_before) +
              ", retain-sample loss " + std::to_string(retain_before));

    JsonObject rep;
    rep.add("source", req.source).add("forget_documents", static_cast<std::int64_t>(forget_docs.size()))
        .add("n_forget", n_forget).add("n_retain", n_retain)
        .add("scale_nf_over_nr", static_cast<double>(n_forget) / static_cast<double>(n_retain))
        .add("retain_sample_documents", static_cast<std::int64_t>(retain_pool.size()))
        .add("retain_sample_tokens", retain_lg.num_targets);
    std::vector<std::string> ids;
    for (std::int64_t d : forget_docs) ids.push_back(std::to_string(ds.doc_ids[static_cast<std::size_t>(d)]));
    rep.add_raw("forget_document_ids", json_array(ids));

    ShardedVector step, noise;  // the update is eta * step + noise
    t = std::chrono::steady_clock::now();
    if (opt_.method == Method::kGradientAscent) {
      // Jang et al. 2022: θ ← θ + lr ∇L_{D_f}, k steps, the forget gradient recomputed at every step.
      step = forget_lg.gradient.zeros_like();
      ShardedVector g = forget_lg.gradient.clone();
      std::vector<std::string> steps;
      for (int k = 0; k < ga_steps_; ++k) {
        if (k > 0) g = loss_and_gradient(model, grid.dp(), subset, forget_batches).gradient;
        g.scale(ga_lr_);
        apply(model, subset, g, 1.0);
        step.axpy(1.0, g);
      }
      apply(model, subset, step, -1.0);  // back to θ: the step policy below applies eta * step
      rep.add("ga_lr", ga_lr_).add("ga_steps", ga_steps_);
    } else {
      // Design 3.4: with DP > 1 each rank keeps its DP chunk of every solver vector and Fisher row.
      std::optional<DpPartition> partition;
      if (solver_sharding_ == "dp" && grid.dp_size() > 1) partition.emplace(forget_lg.gradient, grid.dp(), grid.world());
      const DpPartition* part = partition ? &*partition : nullptr;
      const auto chunk = [part](const ShardedVector& v) { return part ? part->slice(v) : v.clone(); };
      const auto whole = [part](const ShardedVector& v) { return part && v.size() > 0 ? part->gather(v) : v; };
      UnlearnProblem pb;
      pb.forget_gradient = chunk(forget_lg.gradient);
      pb.retain_gradient = chunk(retain_lg.gradient);
      // ∇L_D estimated on forget ∪ retain sample, weighted by the set sizes.
      pb.full_gradient = pb.forget_gradient.clone();
      pb.full_gradient.scale(static_cast<double>(n_forget) / static_cast<double>(n_forget + n_retain));
      pb.full_gradient.axpy(static_cast<double>(n_retain) / static_cast<double>(n_forget + n_retain),
                            pb.retain_gradient);
      pb.n_forget = n_forget;
      pb.n_retain = n_retain;
      pb.placement = part ? slice_placement(placement_of(model, subset), *part) : placement_of(model, subset);
      std::unique_ptr<CurvatureOperator> curvature_op;
      std::unique_ptr<FisherStore> fisher;
      // The retain sample one document per batch, for the Fisher store's rows or the preconditioner's diagonal.
      std::vector<Batch> docs;
      if (!products || preconditioner_ == "diagonal")
        for (std::int64_t d : retain_pool)
          for (auto& b : batches_of(document_windows(ds.document_tokens(d), window_), 1 << 20)) docs.push_back(b);
      if (!products) {
        DocumentGradients dg = document_gradients(model, grid.dp(), subset, docs, part);
        fisher = std::make_unique<FisherStore>(std::move(dg.rows), dg.total_tokens);
        pb.fisher = fisher.get();
      } else {
        curvature_op = std::make_unique<CurvatureOperator>(*retain_curv, kind, part);
        pb.curvature = curvature_op.get();
      }
      // Jacobi preconditioner of CG: M = diag(F̂₀) + λ, exact for the Fisher curvature; for H and G the empirical
      // Fisher's diagonal of the retain documents (as Martens 2010 preconditions Hessian-free CG).
      ShardedVector inverse_diagonal;
      if (preconditioner_ == "diagonal") {
        if (fisher) {
          inverse_diagonal = fisher->diagonal();
        } else {
          std::int64_t tokens = 0;
          for (const Batch& b : docs) tokens += b.num_targets();
          inverse_diagonal = chunk(squared_gradient_sum(model, grid.dp(), subset, docs));
          inverse_diagonal.scale(1.0 / static_cast<double>(tokens));
        }
        for (std::size_t j = 0; j < inverse_diagonal.size(); ++j)
          inverse_diagonal[j] = (inverse_diagonal[j] + opt_.damping).reciprocal_();
        opt_.cg.inverse_diagonal = &inverse_diagonal;
      }
      phases.add("curvature_setup_s", seconds_since(t));
      t = std::chrono::steady_clock::now();
      // Solver state: resume this request's CG, save it every --state-every iterations, stop on a signal.
      std::optional<CgState> resumed;
      if (resume_from_ && resume_from_->request == static_cast<std::int64_t>(opt_.request)) {
        resumed = load_solver_state(state_dir_, *resume_from_, forget_lg.gradient, model, grid, subset, fingerprint_);
        resumed->x = chunk(resumed->x);
        resumed->r = chunk(resumed->r);
        resumed->p = chunk(resumed->p);
        log_info0("  cg resumes after iteration " + std::to_string(resumed->iteration));
      }
      forget_lg.gradient = ShardedVector();  // the problem holds its own copies (or chunks) from here
      retain_lg.gradient = ShardedVector();
      const bool saving = !state_dir_.empty() &&
                          (!resume_from_ || static_cast<std::int64_t>(opt_.request) >= resume_from_->request);
      opt_.cg.resume = resumed ? &*resumed : nullptr;
      opt_.cg.after_iteration = [&](const CgState& st) {
        const auto sig = grid.world().all_reduce_scalar(std::int64_t{stop_signal_received()}, ReduceOp::kMax);
        const bool stop_here = stop_after_iteration_ > 0 && !stop_used_ && st.iteration == stop_after_iteration_;
        const bool stop = sig != 0 || stop_here;
        if (saving && (stop || (state_every_ > 0 && st.iteration % state_every_ == 0))) {
          // The file holds whole global tensors whatever the layout: DP chunks are gathered for the write.
          const CgState file{st.iteration, whole(st.x), whole(st.r), whole(st.p), st.rz, st.residual_norm, st.history};
          save_solver_state(state_dir_, static_cast<std::int64_t>(opt_.request), file, model, grid, subset, fingerprint_);
        }
        if (stop) stopped_ = Stop{static_cast<int>(sig), st.iteration};
        stop_used_ = stop_used_ || stop_here;
        return stop;
      };
      const auto t_solve = std::chrono::steady_clock::now();
      NewtonResult res = newton_update(pb, opt_, [&](const CgIteration& it) {
        const double elapsed = seconds_since(t_solve);
        const double eta = elapsed / (it.iteration + 1) * std::max(0, opt_.cg.max_iters - it.iteration - 1);
        char line[200];
        std::snprintf(line, sizeof(line), "  cg %3d  rel. residual %.3e  curvature %.3e  %.1f s  ETA <= %.1f s",
                      it.iteration, it.relative_residual, it.curvature, it.seconds, eta);
        log_info0(line);
      });
      opt_.cg.after_iteration = nullptr;
      opt_.cg.resume = nullptr;
      opt_.cg.inverse_diagonal = nullptr;
      if (res.cg.status == CgStatus::kInterrupted) return {};  // run() reports the stop
      log_info0("update: " + to_string(opt_.method) + ", cg " + to_string(res.cg.status) + " after " +
                std::to_string(res.cg.iterations) + " iterations, ‖update‖ " + std::to_string(res.update_norm) +
                ", stationarity ratio " + std::to_string(res.stationarity_ratio));
      if (res.stationarity_ratio > 0.1 && opt_.gradient_source == GradientSource::kForget && grid.world_rank() == 0)
        log_warn("stationarity ratio " + std::to_string(res.stationarity_ratio) +
                 " > 0.1: θ is far from a stationary point; consider --gradient-source retain");
      step = whole(res.update);
      if (res.noise.size() > 0) {
        noise = whole(res.noise);
        step.axpy(-1.0, noise);
      }
      JsonObject cg;
      cg.add("status", to_string(res.cg.status)).add("iterations", res.cg.iterations)
          .add("residual_norm", res.cg.residual_norm).add("rhs_norm", res.cg.b_norm);
      std::vector<std::string> history;
      for (const auto& h : res.cg.history)
        history.push_back(JsonObject().add("iteration", h.iteration).add("relative_residual", h.relative_residual)
                              .add("curvature", h.curvature).add("seconds", h.seconds).str());
      cg.add_raw("history", json_array(history));
      rep.add_raw("cg", cg.str()).add("stationarity_ratio", res.stationarity_ratio)
          .add("stationarity_note", "∇L_D estimated on the forget set and the retain sample")
          .add("fisher_documents", static_cast<std::int64_t>(fisher ? fisher->size() : 0))
          .add("fisher_tokens", fisher ? fisher->total_tokens() : std::int64_t{0})
          .add("step_norm", res.step_norm).add("noise_norm", res.noise_norm)
          .add("noise_norm_inside_span_u", res.noise_inside).add("noise_norm_outside_span_u", res.noise_outside);
    }
    phases.add("solve_s", seconds_since(t));

    // Step policy: try eta = 1, 1/2, 1/4, ... (times --step-scale, already in the step) until the retain-sample
    // loss rises by at most the budget; each try is recorded. `none` takes the first.
    t = std::chrono::steady_clock::now();
    double eta = 1.0, retain_after = 0.0;
    std::vector<std::string> tries;
    for (int k = 0;; ++k) {
      ShardedVector update = step.clone();
      update.scale(eta);
      if (noise.size() > 0) update.axpy(1.0, noise);
      apply(model, subset, update, 1.0);
      retain_after = policy == StepPolicy::kNone ? 0.0 : sequence_loss(model, grid.dp(), retain_batches);
      const bool ok = policy == StepPolicy::kNone || retain_after <= retain_before * (1.0 + loss_budget_);
      if (policy == StepPolicy::kBacktrack) {
        tries.push_back(JsonObject().add("eta", eta).add("retain_loss", retain_after).add("accepted", ok).str());
        char line[160];
        std::snprintf(line, sizeof(line), "  backtrack: eta %.4g  retain-sample loss %.6f (budget %.6f)  %s", eta,
                      retain_after, retain_before * (1.0 + loss_budget_), ok ? "accepted" : "rejected");
        log_info0(line);
      }
      if (ok || k >= backtrack_max_) {
        if (!ok) log_info0("  backtrack: --backtrack-max reached; keeping the last try");
        if (total.size() == 0) total = update.zeros_like();
        total.axpy(1.0, update);
        break;
      }
      apply(model, subset, update, -1.0);
      eta *= 0.5;
    }
    phases.add("step_policy_s", seconds_since(t));

    t = std::chrono::steady_clock::now();
    retain_curv.reset();  // the solve is over: free the retain sample's graphs before evaluating
    const LossGradient after = loss_and_gradient(model, grid.dp(), subset, retain_batches);
    const double forget_after = sequence_loss(model, grid.dp(), forget_batches);
    phases.add("evaluate_s", seconds_since(t));
    log_info0("forget loss " + std::to_string(forget_before) + " -> " + std::to_string(forget_after) +
              ", retain-sample loss " + std::to_string(retain_before) + " -> " + std::to_string(after.loss) +
              (policy == StepPolicy::kBacktrack ? ", eta " + std::to_string(eta) : std::string()));
    rep.add("eta", eta).add_raw("step_policy_tries", json_array(tries))
        .add("forget_loss_before", forget_before).add("forget_loss_after", forget_after)
        .add("retain_loss_before", retain_before).add("retain_loss_after", after.loss)
        .add("retain_gradient_norm_before", retain_grad_before)
        .add("retain_gradient_norm_after", after.gradient.norm()).add_raw("phases", phases.str());
    return rep.str();
  }

  static void apply(TransformerModel& model, const std::vector<std::size_t>& subset, const ShardedVector& update,
                    double alpha) {
    c10::NoGradGuard no_grad;
    for (std::size_t j = 0; j < subset.size(); ++j) model.parameters()[subset[j]].value.add_(update[j], alpha);
  }

  /// Token-mean loss over DP, forward only.
  static double sequence_loss(const TransformerModel& model, Communicator& dp, const std::vector<Batch>& batches) {
    c10::NoGradGuard no_grad;
    double sum = 0;
    std::int64_t n = 0;
    for (const auto& b : batches) {
      if (b.tokens.numel() == 0) continue;
      sum += model.forward(b).loss_sum.item<double>();
      n += b.num_targets();
    }
    return dp.all_reduce_scalar(sum) / static_cast<double>(dp.all_reduce_scalar(n));
  }

  struct Stop {
    int signal = 0;
    int iteration = 0;
  };
  std::string in_, dataset_, out_, report_, forget_ids_, method_, curvature_, source_, params_, step_policy_,
      memory_limit_, state_dir_, fingerprint_, noise_form_, solver_sharding_, preconditioner_;
  std::vector<RequestSets> request_sets_;  // one per request, drawn in run() before the model is loaded
  bool forget_canaries_ = false, dry_run_ = false, resume_ = false, stop_used_ = false;
  int state_every_ = 0, stop_after_iteration_ = 0;
  std::optional<SolverStateId> resume_from_;
  std::optional<Stop> stopped_;
  int retain_sample_ = 64, rows_per_batch_ = 8, canary_requests_ = 1, backtrack_max_ = 8, ga_steps_ = 10;
  double loss_budget_ = 0.05, ga_lr_ = 1e-3;
  std::uint64_t seed_ = 1234;
  std::int64_t window_ = 0;
  NewtonOptions opt_;
  mutable std::optional<TokenDataset> dataset_cache_;  // read once, in validate()
  mutable std::vector<Request> requests_;               // dataset rows of each request, in order
};

}  // namespace

std::unique_ptr<Subcommand> make_forget_command() { return std::make_unique<ForgetCommand>(); }

}  // namespace unlearn
