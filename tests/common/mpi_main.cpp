// GoogleTest main for MPI tests: rank 0 prints, results are ANDed over ranks so every rank exits alike.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>

#include "unlearn/util/error.h"

namespace {
// On ranks other than 0 only failures are printed, tagged with the rank.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.summary());
  }

 private:
  int rank_;
};
}  // namespace

/// A test binary that needs hardware it may not find defines this (its definition wins over this weak one): a reason
/// skips the whole binary with exit code 77, which CTest reports as skipped (SKIP_RETURN_CODE 77).
extern "C" __attribute__((weak)) const char* unlearn_test_skip_reason() { return nullptr; }

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  unlearn::set_process_identity(rank, "test");
  if (const char* why = unlearn_test_skip_reason()) {
    if (rank == 0) std::printf("SKIP: %s\n", why);
    MPI_Finalize();
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(rank));
  }
  int ok = RUN_ALL_TESTS() == 0 ? 1 : 0;
  if (rank != 0 && !ok) std::fprintf(stderr, "[rank %d] some tests FAILED on this rank\n", rank);
  int all_ok = 0;
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Finalize();
  // GTEST_SKIP on every rank yields ok == 1: skips pass through as passes here; gpu tests use exit code 77.
  return all_ok ? 0 : 1;
}
