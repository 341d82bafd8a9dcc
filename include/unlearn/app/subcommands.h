// Factories of the subcommands; one source file each under src/app/.
#pragma once

#include <memory>

#include "unlearn/app/cli.h"

namespace unlearn {

std::unique_ptr<Subcommand> make_info_command();   // unlearn info: versions, grid and rank placement
std::unique_ptr<Subcommand> make_bench_command();  // unlearn bench comm|...: measured, never asserted
std::unique_ptr<Subcommand> make_inspect_command();  // unlearn inspect FILE: tensors, attributes, checksums
std::unique_ptr<Subcommand> make_convert_command();  // unlearn convert SRC DST: safetensors <-> checkpoint
std::unique_ptr<Subcommand> make_prepare_data_command();  // unlearn prepare-data: corpus -> HDF5 token dataset
std::unique_ptr<Subcommand> make_forget_command();  // unlearn forget: Newton-type removal of a forget set
std::unique_ptr<Subcommand> make_init_command();  // unlearn init: a freshly initialised checkpoint
std::unique_ptr<Subcommand> make_train_command();  // unlearn train: TP x DP training with checkpoints and resume

std::unique_ptr<Subcommand> make_eval_command();  // unlearn eval: perplexity, exposure, membership inference, KL
}  // namespace unlearn
