// Conjugate gradients on a damped curvature operator (design 3.3), written like PETSc's KSPSolve_CG: every reduced
// scalar is checked finite, and since scalars are all-reduced every rank takes the same branch.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "unlearn/solver/linear_operator.h"

namespace unlearn {

enum class CgStatus {
  kConvergedRtol,
  kConvergedAtol,
  kNegativeCurvature,      // pᵀAp <= 0: the last iterate (or, at iteration 0, a step along b) is returned
  kTrustRegionBoundary,    // the iterate reached the trust radius (Steihaug-Toint)
  kMaxIterations,
  kDivergedNanOrInf,
  kInterrupted,            // after_iteration asked to stop (a signal); the state it saw continues the solve
};
std::string to_string(CgStatus status);

struct CgIteration {
  int iteration;
  double relative_residual;
  double curvature;  // pᵀAp / pᵀp
  double seconds;
};

/// Everything CG needs to continue exactly where it stopped (design 5: solver state), after `iteration` completed
/// iterations: the iterate, the residual, the next search direction and (r, M⁻¹r).
struct CgState {
  int iteration = 0;
  ShardedVector x, r, p;
  double rz = 0.0, residual_norm = 0.0;
  std::vector<CgIteration> history;
};

struct CgOptions {
  int max_iters = 50;
  double rtol = 1e-4;          // stop when ‖r‖ <= rtol ‖b‖
  double atol = 0.0;           // or when ‖r‖ <= atol
  double trust_radius = 0.0;   // 0: none
  const ShardedVector* inverse_diagonal = nullptr;  // Jacobi preconditioner M⁻¹ (entries of 1 / diag(A)); optional
  /// Continue from this state (same A and b) instead of x = 0: the result is bit-identical to an uninterrupted solve.
  const CgState* resume = nullptr;
  /// Called on every rank after each completed iteration that does not end the solve; returning true stops it
  /// with status kInterrupted (the callback saves the state first). The decision must be the same on every rank.
  std::function<bool(const CgState&)> after_iteration;
};


struct CgResult {
  CgStatus status = CgStatus::kMaxIterations;
  int iterations = 0;
  double residual_norm = 0.0;
  double b_norm = 0.0;
  std::vector<CgIteration> history;
};

/// Solves A x = b from x = 0 (or from options.resume). `monitor` is called once per iteration on every rank.
CgResult solve_cg(LinearOperator& A, const ShardedVector& b, ShardedVector& x, const CgOptions& options,
                  const std::function<void(const CgIteration&)>& monitor = {});

}  // namespace unlearn
