// The process grid: world = DP x TP, TP groups of contiguous ranks (tp_rank = rank % TP, dp_rank = rank / TP),
// so a TP group shares a node when TP divides the ranks per node. comm layer.
#pragma once

#include <memory>
#include <string>

#include "unlearn/comm/communicator.h"

namespace unlearn {

/// Checks a TP size against the world size; throws ConfigError with the same message on every rank.
void validate_grid(int world_size, int tp_size);

class ProcessGrid {
 public:
  /// Collective over `world`: validates, then splits into TP, DP and node-local groups.
  ProcessGrid(std::shared_ptr<Communicator> world, int tp_size);

  Communicator& world() const { return *world_; }
  Communicator& tp() const { return *tp_; }
  Communicator& dp() const { return *dp_; }
  Communicator& node() const { return *node_; }

  int world_rank() const { return world_->rank(); }
  int world_size() const { return world_->size(); }
  int tp_rank() const { return tp_->rank(); }
  int tp_size() const { return tp_->size(); }
  int dp_rank() const { return dp_->rank(); }
  int dp_size() const { return dp_->size(); }
  int node_local_rank() const { return node_->rank(); }
  int node_local_size() const { return node_->size(); }

  /// One line for the start-up log: "world 4 = dp 2 x tp 2, backend mpi, 2 ranks per node".
  std::string describe() const;

 private:
  std::shared_ptr<Communicator> world_;
  std::unique_ptr<Communicator> tp_;
  std::unique_ptr<Communicator> dp_;
  std::unique_ptr<Communicator> node_;
};

}  // namespace unlearn
