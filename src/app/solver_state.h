// Solver-state checkpoints of `unlearn forget` (design 5; issue 6 item 4): CG's iterate, residual and search
// direction with the iteration count, in the checkpoint layout (global tensors, any rank writes its hyperslab,
// atomic commit), so a preempted job resumes and ends bit-identical to an uninterrupted one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "unlearn/comm/process_grid.h"
#include "unlearn/model/transformer.h"
#include "unlearn/solver/cg.h"

namespace unlearn {

struct SolverStateId {
  std::int64_t request = 0;  // 0-based
  std::int64_t iteration = 0;
};

/// `DIR/cg-r<request>-i<iteration>.h5`.
std::string solver_state_path(const std::string& dir, const SolverStateId& id);
/// The latest state in `dir` (highest request, then iteration); none when the directory has none.
std::optional<SolverStateId> latest_solver_state(const std::string& dir);

/// Writes the state of request `id.request` (collective). `fingerprint` names the options that decide the solve.
void save_solver_state(const std::string& dir, std::int64_t request, const CgState& state,
                       const TransformerModel& model, const ProcessGrid& grid, const std::vector<std::size_t>& subset,
                       const std::string& fingerprint);
/// Reads it into a state shaped like `like` (the right-hand side); AgreedError when the fingerprint differs.
CgState load_solver_state(const std::string& dir, const SolverStateId& id, const ShardedVector& like,
                          const TransformerModel& model, const ProcessGrid& grid,
                          const std::vector<std::size_t>& subset, const std::string& fingerprint);

}  // namespace unlearn
