// Test program for the failure policy: the last rank throws while every other rank waits in an all-reduce.
// The job must end within seconds with the thrower's message, never hang.
#include <ATen/ATen.h>
#include <mpi.h>

#include <chrono>
#include <thread>

#include "unlearn/app/cli.h"
#include "unlearn/comm/mpi_communicator.h"
#include "unlearn/util/error.h"

int main(int argc, char** argv) {
  return unlearn::run_mpi_program(argc, argv, [](int rank, int size) -> unlearn::Action {
    return [rank, size]() -> int {
      auto world = unlearn::make_mpi_communicator(MPI_COMM_WORLD);
      at::Tensor t = at::ones({1024});
      world->all_reduce(t, unlearn::ReduceOp::kSum);  // everyone in step first
      if (rank == size - 1) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the others are blocked by now
        UNLEARN_THROW(unlearn::CommError, "injected failure on rank " << rank << " in the middle of a collective");
      }
      world->all_reduce(t, unlearn::ReduceOp::kSum);  // never completes: the thrower does not join
      return 0;
    };
  });
}
