// The MPI backend through the conformance suite, plus what only MPI has: the dtype table and 16-bit refusal.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "comm_conformance.h"
#include "unlearn/comm/mpi_communicator.h"

namespace unlearn::testing {

std::unique_ptr<Communicator> make_backend(const std::string& name) {
  return name == "mpi" ? make_mpi_communicator(MPI_COMM_WORLD) : nullptr;
}
at::Device backend_device(const std::string&) { return at::kCPU; }

INSTANTIATE_TEST_SUITE_P(Mpi, CommConformance, ::testing::Values("mpi"));

TEST(MpiTypes, TableMapsAndRefuses) {
  EXPECT_EQ(to_mpi_type(at::kFloat, true), MPI_FLOAT);
  EXPECT_EQ(to_mpi_type(at::kDouble, true), MPI_DOUBLE);
  EXPECT_EQ(to_mpi_type(at::kLong, true), MPI_INT64_T);
  EXPECT_EQ(to_mpi_type(at::kHalf, false), MPI_UINT16_T);
  EXPECT_THROW(to_mpi_type(at::kHalf, true), CommError);
  EXPECT_THROW(to_mpi_type(at::kBFloat16, true), CommError);
  EXPECT_THROW(to_mpi_type(at::kComplexFloat, false), CommError);
  EXPECT_THROW(to_mpi_type(at::kBool, true), CommError);
}

TEST(MpiBackend, HalfReductionIsRefusedBeforeCommunicating) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  at::Tensor t = at::ones({4}, at::TensorOptions().dtype(at::kHalf));
  EXPECT_THROW(comm->all_reduce(t, ReduceOp::kSum), CommError);
  EXPECT_EQ(comm->all_reduce_scalar(std::int64_t{2}), 2 * comm->size());
}

TEST(MpiBackend, NativeCommIsADuplicate) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  int cmp = 0;
  MPI_Comm_compare(native_mpi_comm(*comm), MPI_COMM_WORLD, &cmp);
  EXPECT_EQ(cmp, MPI_CONGRUENT);  // same group, separate context: our traffic never matches the caller's
  auto local = make_local_communicator();
  EXPECT_THROW(native_mpi_comm(*local), CommError);
}

TEST(MpiBackend, LargeTensorRoundTrip) {
  // 8 Mi + 7 doubles (64 MiB): a gradient-sized reduction over several of the backend's 16 MiB chunks and a
  // ragged last one; position-dependent values catch a chunk reduced at the wrong offset.
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  const std::int64_t n = (std::int64_t{1} << 23) + 7;
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor t = at::arange(n, f64) * static_cast<double>(comm->rank() + 1);
  comm->all_reduce(t, ReduceOp::kSum);
  const double ranks_sum = comm->size() * (comm->size() + 1) / 2.0;
  EXPECT_TRUE(at::equal(t, at::arange(n, f64) * ranks_sum));
}

TEST(MpiBackend, LargeReduceScatterInChunks) {
  // Blocks of 2 Mi + 3 doubles per rank: the backend packs them column chunk by column chunk; every element must
  // land in its rank's block at its offset.
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  const std::int64_t n = (std::int64_t{1} << 21) + 3, p = comm->size();
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor in = at::arange(p * n, f64) * static_cast<double>(comm->rank() + 1);
  at::Tensor out = at::empty({n}, f64);
  comm->reduce_scatter(in, out, ReduceOp::kSum);
  const double ranks_sum = p * (p + 1) / 2.0;
  EXPECT_TRUE(at::equal(out, (at::arange(n, f64) + static_cast<double>(comm->rank() * n)) * ranks_sum));
}

TEST(MpiBackend, LargeAllGather) {
  // 2 Mi + 3 doubles per rank (past the reductions' 16 MiB chunk): rank r's block must arrive whole at row r.
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  const std::int64_t n = (std::int64_t{1} << 21) + 3, p = comm->size();
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor in = at::arange(n, f64) + static_cast<double>(comm->rank() * n);
  at::Tensor out = at::empty({p, n}, f64);
  comm->all_gather(in, out);
  EXPECT_TRUE(at::equal(out, at::arange(p * n, f64).view({p, n})));
}

}  // namespace unlearn::testing
