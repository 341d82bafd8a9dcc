// `unlearn init`: writes a freshly initialised model checkpoint (GPT-2 or LLaMA, any TP) from a configuration:
// the starting point of training, and the fixture of the end-to-end tests.
#include "unlearn/app/subcommands.h"
#include "unlearn/io/checkpoint.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

class InitCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "init"; }
  std::string_view summary() const override { return "write a randomly initialised model checkpoint from a config"; }

  void add_options(po::options_description& desc, po::positional_options_description&) override {
    desc.add_options()
        ("output", po::value<std::string>(&out_)->required(), "checkpoint to write; must not exist")
        ("family", po::value<std::string>(&kv_["family"])->default_value("gpt2"), "gpt2 | llama")
        ("vocab-size", po::value<std::string>(&kv_["vocab_size"])->default_value("256"), "vocabulary")
        ("d-model", po::value<std::string>(&kv_["d_model"])->default_value("64"), "width")
        ("n-layers", po::value<std::string>(&kv_["n_layers"])->default_value("2"), "layers")
        ("n-heads", po::value<std::string>(&kv_["n_heads"])->default_value("4"), "attention heads")
        ("n-kv-heads", po::value<std::string>(&kv_["n_kv_heads"]), "LLaMA KV heads (default n-heads)")
        ("d-ff", po::value<std::string>(&kv_["d_ff"])->default_value("256"), "MLP width")
        ("max-positions", po::value<std::string>(&kv_["max_positions"])->default_value("128"), "context length")
        ("dtype", po::value<std::string>(&kv_["dtype"])->default_value("float32"), "float32 | float64")
        ("init-std", po::value<double>(&std_)->default_value(0.02), "standard deviation of the weights")
        ("seed", po::value<std::uint64_t>(&seed_)->default_value(1234), "initialisation seed");
  }

  void validate(const po::variables_map&, const CommonOptions& common, int) const override {
    config().validate(common.tp);
    if (!(std_ > 0)) throw ConfigError("--init-std must be positive");
  }

  int run(AppContext& ctx) override {
    TransformerModel model(config(), ctx.grid.tp());
    model.init_random(seed_, InitOptions{std_, 0.0, 0.0});
    SaveOptions save;
    save.seed = seed_;
    const CheckpointInfo info = save_checkpoint(out_, model, ctx.grid, save);
    log_info0("wrote " + out_ + ": " + model.config().describe() + ", " + std::to_string(model.global_numel()) +
              " parameters, digest " + info.content_digest);
    return 0;
  }

 private:
  ModelConfig config() const {
    std::map<std::string, std::string> kv;
    for (const auto& [k, v] : kv_)
      if (!v.empty()) kv[k] = v;
    return ModelConfig::from_map(kv);
  }
  std::string out_;
  std::map<std::string, std::string> kv_;
  double std_ = 0.02;
  std::uint64_t seed_ = 1234;
};

}  // namespace

std::unique_ptr<Subcommand> make_init_command() { return std::make_unique<InitCommand>(); }

}  // namespace unlearn
