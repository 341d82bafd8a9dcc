// Built when UNLEARN_ENABLE_NCCL is off: callers get a ConfigError instead of needing #ifdefs.
#include "unlearn/comm/communicator.h"
#include "unlearn/util/error.h"

namespace unlearn {

bool nccl_available_in_build() { return false; }

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& /*bootstrap*/,
                                                     std::shared_ptr<const DeviceContext> /*device*/) {
  throw ConfigError("this build has no NCCL backend: reconfigure with -DUNLEARN_ENABLE_NCCL=ON (needs CUDA and NCCL)");
}

}  // namespace unlearn
