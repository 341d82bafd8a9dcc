// Model-shape options shared by `unlearn init` and `unlearn train` (one definition, one --help text).
#pragma once

#include <map>
#include <string>

#include "unlearn/app/cli.h"
#include "unlearn/model/config.h"

namespace unlearn {

class ModelOptions {
 public:
  /// Adds --family, --vocab-size, --d-model, ... and --init-std, --init-seed to `desc`.
  void add_to(po::options_description& desc);
  /// The configuration the options describe; `default_vocab` fills --vocab-size when it was not given (0: 256).
  ModelConfig config(std::int64_t default_vocab = 0) const;
  double init_std = 0.02;
  std::uint64_t init_seed = 1234;

 private:
  std::map<std::string, std::string> kv_;
};

}  // namespace unlearn
