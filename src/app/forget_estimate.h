// Memory and time per rank of an `unlearn forget` run, from the model config and the rank layout only (design 3.4:
// `--dry-run` answers before anything is loaded, and a run that cannot fit is refused before loading).
#pragma once

#include <cstdint>
#include <string>

#include "unlearn/comm/process_grid.h"
#include "unlearn/model/config.h"
#include "unlearn/solver/linear_operator.h"
#include "unlearn/solver/newton.h"

namespace unlearn {

struct ForgetShape {
  Method method = Method::kFisherRemoval;
  CurvatureKind curvature = CurvatureKind::kGgn;
  std::string params_regex;
  std::int64_t retain_documents = 0;  // m: Fisher rows
  std::int64_t retain_tokens = 0;     // upper bound of the retain sample's target tokens
  int cg_iterations = 50;
  std::int64_t rows_per_batch = 8;    // rows of max_positions per micro-batch
  int dp_chunks = 1;                  // DP when solver vectors and Fisher rows are split over DP (design 3.4)
  bool preconditioner = false;        // Newton-CG keeps M⁻¹ (--preconditioner diagonal): one more vector
};

struct ForgetEstimate {
  std::int64_t params_local = 0, subset_local = 0;  // elements on this rank
  std::int64_t weights_bytes = 0, vectors_bytes = 0, fisher_bytes = 0, graph_bytes = 0, transient_bytes = 0;
  std::int64_t total_bytes = 0;  // the terms plus the runtime's fixed footprint
  int vectors = 0;          // whole vectors of the subset's size (this rank's TP shards)
  int chunked_vectors = 0;  // vectors of which this rank keeps a DP chunk (1 / dp_chunks of the subset)
  double matmul_gflops = 0;                         // measured on this rank, now
  double product_s = 0, setup_s = 0, solve_s = 0;   // per curvature product, graph setup, whole solve
};

/// Builds the model's parameter shapes on the meta device (no memory), counts this rank's elements, and measures
/// this rank's matrix-product rate for the time estimate. Collective over the grid (the TP group is split).
ForgetEstimate estimate_forget(const ModelConfig& config, const ProcessGrid& grid, const ForgetShape& shape);

/// MemAvailable of this node divided by the ranks on it, the minimum over all ranks; 0 when unknown. Collective.
std::int64_t available_memory_per_rank(const ProcessGrid& grid);

/// Multi-line text for the log (rank 0's numbers; the largest rank's memory) and the report's JSON.
std::string describe(const ForgetEstimate& e, const ProcessGrid& grid);
std::string to_json(const ForgetEstimate& e);

}  // namespace unlearn
