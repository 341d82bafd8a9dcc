// Process grid construction and validation.
#include "unlearn/comm/process_grid.h"

#include <sstream>

#include "unlearn/util/error.h"

namespace unlearn {

void validate_grid(int world_size, int tp_size) {
  if (tp_size < 1) UNLEARN_THROW(ConfigError, "--tp must be at least 1, got " << tp_size);
  if (world_size % tp_size != 0)
    UNLEARN_THROW(ConfigError, "--tp " << tp_size << " does not divide the world size " << world_size
                                       << ": launch a multiple of " << tp_size << " ranks, or pick a --tp that divides "
                                       << world_size);
}

ProcessGrid::ProcessGrid(std::shared_ptr<Communicator> world, int tp_size) : world_(std::move(world)) {
  UNLEARN_CHECK(world_ != nullptr, "ProcessGrid: null world communicator");
  validate_grid(world_->size(), tp_size);
  const int rank = world_->rank();
  tp_ = world_->split(rank / tp_size, rank % tp_size);  // contiguous ranks: one TP group
  dp_ = world_->split(rank % tp_size, rank / tp_size);  // same tp_rank across TP groups
  node_ = world_->split_node_local();
  UNLEARN_CHECK(tp_ && dp_ && node_, "ProcessGrid: a split returned no communicator");
  UNLEARN_CHECK(tp_->size() == tp_size && dp_->size() == world_->size() / tp_size,
                "ProcessGrid: unexpected group sizes tp " << tp_->size() << ", dp " << dp_->size());
}

std::string ProcessGrid::describe() const {
  std::ostringstream os;
  os << "world " << world_size() << " = dp " << dp_size() << " x tp " << tp_size() << ", backend "
     << world_->backend_name() << ", " << node_local_size() << " rank(s) on this node";
  if (tp_size() > node_local_size()) os << " (warning: a TP group spans nodes)";
  return os.str();
}

}  // namespace unlearn
