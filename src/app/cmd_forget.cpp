// `unlearn forget`: load a checkpoint, build the forget set and a retain sample from a token dataset, compute a
// Newton-type update (design 3.2), write the unlearned checkpoint atomically and an audit report (JSON, rank 0).
// Documents are named by id only: the report and the log never hold text (design 7).
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "unlearn/app/subcommands.h"
#include "unlearn/data/dataset.h"
#include "unlearn/eval/scoring.h"
#include "unlearn/io/checkpoint.h"
#include "unlearn/model/batching.h"
#include "unlearn/parse/units.h"
#include "unlearn/solver/newton.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

/// Per-tensor global norms, each replicated tensor counted once.
std::string tensor_norms_json(const ShardedVector& v) {
  JsonObject obj;
  for (std::size_t i = 0; i < v.size(); ++i) {
    double local = v.layout()[i].counted ? v[i].to(at::kDouble).pow(2).sum().item<double>() : 0.0;
    obj.add(v.layout()[i].name, std::sqrt(v.tp()->all_reduce_scalar(local)));
  }
  return obj.str();
}

class ForgetCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "forget"; }
  std::string_view summary() const override {
    return "remove a forget set from a checkpoint with a Newton-type update; writes a checkpoint and an audit report";
  }

  void add_options(po::options_description& desc, po::positional_options_description&) override {
    desc.add_options()
        ("checkpoint", po::value<std::string>(&in_)->required(), "input checkpoint (HDF5, any TP)")
        ("dataset", po::value<std::string>(&dataset_)->required(), "token dataset (unlearn prepare-data)")
        ("output", po::value<std::string>(&out_)->required(), "unlearned checkpoint; must not exist (written atomically)")
        ("report", po::value<std::string>(&report_), "audit report JSON (default: OUTPUT with .report.json)")
        ("forget-ids", po::value<std::string>(&forget_ids_), "comma-separated document ids to forget")
        ("forget-canaries", po::bool_switch(&forget_canaries_), "forget every training document holding a planted canary")
        ("retain-sample", po::value<int>(&retain_sample_)->default_value(64),
         "training documents outside the forget set used for the retain gradient and curvature")
        ("method", po::value<std::string>(&method_)->default_value("fisher-removal"),
         "newton-cg | fisher-removal | fisher-forgetting")
        ("curvature", po::value<std::string>(&curvature_)->default_value("ggn"), "newton-cg: hessian | ggn | fisher")
        ("damping", po::value<double>(&opt_.damping)->default_value(1e-3), "λ in A = C + λI")
        ("step-scale", po::value<double>(&opt_.step_scale)->default_value(1.0), "η")
        ("gradient-source", po::value<std::string>(&source_)->default_value("forget"),
         "forget: (n_f/n_r) Δ (needs a stationary θ); retain: -∇L_retain")
        ("cg-max-iters", po::value<int>(&opt_.cg.max_iters)->default_value(50), "CG iteration limit")
        ("cg-rtol", po::value<double>(&opt_.cg.rtol)->default_value(1e-4), "CG relative residual target")
        ("trust-radius", po::value<double>(&opt_.cg.trust_radius)->default_value(0.0), "CG trust radius (0: none)")
        ("fisher-by-cg", po::bool_switch(&opt_.fisher_by_cg), "fisher-*: CG on F̂₀ + λI instead of Woodbury")
        ("noise", po::value<double>(&opt_.noise_mu_sigma2)->default_value(0.0), "fisher-forgetting: μσ²")
        ("seed", po::value<std::uint64_t>(&seed_)->default_value(1234), "retain sampling and noise")
        ("params", po::value<std::string>(&params_)->default_value(""), "regex of the parameters to update (all)")
        ("rows-per-batch", po::value<int>(&rows_per_batch_)->default_value(8), "rows per micro-batch");
  }

  void validate(const po::variables_map&, const CommonOptions&, int) const override {
    parse_method(method_);
    parse_curvature(curvature_);
    parse_gradient_source(source_);
    if (forget_ids_.empty() && !forget_canaries_)
      throw ConfigError("no forget set: give --forget-ids or --forget-canaries");
    if (!forget_ids_.empty()) parse_int_list(forget_ids_, "--forget-ids");
    if (retain_sample_ < 1) throw ConfigError("--retain-sample must be at least 1");
    if (rows_per_batch_ < 1) throw ConfigError("--rows-per-batch must be at least 1");
    if (!(opt_.damping >= 0)) throw ConfigError("--damping must be >= 0");
    if (is_temporary_checkpoint_name(in_)) throw ConfigError("--checkpoint '" + in_ + "' is a temporary file name");
    // The dataset and the forget set are checked here, on every rank, before any communication: a wrong id is one
    // message, not one per rank. Ids only: document text is never printed.
    try {
      dataset_cache_ = read_dataset(dataset_);
    } catch (const IoError& e) {
      throw ConfigError(e.what());
    }
    const TokenDataset& ds = *dataset_cache_;
    forget_cache_.clear();
    if (!forget_ids_.empty()) {
      for (int id : parse_int_list(forget_ids_, "--forget-ids")) {
        const auto it = std::find(ds.doc_ids.begin(), ds.doc_ids.end(), id);
        if (it == ds.doc_ids.end()) UNLEARN_THROW(ConfigError, "--forget-ids: no document with id " << id);
        forget_cache_.insert(it - ds.doc_ids.begin());
      }
    }
    if (forget_canaries_) {
      if (ds.canaries.insertions.empty()) throw ConfigError("--forget-canaries: the dataset has no planted canaries");
      for (const auto& ins : ds.canaries.insertions) forget_cache_.insert(ins.document);
    }
  }

  int run(AppContext& ctx) override {
    const auto t_start = std::chrono::steady_clock::now();
    const ProcessGrid& grid = ctx.grid;
    opt_.method = parse_method(method_);
    opt_.gradient_source = parse_gradient_source(source_);
    opt_.seed = seed_;
    JsonObject phases;

    auto t = std::chrono::steady_clock::now();
    CheckpointInfo info;
    std::unique_ptr<TransformerModel> model = load_model(in_, grid, &info);
    const TokenDataset& ds = *dataset_cache_;
    if (ds.vocab_size > model->config().vocab_size)
      UNLEARN_THROW(ConfigError, "dataset vocabulary " << ds.vocab_size << " exceeds the model's "
                                                       << model->config().vocab_size);
    phases.add("load_s", seconds_since(t));
    log_info0("model: " + model->config().describe() + " from " + in_ + " (step " + std::to_string(info.step) + ")");
    const std::set<std::int64_t>& forget = forget_cache_;
    const std::int64_t window = model->config().max_positions;
    std::int64_t n_forget = 0, n_retain = 0;
    std::vector<std::int64_t> retain_pool;
    for (std::int64_t d = 0; d < ds.num_documents(); ++d) {
      const std::int64_t targets = document_targets(ds.document_tokens(d), window);
      if (forget.count(d)) {
        n_forget += targets;
      } else if (ds.doc_splits[static_cast<std::size_t>(d)] == static_cast<std::uint8_t>(Split::kTrain) && targets > 0) {
        n_retain += targets;  // the whole retain set's count, for the n_f / n_r scale
        retain_pool.push_back(d);
      }
    }
    if (n_forget == 0) throw ConfigError("the forget set holds no target tokens (empty documents?)");
    if (retain_pool.empty()) throw ConfigError("no training documents remain outside the forget set");
    std::mt19937_64 rng(seed_);
    std::shuffle(retain_pool.begin(), retain_pool.end(), rng);
    retain_pool.resize(std::min<std::size_t>(retain_pool.size(), static_cast<std::size_t>(retain_sample_)));
    std::sort(retain_pool.begin(), retain_pool.end());

    // DP rank r takes every DP-th document's rows.
    auto rows_for = [&](const std::vector<std::int64_t>& docs, bool mine_only) {
      std::vector<TokenRow> rows;
      for (std::size_t i = 0; i < docs.size(); ++i) {
        if (mine_only && static_cast<int>(i % static_cast<std::size_t>(grid.dp_size())) != grid.dp_rank()) continue;
        for (auto& r : document_windows(ds.document_tokens(docs[i]), window)) rows.push_back(std::move(r));
      }
      return rows;
    };
    // Canary exposure before and after (design 3.5): the paper's privacy metric, when the dataset has canaries.
    std::optional<ExposureSummary> exposure_before, exposure_after;
    if (!ds.canaries.empty()) {
      exposure_before = summarize_exposure(ds.canaries, canary_px(*model, grid, ds.canaries));
      log_info0("before: " + describe(*exposure_before));
    }
    const std::vector<std::int64_t> forget_docs(forget.begin(), forget.end());
    const auto subset = model->select(params_);

    t = std::chrono::steady_clock::now();
    Curvature forget_curv(*model, grid.dp(), subset);
    forget_curv.prepare(batches_of(rows_for(forget_docs, true), rows_per_batch_));
    Curvature retain_curv(*model, grid.dp(), subset);
    retain_curv.prepare(batches_of(rows_for(retain_pool, true), rows_per_batch_));
    phases.add("gradients_s", seconds_since(t));
    log_info0("forget set: " + std::to_string(forget_docs.size()) + " documents, n_f " + std::to_string(n_forget) +
              " tokens; retain set n_r " + std::to_string(n_retain) + " tokens, sample of " +
              std::to_string(retain_pool.size()) + " documents; forget loss " + std::to_string(forget_curv.loss()) +
              ", retain-sample loss " + std::to_string(retain_curv.loss()));

    UnlearnProblem pb;
    pb.forget_gradient = forget_curv.gradient().clone();
    pb.retain_gradient = retain_curv.gradient().clone();
    // ∇L_D estimated on forget ∪ retain sample, weighted by the set sizes.
    pb.full_gradient = pb.forget_gradient.clone();
    pb.full_gradient.scale(static_cast<double>(n_forget) / static_cast<double>(n_forget + n_retain));
    pb.full_gradient.axpy(static_cast<double>(n_retain) / static_cast<double>(n_forget + n_retain), pb.retain_gradient);
    pb.n_forget = n_forget;
    pb.n_retain = n_retain;
    for (std::size_t i : subset) {
      const Parameter& p = model->parameters()[i];
      pb.placement.push_back({p.global_shape, p.shard_dim, p.shard_start});
    }
    const CurvatureKind kind = parse_curvature(curvature_);
    std::unique_ptr<CurvatureOperator> curvature_op;
    std::unique_ptr<FisherStore> fisher;
    t = std::chrono::steady_clock::now();
    if (opt_.method != Method::kNewtonCg || kind == CurvatureKind::kFisher) {
      std::vector<Batch> docs;
      for (std::int64_t d : retain_pool)
        for (auto& b : batches_of(document_windows(ds.document_tokens(d), window), 1 << 20)) docs.push_back(b);
      DocumentGradients dg = document_gradients(*model, grid.dp(), subset, docs);
      fisher = std::make_unique<FisherStore>(std::move(dg.rows), dg.total_tokens);
      pb.fisher = fisher.get();
    } else {
      curvature_op = std::make_unique<CurvatureOperator>(retain_curv, kind);
      pb.curvature = curvature_op.get();
    }
    phases.add("curvature_setup_s", seconds_since(t));

    t = std::chrono::steady_clock::now();
    NewtonResult res = newton_update(pb, opt_, [](const CgIteration& it) {
      char line[160];
      std::snprintf(line, sizeof(line), "  cg %3d  rel. residual %.3e  curvature %.3e  %.1f s", it.iteration,
                    it.relative_residual, it.curvature, it.seconds);
      log_info0(line);
    });
    phases.add("solve_s", seconds_since(t));
    log_info0("update: " + to_string(opt_.method) + ", cg " + to_string(res.cg.status) + " after " +
              std::to_string(res.cg.iterations) + " iterations, ‖update‖ " + std::to_string(res.update_norm) +
              ", stationarity ratio " + std::to_string(res.stationarity_ratio));
    if (res.stationarity_ratio > 0.1 && opt_.gradient_source == GradientSource::kForget)
      log_warn("stationarity ratio " + std::to_string(res.stationarity_ratio) +
               " > 0.1: θ is far from a stationary point; consider --gradient-source retain");

    {
      at::NoGradGuard no_grad;
      for (std::size_t j = 0; j < subset.size(); ++j) model->parameters()[subset[j]].value.add_(res.update[j]);
    }
    t = std::chrono::steady_clock::now();
    Curvature after(*model, grid.dp(), subset);
    after.prepare(batches_of(rows_for(retain_pool, true), rows_per_batch_));
    Curvature forget_after(*model, grid.dp(), subset);
    forget_after.prepare(batches_of(rows_for(forget_docs, true), rows_per_batch_));
    if (exposure_before) {
      exposure_after = summarize_exposure(ds.canaries, canary_px(*model, grid, ds.canaries));
      log_info0("after:  " + describe(*exposure_after));
    }
    phases.add("evaluate_s", seconds_since(t));

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

    JsonObject cg;
    cg.add("status", to_string(res.cg.status)).add("iterations", res.cg.iterations)
        .add("residual_norm", res.cg.residual_norm).add("rhs_norm", res.cg.b_norm);
    std::string history = "[";
    for (std::size_t i = 0; i < res.cg.history.size(); ++i) {
      const auto& h = res.cg.history[i];
      history += (i ? ", " : "") + JsonObject().add("iteration", h.iteration).add("relative_residual", h.relative_residual)
                                       .add("curvature", h.curvature).add("seconds", h.seconds).str();
    }
    cg.add_raw("history", history + "]");
    std::string ids = "[";
    for (std::size_t i = 0; i < forget_docs.size(); ++i)
      ids += (i ? ", " : "") + std::to_string(ds.doc_ids[static_cast<std::size_t>(forget_docs[i])]);
    ids += "]";
    const std::string norms = tensor_norms_json(res.update);
    JsonObject report;
    report.add("command", "forget").add_raw("config", ctx.config_json).add("method", to_string(opt_.method))
        .add("curvature", opt_.method == Method::kNewtonCg ? to_string(kind) : std::string("fisher"))
        .add("damping", opt_.damping).add("step_scale", opt_.step_scale)
        .add("gradient_source", source_).add("n_forget", n_forget).add("n_retain", n_retain)
        .add("scale_nf_over_nr", static_cast<double>(n_forget) / static_cast<double>(n_retain))
        .add("fisher_documents", static_cast<std::int64_t>(fisher ? fisher->size() : 0))
        .add("fisher_tokens", fisher ? fisher->total_tokens() : std::int64_t{0})
        .add("stationarity_ratio", res.stationarity_ratio)
        .add("stationarity_note", "∇L_D estimated on the forget set and the retain sample")
        .add_raw("cg", cg.str()).add("update_norm", res.update_norm).add("step_norm", res.step_norm)
        .add_raw("update_norm_per_tensor", norms)
        .add("noise_norm", res.noise_norm).add("noise_norm_inside_span_u", res.noise_inside)
        .add("noise_norm_outside_span_u", res.noise_outside)
        .add("forget_loss_before", forget_curv.loss()).add("forget_loss_after", forget_after.loss())
        .add("retain_loss_before", retain_curv.loss()).add("retain_loss_after", after.loss())
        .add("retain_gradient_norm_before", retain_curv.gradient().norm())
        .add("retain_gradient_norm_after", after.gradient().norm())
        .add_raw("forget_document_ids", ids).add("retain_sample_documents", static_cast<std::int64_t>(retain_pool.size()))
        .add_raw("phases", phases.str()).add("input_checkpoint", in_).add("input_digest", info.content_digest)
        .add("output_checkpoint", out_).add("output_digest", out_info.content_digest)
        .add("world_size", grid.world_size()).add("tp", grid.tp_size()).add("dp", grid.dp_size());
    if (exposure_before)
      report.add_raw("exposure_before", to_json(*exposure_before)).add_raw("exposure_after", to_json(*exposure_after));
    if (grid.world_rank() == 0) {
      const std::string path = report_.empty() ? out_ + ".report.json" : report_;
      std::ofstream f(path);
      f << report.str() << '\n';
      if (!f) UNLEARN_THROW(IoError, "cannot write the report '" << path << "'");
      log_info0("forget loss " + std::to_string(forget_curv.loss()) + " -> " + std::to_string(forget_after.loss()) +
                ", retain-sample loss " + std::to_string(retain_curv.loss()) + " -> " + std::to_string(after.loss()));
      log_info0("wrote " + out_ + " and " + path);
    }
    ctx.metrics.write(JsonObject().add("event", "forget").add_raw("report", report.str()));
    return 0;
  }

 private:
  std::string in_, dataset_, out_, report_, forget_ids_, method_, curvature_, source_, params_;
  bool forget_canaries_ = false;
  int retain_sample_ = 64, rows_per_batch_ = 8;
  std::uint64_t seed_ = 1234;
  NewtonOptions opt_;
  mutable std::optional<TokenDataset> dataset_cache_;  // read once, in validate()
  mutable std::set<std::int64_t> forget_cache_;         // dataset rows of the forget set
};

}  // namespace

std::unique_ptr<Subcommand> make_forget_command() { return std::make_unique<ForgetCommand>(); }

}  // namespace unlearn
