// Tensor-parallel GPT-2 and LLaMA decoders (design section 4): parameters as local shards of global [out, in]
// tensors, a forward pass that returns the local vocabulary shard of the target rows' logits, and the loss.
// model layer.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "unlearn/comm/communicator.h"
#include "unlearn/comm/sharded_vector.h"
#include "unlearn/model/config.h"

namespace unlearn {

/// A batch of token rows. Documents never attend across borders: a query at t sees key s iff s <= t and
/// segments[b, s] == segments[b, t]. `positions` is each token's position inside its own document.
struct Batch {
  at::Tensor tokens;     // [B, T] int64
  at::Tensor targets;    // [B, T] int64 next-token ids; -1: not a target
  at::Tensor segments;   // [B, T] int64 document index within the row; < 0: a prefix shared by every later position
  at::Tensor positions;  // [B, T] int64
  std::int64_t num_targets() const;
  /// Shapes, dtypes and ranges; throws ConfigError naming the problem.
  void validate(const ModelConfig& cfg) const;
};

/// One parameter: this rank's shard of a global tensor.
struct Parameter {
  std::string name;
  at::Tensor value;                       // local shard; requires_grad
  std::vector<std::int64_t> global_shape;
  int shard_dim = -1;                     // -1: the whole tensor is held (replicated on its group)
  std::int64_t shard_start = 0;           // offset of the local shard along shard_dim
  ShardLayout layout;                     // replicated / counted flags for ShardedVector
};

struct InitOptions {
  double weight_std = 0.02;  // normal weights
  double bias_std = 0.0;     // biases (0: zeros)
  double norm_std = 0.0;     // norm gains are 1 + norm_std * N(0, 1)
};

/// What the forward pass returns for the loss and the curvature products.
struct ForwardResult {
  at::Tensor logits;    // [n_targets, V_local]: local vocabulary shard, target rows only
  at::Tensor targets;   // [n_targets] global ids
  at::Tensor loss_sum;  // scalar: sum of cross-entropies over the rows (identical on every TP rank)
};

class TransformerModel {
 public:
  /// `tp` must outlive the model (autograd graphs refer to it). Validates the config against tp.size().
  TransformerModel(const ModelConfig& config, Communicator& tp);
  ~TransformerModel();
  TransformerModel(const TransformerModel&) = delete;
  TransformerModel& operator=(const TransformerModel&) = delete;

  const ModelConfig& config() const { return config_; }
  std::vector<Parameter>& parameters() { return params_; }
  const std::vector<Parameter>& parameters() const { return params_; }
  const Parameter& parameter(const std::string& name) const;
  Communicator& tp() const { return tp_; }
  Range vocab_range() const { return vocab_; }

  /// Deterministic initialisation: each global tensor comes from (seed, name), then this rank keeps its slice,
  /// so every TP layout holds the same global model.
  void init_random(std::uint64_t seed, const InitOptions& options = {});
  /// This rank's slice of a global tensor for `p` (shape-checked).
  at::Tensor local_slice(const Parameter& p, const at::Tensor& global) const;
  /// Sets a parameter from its global value.
  void set_global(const std::string& name, const at::Tensor& global);

  ForwardResult forward(const Batch& batch) const;

  /// Vector of parameter shards (detached values or zeros) with the parameters' layout, optionally a subset.
  ShardedVector values(const std::vector<std::size_t>& subset) const;
  ShardedVector zeros(const std::vector<std::size_t>& subset) const;
  /// Indices of parameters whose name matches `regex` (std::regex_search; empty: all). Throws ConfigError when
  /// nothing matches or the pattern is invalid.
  std::vector<std::size_t> select(const std::string& regex) const;
  std::int64_t global_numel() const;

 private:
  struct Impl;
  void add_param(const std::string& name, std::vector<std::int64_t> global_shape, int shard_dim, Range range,
                 bool replicated, bool counted);

  ModelConfig config_;
  Communicator& tp_;
  Range vocab_;
  std::vector<Parameter> params_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace unlearn
