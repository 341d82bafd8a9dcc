#include "unlearn/train/trainer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <regex>
#include <sstream>

#include "unlearn/data/rng.h"
#include "unlearn/io/checkpoint.h"
#include "unlearn/model/curvature.h"
#include "unlearn/util/error.h"
#include "unlearn/util/log.h"

namespace unlearn {

namespace {
constexpr const char* kOptimizerFormat = "unlearn-optimizer-state";
constexpr std::uint64_t kEpochStream = 0x65706f6368ull;  // "epoch": separates the data order from other seed uses
}  // namespace

void TrainOptions::validate(int dp) const {
  if (steps < 1) throw ConfigError("--steps must be at least 1");
  if (batch_rows < dp)
    UNLEARN_THROW(ConfigError, "--batch-rows " << batch_rows << " is smaller than the data-parallel size " << dp
                                               << ": every replica needs at least one row per step");
  if (micro_batch_rows < 1) throw ConfigError("--micro-batch-rows must be at least 1");
  if (!(lr > 0) || !std::isfinite(lr)) throw ConfigError("--lr must be positive");
  if (!(min_lr_ratio >= 0 && min_lr_ratio <= 1)) throw ConfigError("--min-lr-ratio must be in [0, 1]");
  if (warmup_steps < 0) throw ConfigError("--warmup-steps must be >= 0");
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) throw ConfigError("--beta1/--beta2 must be in [0, 1)");
  if (!(eps > 0)) throw ConfigError("--adam-eps must be positive");
  if (!(weight_decay >= 0)) throw ConfigError("--weight-decay must be >= 0");
  if (!(wd_off_fraction >= 0 && wd_off_fraction <= 1)) throw ConfigError("--wd-off-fraction must be in [0, 1]");
  if (!(grad_clip >= 0)) throw ConfigError("--grad-clip must be >= 0 (0 disables clipping)");
}

std::string TrainOptions::fingerprint() const {
  std::ostringstream s;
  s.precision(17);
  s << "steps=" << steps << " batch_rows=" << batch_rows << " lr=" << lr << " min_lr_ratio=" << min_lr_ratio
    << " warmup=" << warmup_steps << " betas=" << beta1 << "," << beta2 << " eps=" << eps << " wd=" << weight_decay
    << " wd_off=" << wd_off_fraction << " clip=" << grad_clip << " seed=" << seed;
  return s.str();
}

double learning_rate(const TrainOptions& o, std::int64_t step) {
  if (step < o.warmup_steps) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  const double span = static_cast<double>(std::max<std::int64_t>(1, o.steps - o.warmup_steps));
  const double p = std::min(1.0, static_cast<double>(step - o.warmup_steps) / span);
  return o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * 0.5 * (1.0 + std::cos(M_PI * p)));
}

double weight_decay_at(const TrainOptions& o, std::int64_t step) {
  const double off_from = static_cast<double>(o.steps) * (1.0 - o.wd_off_fraction);
  return static_cast<double>(step) >= off_from ? 0.0 : o.weight_decay;
}

// ---------------------------------------------------------------------------------------------------------------

BatchStream::BatchStream(std::vector<TokenRow> windows, std::int64_t row_inputs, std::int64_t batch_rows,
                         std::uint64_t seed)
    : windows_(std::move(windows)), row_inputs_(row_inputs), batch_rows_(batch_rows), seed_(seed) {
  if (windows_.empty()) throw ConfigError("training set: no document has a target token");
}

void BatchStream::extend_to(std::int64_t row_count) {
  while (static_cast<std::int64_t>(rows_.size()) < row_count) {
    const auto epoch = static_cast<std::uint64_t>(epoch_starts_.size());
    std::vector<std::size_t> order(windows_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    DataRng(seed_ + epoch, kEpochStream).shuffle(order);
    std::vector<std::int64_t> inputs;
    inputs.reserve(order.size());
    for (std::size_t i : order) inputs.push_back(static_cast<std::int64_t>(windows_[i].size()) - 1);
    epoch_starts_.push_back(static_cast<std::int64_t>(rows_.size()));
    // Rows hold window indices, not tokens: many epochs cost a few bytes per window each.
    for (auto& row : pack_in_order(inputs, row_inputs_)) {
      for (auto& i : row) i = order[i];
      rows_.push_back(std::move(row));
    }
  }
}

std::vector<PackedRow> BatchStream::rows(std::int64_t step) {
  const std::int64_t first = step * batch_rows_;
  extend_to(first + batch_rows_);
  std::vector<PackedRow> out;
  for (std::int64_t r = first; r < first + batch_rows_; ++r) {
    out.emplace_back();
    for (std::size_t i : rows_[static_cast<std::size_t>(r)]) out.back().push_back(windows_[i]);
  }
  return out;
}

double BatchStream::epoch_at(std::int64_t step) {
  const std::int64_t row = step * batch_rows_;
  extend_to(row + 1);
  std::size_t e = epoch_starts_.size() - 1;
  while (e > 0 && epoch_starts_[e] > row) --e;
  const std::int64_t end = e + 1 < epoch_starts_.size() ? epoch_starts_[e + 1] : static_cast<std::int64_t>(rows_.size());
  return static_cast<double>(e) +
         static_cast<double>(row - epoch_starts_[e]) / static_cast<double>(std::max<std::int64_t>(1, end - epoch_starts_[e]));
}

// ---------------------------------------------------------------------------------------------------------------

AdamW::AdamW(const TransformerModel& model) {
  for (const Parameter& p : model.parameters()) {
    m_.push_back(at::zeros_like(p.value).detach());
    v_.push_back(at::zeros_like(p.value).detach());
    decay_.push_back(p.global_shape.size() >= 2);  // matrices and embeddings; not biases or norm gains
  }
}

void AdamW::step(TransformerModel& model, const ShardedVector& grad, const TrainOptions& o, double lr, double wd,
                 std::int64_t t) {
  UNLEARN_CHECK(grad.size() == m_.size(), "AdamW: gradient has " << grad.size() << " entries, expected " << m_.size());
  c10::NoGradGuard no_grad;
  const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(t));
  for (std::size_t i = 0; i < m_.size(); ++i) {
    at::Tensor p = model.parameters()[i].value;
    m_[i].mul_(o.beta1).add_(grad[i], 1.0 - o.beta1);
    v_[i].mul_(o.beta2).addcmul_(grad[i], grad[i], 1.0 - o.beta2);
    if (decay_[i] && wd > 0) p.mul_(1.0 - lr * wd);
    const at::Tensor denom = (v_[i] / bc2).sqrt_().add_(o.eps);
    p.addcdiv_(m_[i], denom, -lr / bc1);
  }
}

// ---------------------------------------------------------------------------------------------------------------

std::string optimizer_file_name(std::int64_t step) {
  std::string name = checkpoint_file_name(step);
  return name.substr(0, name.size() - 3) + ".optim.h5";
}

std::int64_t latest_complete_checkpoint(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  static const std::regex pattern(R"(step-(\d{8})\.h5)");
  std::int64_t best = 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (!std::regex_match(name, m, pattern)) continue;
    const std::int64_t step = std::stoll(m[1].str());
    if (step > best && fs::exists(fs::path(dir) / optimizer_file_name(step), ec)) best = step;
  }
  return best;
}

void discard_uncommitted_training_state(const std::string& dir, std::int64_t step, const ProcessGrid& grid) {
  namespace fs = std::filesystem;
  if (grid.world_rank() == 0) {
    std::error_code ec;
    static const std::regex pattern(R"(step-(\d{8})\.optim\.h5)");
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      std::smatch m;
      const std::string name = e.path().filename().string();
      if (!std::regex_match(name, m, pattern)) continue;
      const std::int64_t s = std::stoll(m[1].str());
      if (s <= step || fs::exists(fs::path(dir) / checkpoint_file_name(s), ec)) continue;
      // The pair commits when the model file is renamed (written second); this one's model never arrived.
      if (!fs::remove(e.path(), ec) || ec)
        UNLEARN_THROW(IoError, "cannot remove the uncommitted optimizer state '" << e.path().string() << "'");
      log_warn("removed " + e.path().string() + ": an interrupted run committed it without its model file");
    }
  }
  grid.world().barrier();
}

void save_training_state(const TrainCheckpointing& ck, const TransformerModel& model, AdamW& adam,
                         const ProcessGrid& grid, const TrainOptions& o, std::int64_t step) {
  const std::string base = ck.dir + "/";
  std::vector<TensorBlock> blocks = parameter_blocks(model, grid, adam.exp_avg(), "exp_avg.");
  for (auto& b : parameter_blocks(model, grid, adam.exp_avg_sq(), "exp_avg_sq.")) blocks.push_back(std::move(b));
  Attributes attrs;
  attrs["format"] = std::string(kOptimizerFormat);
  attrs["step"] = step;
  attrs["train.fingerprint"] = o.fingerprint();
  write_tensor_file(base + optimizer_file_name(step), grid.world(), attrs, blocks);
  SaveOptions save;
  save.step = step;
  save.tokenizer = ck.tokenizer;
  save.seed = o.seed;
  save.provenance = ck.provenance;
  save_checkpoint(base + checkpoint_file_name(step), model, grid, save);
}

void load_training_state(const std::string& dir, std::int64_t step, TransformerModel& model, AdamW& adam,
                         const ProcessGrid& grid, const TrainOptions& o) {
  const std::string optim = dir + "/" + optimizer_file_name(step);
  const FileInfo info = read_file_info(optim, grid.world());
  auto attr = [&](const char* key) {
    const auto it = info.attributes.find(key);
    if (it == info.attributes.end()) UNLEARN_THROW(IoError, "'" << optim << "' lacks the attribute '" << key << "'");
    return attribute_to_string(it->second);
  };
  if (attr("format") != kOptimizerFormat) UNLEARN_THROW(IoError, "'" << optim << "' is not an optimizer state file");
  if (attr("train.fingerprint") != o.fingerprint())
    UNLEARN_THROW(AgreedError, "cannot resume from '" << optim << "': it was written with the training options\n  "
                                                      << attr("train.fingerprint") << "\nthis run has\n  "
                                                      << o.fingerprint());
  std::vector<TensorBlock> blocks = parameter_blocks(model, grid, adam.exp_avg(), "exp_avg.");
  for (auto& b : parameter_blocks(model, grid, adam.exp_avg_sq(), "exp_avg_sq.")) blocks.push_back(std::move(b));
  read_tensor_blocks(optim, grid.world(), blocks, /*verify_digest=*/true);
  const CheckpointInfo model_info = load_checkpoint(dir + "/" + checkpoint_file_name(step), model, grid);
  if (model_info.step != step)
    UNLEARN_THROW(IoError, "'" << dir << "/" << checkpoint_file_name(step) << "' records step " << model_info.step);
}

void train(TransformerModel& model, const ProcessGrid& grid, BatchStream& stream, const TrainOptions& o, AdamW& adam,
           std::int64_t first_step, std::int64_t end_step, const TrainCheckpointing& ck, const std::function<void(const StepStats&)>& on_step) {
  std::vector<std::size_t> all(model.parameters().size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  for (std::int64_t step = first_step; step < std::min(end_step, o.steps); ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<PackedRow> rows = stream.rows(step);
    // DP replica r takes rows r, r + dp, ...; its micro-batches bound activation memory.
    std::vector<PackedRow> mine;
    for (std::size_t i = static_cast<std::size_t>(grid.dp_rank()); i < rows.size();
         i += static_cast<std::size_t>(grid.dp_size()))
      mine.push_back(rows[i]);
    std::vector<Batch> batches;
    for (std::size_t b = 0; b < mine.size(); b += static_cast<std::size_t>(o.micro_batch_rows)) {
      const std::size_t e = std::min(mine.size(), b + static_cast<std::size_t>(o.micro_batch_rows));
      batches.push_back(make_batch({mine.begin() + static_cast<std::ptrdiff_t>(b),
                                    mine.begin() + static_cast<std::ptrdiff_t>(e)}));
    }
    LossGradient lg = loss_and_gradient(model, grid.dp(), all, batches);
    const double norm = lg.gradient.norm();
    if (!std::isfinite(lg.loss) || !std::isfinite(norm))
      UNLEARN_THROW(Error, "training step " << step + 1 << ": non-finite " << (std::isfinite(lg.loss) ? "gradient" : "loss")
                                            << " (loss " << lg.loss << ", gradient norm " << norm
                                            << "); lower --lr or raise --warmup-steps");
    if (o.grad_clip > 0 && norm > o.grad_clip) lg.gradient.scale(o.grad_clip / norm);
    const double lr = learning_rate(o, step), wd = weight_decay_at(o, step);
    adam.step(model, lg.gradient, o, lr, wd, step + 1);

    StepStats s;
    s.step = step + 1;
    s.loss = lg.loss;
    s.grad_norm = norm;
    s.lr = lr;
    s.wd = wd;
    s.epoch = stream.epoch_at(step + 1);
    s.tokens = lg.num_targets;
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (on_step) on_step(s);
    if (!ck.dir.empty() && ck.every > 0 && (step + 1) % ck.every == 0)
      save_training_state(ck, model, adam, grid, o, step + 1);
  }
}

}  // namespace unlearn
