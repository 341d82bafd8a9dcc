// `unlearn init`: writes a freshly initialised model checkpoint (GPT-2 or LLaMA, any TP) from a configuration:
// the starting point of training, and the fixture of the end-to-end tests.
#include "unlearn/app/subcommands.h"
#include "unlearn/io/checkpoint.h"
#include "unlearn/util/error.h"
#include "model_options.h"

namespace unlearn {
namespace {

class InitCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "init"; }
  std::string_view summary() const override { return "write a randomly initialised model checkpoint from a config"; }

  void add_options(po::options_description& desc, po::positional_options_description&) override {
    desc.add_options()
        ("output", po::value<std::string>(&out_)->required(), "checkpoint to write; must not exist");
    model_.add_to(desc);
  }

  void validate(const po::variables_map&, const CommonOptions& common, int) const override {
    model_.config().validate(common.tp);
  }

  int run(AppContext& ctx) override {
    TransformerModel model(model_.config(), ctx.grid.tp());
    model.init_random(model_.init_seed, InitOptions{model_.init_std, 0.0, 0.0});
    SaveOptions save;
    save.seed = model_.init_seed;
    const CheckpointInfo info = save_checkpoint(out_, model, ctx.grid, save);
    log_info0("wrote " + out_ + ": " + model.config().describe() + ", " + std::to_string(model.global_numel()) +
              " parameters, digest " + info.content_digest);
    return 0;
  }

 private:
  std::string out_;
  ModelOptions model_;
};

}  // namespace

std::unique_ptr<Subcommand> make_init_command() { return std::make_unique<InitCommand>(); }

}  // namespace unlearn
