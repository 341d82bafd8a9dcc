// Conjugate gradients with Steihaug-Toint handling of negative curvature and the trust radius.
#include "unlearn/solver/cg.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>

#include "unlearn/util/error.h"

namespace unlearn {

std::string to_string(CgStatus status) {
  switch (status) {
    case CgStatus::kConvergedRtol: return "converged_rtol";
    case CgStatus::kConvergedAtol: return "converged_atol";
    case CgStatus::kNegativeCurvature: return "negative_curvature";
    case CgStatus::kTrustRegionBoundary: return "trust_region_boundary";
    case CgStatus::kMaxIterations: return "max_iterations";
    case CgStatus::kDivergedNanOrInf: return "diverged_nan_or_inf";
    case CgStatus::kInterrupted: return "interrupted";
  }
  return "?";
}

namespace {

bool finite(double v) { return std::isfinite(v); }

/// z <- M⁻¹ r (a copy of r without a preconditioner).
ShardedVector precondition(const CgOptions& opt, const ShardedVector& r) {
  ShardedVector z = r.clone();
  if (opt.inverse_diagonal)
    for (std::size_t i = 0; i < z.size(); ++i) z[i].mul_((*opt.inverse_diagonal)[i]);
  return z;
}

/// τ >= 0 with ‖x + τ p‖ = R.
double boundary_step(const ShardedVector& x, const ShardedVector& p, double radius) {
  const double pp = p.dot(p), xp = x.dot(p), xx = x.dot(x);
  return (-xp + std::sqrt(xp * xp + pp * (radius * radius - xx))) / pp;
}

}  // namespace

CgResult solve_cg(LinearOperator& A, const ShardedVector& b, ShardedVector& x, const CgOptions& opt,
                  const std::function<void(const CgIteration&)>& monitor) {
  const auto start = std::chrono::steady_clock::now();
  CgResult res;
  x = b.zeros_like();
  res.b_norm = b.norm();
  if (!finite(res.b_norm)) {
    res.status = CgStatus::kDivergedNanOrInf;
    return res;
  }
  if (res.b_norm == 0.0) {
    res.status = CgStatus::kConvergedAtol;
    return res;
  }
  ShardedVector r = b.clone();                 // r <- b - A x, x = 0
  ShardedVector z = precondition(opt, r);      // z <- M⁻¹ r
  ShardedVector p = z.clone();                 // p <- z
  ShardedVector Ap = b.zeros_like();
  double rz = r.dot(z);
  res.residual_norm = res.b_norm;
  const double target = std::max(opt.rtol * res.b_norm, opt.atol);
  int first = 0;
  if (opt.resume) {
    const CgState& st = *opt.resume;
    x.copy_from(st.x);
    r.copy_from(st.r);
    p.copy_from(st.p);
    rz = st.rz;
    res.residual_norm = st.residual_norm;
    res.history = st.history;
    res.iterations = first = st.iteration;
  }

  for (int k = first; k < opt.max_iters; ++k) {
    A.apply(p, Ap);                            // Ap <- A p
    const double pAp = p.dot(Ap), pp = p.dot(p);
    if (!finite(pAp) || !finite(rz)) {
      res.status = CgStatus::kDivergedNanOrInf;
      return res;
    }
    if (pAp <= 0.0) {
      res.status = CgStatus::kNegativeCurvature;
      if (k == 0) {
        // Steihaug-Toint: along b to the trust radius. Without a radius: p / |pᵀAp / pᵀp|, the Newton step for the
        // curvature's magnitude along p = M⁻¹ b (finite and documented; pᵀAp == 0 gives p itself).
        if (opt.trust_radius > 0) {
          x.axpy(opt.trust_radius / res.b_norm, b);
        } else {
          x.axpy(pAp < 0 ? pp / -pAp : 1.0, p);  // p = M⁻¹ b
        }
      } else if (opt.trust_radius > 0) {
        x.axpy(boundary_step(x, p, opt.trust_radius), p);
      }
      return res;
    }
    const double alpha = rz / pAp;
    if (opt.trust_radius > 0) {
      ShardedVector trial = x.clone();
      trial.axpy(alpha, p);
      if (trial.norm() >= opt.trust_radius) {
        x.axpy(boundary_step(x, p, opt.trust_radius), p);
        res.status = CgStatus::kTrustRegionBoundary;
        res.iterations = k + 1;
        return res;
      }
    }
    x.axpy(alpha, p);                          // x <- x + α p
    r.axpy(-alpha, Ap);                        // r <- r - α A p
    res.residual_norm = r.norm();
    res.iterations = k + 1;
    if (!finite(res.residual_norm)) {
      res.status = CgStatus::kDivergedNanOrInf;
      return res;
    }
    const CgIteration it{k + 1, res.residual_norm / res.b_norm, pAp / pp,
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
    res.history.push_back(it);
    if (monitor) monitor(it);
    if (res.residual_norm <= target) {
      res.status = res.residual_norm <= opt.rtol * res.b_norm ? CgStatus::kConvergedRtol : CgStatus::kConvergedAtol;
      return res;
    }
    z = precondition(opt, r);                  // z <- M⁻¹ r
    const double rz_next = r.dot(z);
    const double beta = rz_next / rz;          // β <- (r·z)_{k+1} / (r·z)_k
    rz = rz_next;
    p.scale(beta);                             // p <- z + β p
    p.axpy(1.0, z);
    if (opt.after_iteration && k + 1 < opt.max_iters &&
        opt.after_iteration(CgState{k + 1, x, r, p, rz, res.residual_norm, res.history})) {
      res.status = CgStatus::kInterrupted;
      return res;
    }
  }
  res.status = CgStatus::kMaxIterations;
  return res;
}

}  // namespace unlearn
