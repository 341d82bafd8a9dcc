// `unlearn convert SRC DST`: Hugging Face safetensors (a model directory or one .safetensors file) to our HDF5
// checkpoint, or a checkpoint (.h5) to a Hugging Face directory (model.safetensors + config.json).
#include <cstdio>

#include "unlearn/app/subcommands.h"
#include "unlearn/io/safetensors.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class ConvertCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "convert"; }
  std::string_view summary() const override {
    return "Hugging Face safetensors (GPT-2, LLaMA) <-> checkpoint; bit-exact in f32, f16 and bf16";
  }
  std::string_view usage() const override { return "SRC DST"; }

  void add_options(po::options_description& desc, po::positional_options_description& pos) override {
    desc.add_options()
        ("src", po::value<std::string>(&src_)->value_name("SRC"),
         "a checkpoint (.h5) to export, or a Hugging Face model directory / .safetensors file to import")
        ("dst", po::value<std::string>(&dst_)->value_name("DST"),
         "import: the checkpoint to write (.h5, must not exist); export: the output directory")
        ("dtype", po::value<std::string>(&dtype_)->default_value("keep"),
         "storage type of the output: keep | float32 | float16 | bf16 | float64")
        ("hf-config", po::value<std::string>(&hf_config_), "import: config.json (default: beside the weights)")
        ("tokenizer", po::value<std::string>(&tokenizer_)->default_value(""), "import: tokenizer identity to record")
        ("step", po::value<std::int64_t>(&step_)->default_value(0), "import: step to record");
    pos.add("src", 1).add("dst", 1);
  }

  void validate(const po::variables_map& vm, const CommonOptions&, int) const override {
    if (!vm.count("src") || !vm.count("dst")) throw ConfigError("unlearn convert: give SRC and DST");
    if (dtype_ != "keep") parse_storage_type(dtype_);
  }

  int run(AppContext& ctx) override {
    Communicator& world = ctx.grid.world();
    std::optional<StorageType> storage;
    if (dtype_ != "keep") storage = parse_storage_type(dtype_);
    try {
      if (ends_with(src_, ".h5")) {
        ExportOptions o;
        o.storage = storage;
        export_safetensors(src_, dst_, world, o);
        log_info0("exported " + src_ + " to " + dst_ + "/model.safetensors and config.json");
      } else {
        ImportOptions o;
        o.config_path = hf_config_;
        o.storage = storage;
        o.save.step = step_;
        o.save.tokenizer = tokenizer_;
        const CheckpointInfo info = import_safetensors(src_, dst_, world, o);
        log_info0("wrote " + dst_ + ": " + info.config.describe() + ", " + storage_type_name(info.storage) +
                  ", content digest " + info.content_digest);
      }
    } catch (const Error& e) {
      // The io layer agrees on errors: every rank has this one; print it once, exit 1 everywhere.
      if (world.rank() == 0) std::fprintf(stderr, "unlearn: error: %s\n", e.what());
      return 1;
    }
    return 0;
  }

 private:
  std::string src_, dst_, dtype_, hf_config_, tokenizer_;
  std::int64_t step_ = 0;
};

}  // namespace

std::unique_ptr<Subcommand> make_convert_command() { return std::make_unique<ConvertCommand>(); }

}  // namespace unlearn
