// Agreed outcomes of per-rank file operations: one all-reduce, plus a broadcast of the message on failure.
#include "collective.h"

#include <chrono>
#include <climits>
#include <cstdlib>
#include <thread>
#include <string_view>
#include <vector>

#include "unlearn/comm/mpi_communicator.h"
#include "unlearn/util/error.h"
#include "unlearn/util/log.h"

namespace unlearn::detail {
namespace {
enum Kind : int { kNone = 0, kIo = 1, kConfig = 2 };
}

Collective::Collective(Communicator& world) {
  if (world.backend_name() == "mpi") {
    comm_ = native_mpi_comm(world);
    rank_ = world.rank();
    size_ = world.size();
  } else {
    UNLEARN_CHECK(world.size() == 1, "checkpoint I/O needs an MPI communicator (got backend "
                                         << world.backend_name() << " of size " << world.size() << ")");
  }
}

void Collective::run(const std::function<void()>& body) const {
  int kind = kNone;
  std::string message;
  try {
    body();
  } catch (const ConfigError& e) {
    kind = kConfig;
    message = e.what();
  } catch (const std::exception& e) {
    kind = kIo;
    message = e.what();
  }
  int world = 1, mpi_up = 0;
  MPI_Initialized(&mpi_up);
  if (mpi_up) MPI_Comm_size(MPI_COMM_WORLD, &world);
  // Over the whole world the failure is agreed: every rank throws it here, and the CLI reports it once.
  const bool whole_world = size_ == world;
  auto rethrow = [&]() {
    if (whole_world && kind == kConfig) throw AgreedError(message);
    if (whole_world) throw AgreedIoError(message);
    if (kind == kConfig) throw ConfigError(message);
    throw IoError(message);
  };
  if (comm_ == MPI_COMM_NULL) {
    if (kind != kNone) rethrow();
    return;
  }
  const int mine = kind == kNone ? INT_MAX : rank_;
  int first = INT_MAX;
  // Non-blocking everywhere (blocking and non-blocking collectives do not match), so a failed rank can give up.
  MPI_Request request = MPI_REQUEST_NULL;
  UNLEARN_CHECK_MPI(MPI_Iallreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm_, &request));
  if (kind == kNone) {
    UNLEARN_CHECK_MPI(MPI_Wait(&request, MPI_STATUS_IGNORE));
  } else {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(failure_timeout());
    for (int done = 0;;) {
      UNLEARN_CHECK_MPI(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
      if (done) break;
      if (std::chrono::steady_clock::now() > deadline) {
        try {
          if (abandon_) abandon_();
        } catch (...) {
        }
        log_error(message + " (the other ranks did not reach the failure agreement within " +
                  std::to_string(static_cast<int>(failure_timeout())) + " s: aborting the job)");
        MPI_Abort(MPI_COMM_WORLD, 1);
        std::_Exit(1);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  if (first == INT_MAX) return;
  UNLEARN_CHECK_MPI(MPI_Bcast(&kind, 1, MPI_INT, first, comm_));
  message = broadcast(std::move(message), first);
  rethrow();
}

double Collective::failure_timeout() {
  const char* env = std::getenv("UNLEARN_IO_FAILURE_TIMEOUT");
  if (env && *env) {
    char* end = nullptr;
    const double v = std::strtod(env, &end);
    if (end && *end == '\0' && v > 0) return v;
  }
  return 300.0;
}

std::string Collective::broadcast(std::string text, int root) const {
  if (comm_ == MPI_COMM_NULL) return text;
  long long n = static_cast<long long>(text.size());
  UNLEARN_CHECK_MPI(MPI_Bcast(&n, 1, MPI_LONG_LONG, root, comm_));
  text.resize(static_cast<std::size_t>(n));
  if (n > 0) UNLEARN_CHECK_MPI(MPI_Bcast(text.data(), static_cast<int>(n), MPI_CHAR, root, comm_));
  return text;
}

void Collective::sum(std::vector<std::int64_t>& values) const {
  if (comm_ == MPI_COMM_NULL || values.empty()) return;
  UNLEARN_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_INT64_T,
                                  MPI_SUM, comm_));
}

std::uint64_t Collective::sum_wrapping(std::uint64_t value) const {
  if (comm_ == MPI_COMM_NULL) return value;
  std::uint64_t out = 0;
  // Unsigned addition wraps modulo 2^64 in MPI as in C.
  UNLEARN_CHECK_MPI(MPI_Allreduce(&value, &out, 1, MPI_UINT64_T, MPI_SUM, comm_));
  return out;
}

bool Collective::same_everywhere(std::uint64_t value) const {
  if (comm_ == MPI_COMM_NULL) return true;
  std::uint64_t lo = 0, hi = 0;
  UNLEARN_CHECK_MPI(MPI_Allreduce(&value, &lo, 1, MPI_UINT64_T, MPI_MIN, comm_));
  UNLEARN_CHECK_MPI(MPI_Allreduce(&value, &hi, 1, MPI_UINT64_T, MPI_MAX, comm_));
  return lo == hi;
}

void Collective::barrier() const {
  if (comm_ != MPI_COMM_NULL) UNLEARN_CHECK_MPI(MPI_Barrier(comm_));
}

}  // namespace unlearn::detail
