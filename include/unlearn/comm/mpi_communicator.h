// MPI backend of the Communicator: the one public header that includes <mpi.h>.
// Used by main, the io layer (parallel HDF5 needs an MPI_Comm), benchmarks and MPI tests.
#pragma once

#include <mpi.h>

#include <memory>

#include "unlearn/comm/communicator.h"
#include "unlearn/util/error.h"

namespace unlearn {

/// Wraps a duplicate of `comm` (MPI_Comm_dup), freed with the object. Host tensors go straight to MPI;
/// device tensors are staged through host memory unless the build sets UNLEARN_GPU_AWARE_MPI.
std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm);

/// The MPI communicator under an MPI-backed Communicator; throws CommError for other backends.
MPI_Comm native_mpi_comm(const Communicator& comm);

/// MPI datatype of an ATen dtype. Reductions refuse 16-bit floats (MPI has no half type); data movement
/// (gather, broadcast) moves them as 16-bit words. Throws CommError for anything else unsupported.
MPI_Datatype to_mpi_type(at::ScalarType type, bool for_reduction);

namespace detail {
[[noreturn]] void throw_mpi_failure(int code, const char* call, const char* file, int line);
}  // namespace detail

}  // namespace unlearn

/// Checks an MPI return code; the message carries the call, the MPI error string, file:line, rank and host.
#define UNLEARN_CHECK_MPI(call)                                                     \
  do {                                                                              \
    const int unlearn_mpi_rc_ = (call);                                             \
    if (unlearn_mpi_rc_ != MPI_SUCCESS)                                             \
      ::unlearn::detail::throw_mpi_failure(unlearn_mpi_rc_, #call, __FILE__, __LINE__); \
  } while (0)
