// Megatron's conjugate TP mappings as autograd Functions that survive double backward (design section 4).
// model layer: sees only the abstract Communicator.
#pragma once

#include <ATen/core/Tensor.h>

#include "unlearn/comm/communicator.h"

namespace unlearn {

/// Identity forward, all-reduce (sum over `group`) backward. Use where a replicated activation (or a weight shared
/// by several TP ranks) enters rank-specific computation.
at::Tensor copy_to_tp(const at::Tensor& x, Communicator& group);

/// All-reduce (sum over `group`) forward, identity backward. Use where rank-partial results become replicated.
at::Tensor reduce_from_tp(const at::Tensor& x, Communicator& group);

// Each backward calls the partner's apply, never a raw collective or a plain identity: with create_graph=true the
// backward itself is differentiated, and only the partner Function carries the cross-rank terms of H·v.

}  // namespace unlearn
