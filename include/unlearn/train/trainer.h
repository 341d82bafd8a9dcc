// Training under TP x DP (issue 5): the data stream of packed, document-masked rows; the learning-rate and
// weight-decay schedules; AdamW on parameter shards; atomic periodic checkpoints of model and optimizer state, and
// resume that reproduces an uninterrupted run bit for bit. train layer: depends on model, io and data.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "unlearn/comm/process_grid.h"
#include "unlearn/model/batching.h"
#include "unlearn/model/transformer.h"

namespace unlearn {

struct TrainOptions {
  std::int64_t steps = 1000;
  std::int64_t batch_rows = 16;       // global rows per optimizer step (all DP replicas together)
  std::int64_t micro_batch_rows = 8;  // rows per forward/backward on one rank (memory bound)
  double lr = 1e-3;
  double min_lr_ratio = 0.1;          // cosine decays to lr * min_lr_ratio
  std::int64_t warmup_steps = 50;     // linear warm-up from lr / warmup_steps
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;          // decoupled, on matrices only (not biases or norm gains)
  double wd_off_fraction = 0.2;       // final fraction of the steps without weight decay (design 3.0: end near a
                                      // stationary point of the unregularised loss)
  double grad_clip = 1.0;             // global gradient norm limit; 0 disables
  std::uint64_t seed = 1234;          // data order

  /// ConfigError naming the first bad value; `dp` is the data-parallel size.
  void validate(int dp) const;
  /// The options that decide the trajectory, as one string: a resumed run must have the same.
  std::string fingerprint() const;
};

/// Learning rate and weight decay of optimizer step `step` (0-based).
double learning_rate(const TrainOptions& o, std::int64_t step);
double weight_decay_at(const TrainOptions& o, std::int64_t step);

/// The training rows of every step: each epoch shuffles the windows (seed, epoch) and packs them into rows of
/// `row_inputs` inputs; step s takes rows [s B, (s + 1) B) of the epochs laid end to end. A pure function of its
/// inputs, so a resumed run sees exactly the rows an uninterrupted one would.
class BatchStream {
 public:
  BatchStream(std::vector<TokenRow> windows, std::int64_t row_inputs, std::int64_t batch_rows, std::uint64_t seed);
  std::vector<PackedRow> rows(std::int64_t step);
  /// Epochs completed before step `step` plus the fraction of the current one.
  double epoch_at(std::int64_t step);
  std::int64_t windows() const { return static_cast<std::int64_t>(windows_.size()); }

 private:
  void extend_to(std::int64_t row_count);
  std::vector<TokenRow> windows_;
  std::int64_t row_inputs_, batch_rows_;
  std::uint64_t seed_;
  std::vector<std::vector<std::size_t>> rows_;  // window indices; epochs 0 .. epoch_starts_.size() - 1, end to end
  std::vector<std::int64_t> epoch_starts_;  // first row of each epoch
};

/// AdamW (Loshchilov and Hutter) with bias correction on this rank's parameter shards. Replicated shards see
/// identical gradients on every TP rank and so stay identical.
class AdamW {
 public:
  explicit AdamW(const TransformerModel& model);
  /// One step: `t` is the 1-based step count (bias correction).
  void step(TransformerModel& model, const ShardedVector& grad, const TrainOptions& o, double lr, double wd,
            std::int64_t t);
  std::vector<at::Tensor>& exp_avg() { return m_; }
  std::vector<at::Tensor>& exp_avg_sq() { return v_; }

 private:
  std::vector<at::Tensor> m_, v_;
  std::vector<bool> decay_;
};

struct StepStats {
  std::int64_t step = 0;  // 1-based: steps completed
  double loss = 0.0, grad_norm = 0.0, lr = 0.0, wd = 0.0, epoch = 0.0;
  std::int64_t tokens = 0;  // global target tokens of the step
  double seconds = 0.0;     // of this step
};

/// Where checkpoints go and what they record.
struct TrainCheckpointing {
  std::string dir;             // step-N.h5 (model) and step-N.optim.h5 (AdamW state); empty: none
  std::int64_t every = 0;      // steps between checkpoints; 0: none
  std::string tokenizer;       // tokenizer identity recorded in the checkpoints
  std::map<std::string, std::string> provenance;
};

/// Name of the optimizer-state file that goes with `step-N.h5`.
std::string optimizer_file_name(std::int64_t step);

/// The latest step S in `dir` with both step-S.h5 and step-S.optim.h5; 0 when there is none.
std::int64_t latest_complete_checkpoint(const std::string& dir);

/// Removes every step-S.optim.h5 with S > `step` that has no step-S.h5: the pair commits when its model file (written
/// second) is renamed, so such a file is what a run killed between the two commits left. Collective; rank 0 removes.
void discard_uncommitted_training_state(const std::string& dir, std::int64_t step, const ProcessGrid& grid);

/// Saves the model and optimizer state of `step` into `ck.dir`: each file is committed atomically, the optimizer
/// file first, so the model file's rename commits the pair.
void save_training_state(const TrainCheckpointing& ck, const TransformerModel& model, AdamW& adam,
                         const ProcessGrid& grid, const TrainOptions& o, std::int64_t step);

/// Loads step `step` from `dir` into `model` and `adam`; AgreedError (every rank reads the same attribute) when its
/// options fingerprint differs from `o`'s.
void load_training_state(const std::string& dir, std::int64_t step, TransformerModel& model, AdamW& adam,
                         const ProcessGrid& grid, const TrainOptions& o);

/// Runs steps [first_step, end_step). `on_step` sees every step's statistics (logging, metrics). Checkpoints
/// every `ck.every` steps. Throws Error on a non-finite loss or gradient (naming the step).
void train(TransformerModel& model, const ProcessGrid& grid, BatchStream& stream, const TrainOptions& o, AdamW& adam,
           std::int64_t first_step, std::int64_t end_step, const TrainCheckpointing& ck, const std::function<void(const StepStats&)>& on_step);

}  // namespace unlearn
