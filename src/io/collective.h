// Agreement among the ranks of a file operation: a failure on any rank becomes the same exception on every rank,
// so no rank is left waiting in a collective another rank has abandoned. io layer, private to src/io.
#pragma once

#include <mpi.h>

#include <functional>
#include <string>
#include <vector>

#include "unlearn/comm/communicator.h"

namespace unlearn::detail {

class Collective {
 public:
  /// MPI-backed communicators use their MPI_Comm; a size-1 local communicator needs no communication.
  explicit Collective(Communicator& world);

  int rank() const { return rank_; }
  int size() const { return size_; }
  /// MPI_COMM_NULL for the local backend (the file is then opened with the serial POSIX driver).
  MPI_Comm comm() const { return comm_; }

  /// Runs `body` on every rank, then all-reduces the outcome: if it threw anywhere, every rank throws the exception
  /// of the lowest failing rank (same type, ConfigError or IoError, same message). One all-reduce when all succeed.
  ///
  /// HDF5 cannot recover a collective that one rank left early (a write failing with ENOSPC on one rank leaves the
  /// others inside the library). So a rank that failed waits for the agreement at most failure_timeout() seconds;
  /// then it runs the abandon hook (removing a temporary file), logs its error and calls MPI_Abort.
  void run(const std::function<void()>& body) const;

  /// Cleanup for a rank that must abort the job (see run); empty: none.
  void set_abandon_hook(std::function<void()> hook) const { abandon_ = std::move(hook); }
  /// UNLEARN_IO_FAILURE_TIMEOUT (seconds, default 300): how long a failed rank waits for the others.
  static double failure_timeout();

  /// `text` of rank `root` on every rank.
  std::string broadcast(std::string text, int root) const;
  /// Integer all-reduce (sum) of a vector, in place.
  void sum(std::vector<std::int64_t>& values) const;
  /// Wrapping unsigned sum (digests).
  std::uint64_t sum_wrapping(std::uint64_t value) const;
  /// True on every rank iff `value` is equal on every rank (a fingerprint of inputs that must agree).
  bool same_everywhere(std::uint64_t value) const;
  void barrier() const;

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  mutable std::function<void()> abandon_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace unlearn::detail
