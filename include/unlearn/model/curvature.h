// The curvature API the solver uses: loss, gradient, exact Hessian-vector product (Pearlmutter double backward)
// and Gauss-Newton-vector product (double-backward R-op), on ShardedVectors over a parameter subset, summed over
// data-parallel replicas and divided once by the global target-token count (design sections 3.0, 3.1). model layer.
#pragma once

#include <memory>
#include <vector>

#include "unlearn/comm/dp_partition.h"
#include "unlearn/comm/sharded_vector.h"
#include "unlearn/model/transformer.h"

namespace unlearn {

enum class GraphMode {
  kReuse,      // keep the first backward's graph (and Jᵀu) across products: fast, more memory
  kRecompute,  // rebuild forward and first backward for every product: slow, forward-sized memory
};

/// What a product returns: the sum over DP replicas (every replica holds it), or this replica's own part, for a
/// DpPartition to reduce-scatter (design 3.4: the all-reduce's traffic, 1/DP of the result kept per rank).
enum class DpReduction { kAllReduce, kLocal };

class Curvature {
 public:
  /// `dp` sums over data-parallel replicas (size 1 without DP). `subset`: parameter indices (model.select()).
  Curvature(const TransformerModel& model, Communicator& dp, std::vector<std::size_t> subset,
            GraphMode mode = GraphMode::kReuse);
  ~Curvature();

  /// Forward and first backward on this rank's micro-batches. N, the global target count, is one DP all-reduce.
  /// Throws Error when there are no target tokens anywhere (empty set).
  void prepare(std::vector<Batch> batches);

  double loss() const { return loss_; }                  // global token-mean loss
  std::int64_t num_targets() const { return n_global_; }  // N
  const ShardedVector& gradient() const { return gradient_; }
  /// H v, H the exact Hessian of the token-mean loss.
  ShardedVector hvp(const ShardedVector& v, DpReduction reduction = DpReduction::kAllReduce);
  /// G v = Jᵀ H_out J v.
  ShardedVector gvp(const ShardedVector& v, DpReduction reduction = DpReduction::kAllReduce);
  const std::vector<std::size_t>& subset() const { return subset_; }
  /// Number of products computed since prepare(); for reports and benchmarks.
  int products() const { return products_; }

 private:
  struct MicroBatch;
  MicroBatch& graph(std::size_t i, bool need_jtu);
  void release(std::size_t i);
  ShardedVector reduce_over_dp(std::vector<at::Tensor> local, DpReduction reduction = DpReduction::kAllReduce);

  const TransformerModel& model_;
  Communicator& dp_;
  std::vector<std::size_t> subset_;
  GraphMode mode_;
  std::vector<Batch> batches_;
  std::vector<std::unique_ptr<MicroBatch>> graphs_;
  std::int64_t n_global_ = 0;
  double loss_ = 0.0;
  ShardedVector gradient_;
  int products_ = 0;
};

/// Gradients u_i of the per-document SUM loss (no division by a token count), one per document, each document a
/// Batch of its own; plus the documents' total target tokens N. Documents are computed by DP rank i % dp.size() and
/// broadcast over DP, so every replica holds every row (the Fisher store's layout); with a `partition` each rank
/// keeps only its DP chunk of every row (design 3.4). Empty documents are refused.
struct DocumentGradients {
  std::vector<ShardedVector> rows;
  std::int64_t total_tokens = 0;
};
DocumentGradients document_gradients(const TransformerModel& model, Communicator& dp,
                                     const std::vector<std::size_t>& subset, const std::vector<Batch>& documents,
                                     const DpPartition* partition = nullptr);

/// Σ_i u_i ⊙ u_i over `documents` (u_i the gradient of document i's SUM loss), summed over DP: N diag(F̂₀) without
/// keeping any row (the Jacobi preconditioner of a CG on the curvature). Document i is computed by DP rank i % dp.
ShardedVector squared_gradient_sum(const TransformerModel& model, Communicator& dp,
                                   const std::vector<std::size_t>& subset, const std::vector<Batch>& documents);

/// Token-mean loss and its gradient summed over DP, by a plain backward per micro-batch (no graph kept): training
/// steps and gradient norms. N is one DP all-reduce; throws Error when no rank has a target token.
struct LossGradient {
  double loss = 0.0;
  std::int64_t num_targets = 0;
  ShardedVector gradient;
};
LossGradient loss_and_gradient(const TransformerModel& model, Communicator& dp, const std::vector<std::size_t>& subset,
                               const std::vector<Batch>& batches);

}  // namespace unlearn
