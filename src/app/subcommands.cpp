// The registry of `unlearn` subcommands, in --help order.
#include "unlearn/app/cli.h"
#include "unlearn/app/subcommands.h"

namespace unlearn {

std::vector<std::unique_ptr<Subcommand>> make_subcommands() {
  std::vector<std::unique_ptr<Subcommand>> subs;
  subs.push_back(make_info_command());
  subs.push_back(make_bench_command());
  subs.push_back(make_inspect_command());
  subs.push_back(make_convert_command());
  subs.push_back(make_prepare_data_command());
  subs.push_back(make_init_command());
  subs.push_back(make_train_command());
  subs.push_back(make_forget_command());
  subs.push_back(make_eval_command());
  return subs;
}

}  // namespace unlearn
