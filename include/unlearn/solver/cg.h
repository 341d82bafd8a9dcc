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
};
std::string to_string(CgStatus status);

struct CgOptions {
  int max_iters = 50;
  double rtol = 1e-4;          // stop when ‖r‖ <= rtol ‖b‖
  double atol = 0.0;           // or when ‖r‖ <= atol
  double trust_radius = 0.0;   // 0: none
  const ShardedVector* inverse_diagonal = nullptr;  // Jacobi preconditioner M⁻¹ (entries of 1 / diag(A)); optional
};

struct CgIteration {
  int iteration;
  double relative_residual;
  double curvature;  // pᵀAp / pᵀp
  double seconds;
};

struct CgResult {
  CgStatus status = CgStatus::kMaxIterations;
  int iterations = 0;
  double residual_norm = 0.0;
  double b_norm = 0.0;
  std::vector<CgIteration> history;
};

/// Solves A x = b from x = 0. `monitor` is called once per iteration on every rank.
CgResult solve_cg(LinearOperator& A, const ShardedVector& b, ShardedVector& x, const CgOptions& options,
                  const std::function<void(const CgIteration&)>& monitor = {});

}  // namespace unlearn
