// Curvature, Fisher and damped operators.
#include "unlearn/solver/linear_operator.h"

#include "unlearn/solver/fisher.h"
#include "unlearn/util/error.h"

namespace unlearn {

CurvatureKind parse_curvature(const std::string& name) {
  if (name == "hessian") return CurvatureKind::kHessian;
  if (name == "ggn") return CurvatureKind::kGgn;
  if (name == "fisher") return CurvatureKind::kFisher;
  UNLEARN_THROW(ConfigError, "unknown curvature '" << name << "' (hessian, ggn or fisher)");
}

std::string to_string(CurvatureKind kind) {
  switch (kind) {
    case CurvatureKind::kHessian: return "hessian";
    case CurvatureKind::kGgn: return "ggn";
    case CurvatureKind::kFisher: return "fisher";
  }
  return "?";
}

CurvatureOperator::CurvatureOperator(Curvature& curvature, CurvatureKind kind, const DpPartition* partition)
    : curvature_(curvature), kind_(kind), partition_(partition) {
  UNLEARN_CHECK(kind != CurvatureKind::kFisher, "CurvatureOperator: the Fisher uses FisherOperator");
}

void CurvatureOperator::apply(const ShardedVector& x, ShardedVector& y) {
  if (!partition_) {
    y = kind_ == CurvatureKind::kHessian ? curvature_.hvp(x) : curvature_.gvp(x);
    return;
  }
  const ShardedVector whole = partition_->gather(x);
  const ShardedVector partial = kind_ == CurvatureKind::kHessian ? curvature_.hvp(whole, DpReduction::kLocal)
                                                                 : curvature_.gvp(whole, DpReduction::kLocal);
  y = partition_->reduce_scatter(partial);
}

void FisherOperator::apply(const ShardedVector& x, ShardedVector& y) { store_.apply(x, y); }

void DampedOperator::apply(const ShardedVector& x, ShardedVector& y) {
  base_.apply(x, y);
  if (lambda_ != 0.0) y.axpy(lambda_, x);  // y <- C x + λ x
}

}  // namespace unlearn
