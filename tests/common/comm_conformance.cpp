// The conformance tests themselves (see comm_conformance.h).
#include "comm_conformance.h"

#include <ATen/ATen.h>

#include <cmath>

#include "unlearn/util/error.h"

namespace unlearn::testing {
namespace {

const at::ScalarType kReduceTypes[] = {at::kFloat, at::kDouble, at::kInt, at::kLong};

// value(rank, i): exact in every tested dtype, distinct per rank and index.
double value(int rank, std::int64_t i) { return rank * 1000.0 + static_cast<double>(i % 997) + 1.0; }

at::Tensor formula(int rank, std::int64_t n, at::ScalarType type, at::Device dev) {
  at::Tensor idx = at::arange(n, at::TensorOptions().dtype(at::kDouble));
  return (rank * 1000.0 + idx.remainder(997) + 1.0).to(type).to(dev);
}

at::Tensor on_host(const at::Tensor& t) { return t.to(at::kCPU).to(at::kDouble); }

TEST_P(CommConformance, AllReduceSumMaxMinAvg) {
  const int p = comm_->size(), me = comm_->rank();
  for (std::int64_t n : {std::int64_t{1}, std::int64_t{1031}}) {
    for (at::ScalarType type : kReduceTypes) {
      for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin, ReduceOp::kAvg}) {
        if (op == ReduceOp::kAvg && !at::isFloatingType(type)) continue;
        at::Tensor t = formula(me, n, type, backend_device(GetParam()));
        comm_->all_reduce(t, op);
        at::Tensor got = on_host(t);
        for (std::int64_t i = 0; i < n; i += std::max<std::int64_t>(1, n / 37)) {
          double expect = 0;
          switch (op) {
            case ReduceOp::kSum:
            case ReduceOp::kAvg:
              for (int r = 0; r < p; ++r) expect += value(r, i);
              if (op == ReduceOp::kAvg) expect /= p;
              break;
            case ReduceOp::kMax: expect = value(p - 1, i); break;
            case ReduceOp::kMin: expect = value(0, i); break;
          }
          const double tol = op == ReduceOp::kAvg && type == at::kFloat ? 1e-6 * expect : 0.0;
          ASSERT_NEAR(got[i].item<double>(), expect, tol)
              << "op " << to_string(op) << " dtype " << type << " n " << n << " index " << i;
        }
      }
    }
  }
}

TEST_P(CommConformance, AllReduceAvgOfIntegersThrowsOnEveryRank) {
  at::Tensor t = formula(comm_->rank(), 8, at::kInt, backend_device(GetParam()));
  EXPECT_THROW(comm_->all_reduce(t, ReduceOp::kAvg), CommError);
  // Nobody communicated: the next collective still lines up on every rank.
  EXPECT_EQ(comm_->all_reduce_scalar(std::int64_t{1}), comm_->size());
}

TEST_P(CommConformance, NonContiguousTensorIsRefused) {
  at::Tensor t = at::zeros({4, 4}, at::TensorOptions().dtype(at::kFloat).device(backend_device(GetParam()))).t();
  EXPECT_THROW(comm_->all_reduce(t, ReduceOp::kSum), CommError);
}

TEST_P(CommConformance, AllGatherConcatenatesInRankOrder) {
  const int p = comm_->size(), me = comm_->rank();
  for (at::ScalarType type : {at::kFloat, at::kDouble, at::kLong, at::kHalf}) {
    const std::int64_t n = 13;
    at::Tensor in = formula(me, n, type == at::kHalf ? at::kFloat : type, backend_device(GetParam()));
    if (type == at::kHalf) in = (in - me * 1000.0 + me * 16.0).to(at::kHalf);  // keep values exact in half
    at::Tensor out = at::empty({p, n}, in.options());
    comm_->all_gather(in, out);
    at::Tensor got = on_host(out);
    for (int r = 0; r < p; ++r)
      for (std::int64_t i = 0; i < n; ++i) {
        const double expect = type == at::kHalf ? r * 16.0 + static_cast<double>(i % 997) + 1.0 : value(r, i);
        ASSERT_EQ(got[r][i].item<double>(), expect) << "dtype " << type << " from rank " << r << " index " << i;
      }
  }
}

TEST_P(CommConformance, AllGatherChecksOutputSize) {
  at::Tensor in = at::zeros({5}, at::TensorOptions().device(backend_device(GetParam())));
  at::Tensor out = at::zeros({5 * comm_->size() + 1}, in.options());
  EXPECT_THROW(comm_->all_gather(in, out), Error);
}

TEST_P(CommConformance, ReduceScatterGivesEachRankItsBlock) {
  const int p = comm_->size(), me = comm_->rank();
  const std::int64_t block = 7;
  for (at::ScalarType type : kReduceTypes) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kAvg}) {
      if (op == ReduceOp::kAvg && !at::isFloatingType(type)) continue;
      at::Tensor in = formula(me, block * p, type, backend_device(GetParam()));
      at::Tensor out = at::empty({block}, in.options());
      comm_->reduce_scatter(in, out, op);
      at::Tensor got = on_host(out);
      for (std::int64_t i = 0; i < block; ++i) {
        const std::int64_t j = me * block + i;  // global index of this element
        double expect = 0;
        if (op == ReduceOp::kMax) {
          expect = value(p - 1, j);
        } else {
          for (int r = 0; r < p; ++r) expect += value(r, j);
          if (op == ReduceOp::kAvg) expect /= p;
        }
        const double tol = op == ReduceOp::kAvg && type == at::kFloat ? 1e-6 * expect : 0.0;
        ASSERT_NEAR(got[i].item<double>(), expect, tol) << "dtype " << type << " op " << to_string(op);
      }
    }
  }
}

TEST_P(CommConformance, BroadcastFromEveryRoot) {
  const int p = comm_->size(), me = comm_->rank();
  for (int root = 0; root < p; ++root) {
    for (at::ScalarType type : {at::kDouble, at::kInt, at::kByte}) {
      const std::int64_t n = 21;
      at::Tensor t = me == root ? formula(root, n, at::kDouble, at::kCPU).remainder(251).to(type)
                                : at::zeros({n}, at::TensorOptions().dtype(type));
      t = t.to(backend_device(GetParam()));
      comm_->broadcast(t, root);
      at::Tensor got = on_host(t);
      for (std::int64_t i = 0; i < n; ++i)
        ASSERT_EQ(got[i].item<double>(), std::fmod(value(root, i), 251.0)) << "root " << root << " dtype " << type;
    }
  }
  at::Tensor t = at::zeros({1}, at::TensorOptions().device(backend_device(GetParam())));
  EXPECT_THROW(comm_->broadcast(t, p), Error);
}

TEST_P(CommConformance, BarrierAndScalarHelpers) {
  comm_->barrier();
  const int p = comm_->size(), me = comm_->rank();
  EXPECT_EQ(comm_->all_reduce_scalar(static_cast<std::int64_t>(me + 1)), p * (p + 1) / 2);
  EXPECT_DOUBLE_EQ(comm_->all_reduce_scalar(0.5 * me, ReduceOp::kMax), 0.5 * (p - 1));
  EXPECT_TRUE(comm_->all_agree(true));
  EXPECT_EQ(comm_->all_agree(me != p - 1), false);  // one rank says no: everyone hears no
}

TEST_P(CommConformance, SplitByParityWithReversedKeys) {
  const int p = comm_->size(), me = comm_->rank();
  auto sub = comm_->split(me % 2, -me);  // reversed order inside each colour
  ASSERT_NE(sub, nullptr);
  int members = 0, my_pos = 0;
  for (int r = 0; r < p; ++r)
    if (r % 2 == me % 2) {
      ++members;
      if (r > me) ++my_pos;  // higher ranks have smaller keys, so they come first
    }
  EXPECT_EQ(sub->size(), members);
  EXPECT_EQ(sub->rank(), my_pos);
  std::int64_t expect = 0;
  for (int r = me % 2; r < p; r += 2) expect += r;
  EXPECT_EQ(sub->all_reduce_scalar(static_cast<std::int64_t>(me)), expect);
}

TEST_P(CommConformance, SplitWithNegativeColourExcludesTheRank) {
  const int me = comm_->rank();
  auto sub = comm_->split(me == 0 ? -1 : 0, me);
  if (me == 0) {
    EXPECT_EQ(sub, nullptr);
  } else {
    ASSERT_NE(sub, nullptr);
    EXPECT_EQ(sub->size(), comm_->size() - 1);
    EXPECT_EQ(sub->rank(), me - 1);
  }
  comm_->barrier();
}

TEST_P(CommConformance, NodeLocalGroupContainsThisRank) {
  auto node = comm_->split_node_local();
  ASSERT_NE(node, nullptr);
  EXPECT_GE(node->size(), 1);
  EXPECT_LE(node->size(), comm_->size());
  EXPECT_LT(node->rank(), node->size());
}

}  // namespace
}  // namespace unlearn::testing
