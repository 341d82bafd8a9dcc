// Matrix-free linear operators on ShardedVectors (PETSc's shell matrices): the curvature products of the model,
// the empirical Fisher, and damping. solver layer: sees the model only through its curvature API.
#pragma once

#include "unlearn/comm/sharded_vector.h"
#include "unlearn/model/curvature.h"

namespace unlearn {

class FisherStore;

class LinearOperator {
 public:
  virtual ~LinearOperator() = default;
  /// y <- A x. `y` has x's layout on return.
  virtual void apply(const ShardedVector& x, ShardedVector& y) = 0;
};

enum class CurvatureKind { kHessian, kGgn, kFisher };
CurvatureKind parse_curvature(const std::string& name);  // hessian | ggn | fisher
std::string to_string(CurvatureKind kind);

/// H x or G x from a prepared Curvature (the retain sample's). With a `partition`, x and y are DP chunks
/// (design 3.4): x is all-gathered over DP, and the replicas' partial products are reduce-scattered.
class CurvatureOperator final : public LinearOperator {
 public:
  CurvatureOperator(Curvature& curvature, CurvatureKind kind, const DpPartition* partition = nullptr);
  void apply(const ShardedVector& x, ShardedVector& y) override;

 private:
  Curvature& curvature_;
  CurvatureKind kind_;
  const DpPartition* partition_;
};

/// F̂₀ x = (1/N) Σ_i u_i <u_i, x>.
class FisherOperator final : public LinearOperator {
 public:
  explicit FisherOperator(const FisherStore& store) : store_(store) {}
  void apply(const ShardedVector& x, ShardedVector& y) override;

 private:
  const FisherStore& store_;
};

/// (C + λ I) x: the only place damping enters (design 3.0).
class DampedOperator final : public LinearOperator {
 public:
  DampedOperator(LinearOperator& base, double lambda) : base_(base), lambda_(lambda) {}
  void apply(const ShardedVector& x, ShardedVector& y) override;
  double lambda() const { return lambda_; }

 private:
  LinearOperator& base_;
  double lambda_;
};

}  // namespace unlearn
