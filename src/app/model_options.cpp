#include "model_options.h"

#include "unlearn/util/error.h"

namespace unlearn {

void ModelOptions::add_to(po::options_description& desc) {
  desc.add_options()
      ("family", po::value<std::string>(&kv_["family"])->default_value("gpt2"), "gpt2 | llama")
      ("vocab-size", po::value<std::string>(&kv_["vocab_size"]), "vocabulary (default: the dataset's, else 256)")
      ("d-model", po::value<std::string>(&kv_["d_model"])->default_value("64"), "width")
      ("n-layers", po::value<std::string>(&kv_["n_layers"])->default_value("2"), "layers")
      ("n-heads", po::value<std::string>(&kv_["n_heads"])->default_value("4"), "attention heads")
      ("n-kv-heads", po::value<std::string>(&kv_["n_kv_heads"]), "LLaMA KV heads (default n-heads)")
      ("d-ff", po::value<std::string>(&kv_["d_ff"])->default_value("256"), "MLP width")
      ("max-positions", po::value<std::string>(&kv_["max_positions"])->default_value("128"),
       "context length (longer documents are cut into windows of this many inputs)")
      ("rope-theta", po::value<std::string>(&kv_["rope_theta"]), "LLaMA rotary base (default 10000)")
      ("norm-eps", po::value<std::string>(&kv_["norm_eps"]), "LLaMA RMSNorm eps (default 1e-5)")
      ("dtype", po::value<std::string>(&kv_["dtype"])->default_value("float32"), "float32 | float64")
      ("init-std", po::value<double>(&init_std)->default_value(0.02), "standard deviation of the initial weights")
      ("init-seed", po::value<std::uint64_t>(&init_seed)->default_value(1234), "initialisation seed");
}

ModelConfig ModelOptions::config(std::int64_t default_vocab) const {
  std::map<std::string, std::string> kv;
  for (const auto& [k, v] : kv_)
    if (!v.empty()) kv[k] = v;
  if (!kv.count("vocab_size")) kv["vocab_size"] = std::to_string(default_vocab > 0 ? default_vocab : 256);
  if (!(init_std > 0)) throw ConfigError("--init-std must be positive");
  return ModelConfig::from_map(kv);
}

}  // namespace unlearn
