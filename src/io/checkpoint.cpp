// Model checkpoints on top of the tensor files: the attribute schema (format, config, step, tokenizer,
// provenance), which ranks own which parameter blocks, and loading at any TP size. io layer.
#include "unlearn/io/checkpoint.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <set>

#include "collective.h"
#include "provenance.h"
#include "unlearn/util/error.h"
#include "unlearn/util/numerics.h"

namespace unlearn {
namespace {

/// Config keys that describe the run, not the weights: never stored, never compared.
bool runtime_only_key(const std::string& key) { return key == "device"; }

std::vector<TensorBlock> model_blocks(const TransformerModel& model, const ProcessGrid& grid) {
  std::vector<at::Tensor> values;
  for (const Parameter& p : model.parameters()) values.push_back(p.value.detach());
  return parameter_blocks(model, grid, values, "");
}

/// The root attributes decoded by the torch-free (fuzzed) decoder, then turned into the model's types.
CheckpointInfo interpret(FileInfo file) {
  CheckpointAttributes a = decode_checkpoint_attributes(file.attributes, file.path);
  CheckpointInfo info;
  // config_text passed decode_model_config already; from_map decodes it the same way over the model's defaults.
  info.config = ModelConfig::from_map(a.config_text);
  info.step = a.step;
  info.tokenizer = std::move(a.tokenizer);
  info.storage = a.storage;
  info.content_digest = std::move(a.content_digest);
  info.provenance = std::move(a.provenance);
  info.file = std::move(file);
  return info;
}

/// Tensor names, shapes and config keys of the checkpoint against the model it is loaded into.
void check_against_model(const std::string& path, const CheckpointInfo& info, const TransformerModel& model) {
  std::set<std::string> wanted;
  for (const Parameter& p : model.parameters()) wanted.insert(p.name);
  for (const Parameter& p : model.parameters()) {
    const TensorInfo* t = info.file.find(p.name);
    if (!t) throw IoError("checkpoint '" + path + "' has no tensor '" + p.name + "' (the model needs it)");
    if (t->shape != p.global_shape) {
      std::string have, want;
      for (auto d : t->shape) have += (have.empty() ? "" : ", ") + std::to_string(d);
      for (auto d : p.global_shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
      throw IoError("tensor '" + p.name + "' has shape [" + have + "] in checkpoint '" + path + "', the model " +
                    "expects [" + want + "]");
    }
  }
  for (const auto& t : info.file.tensors)
    if (!wanted.count(t.name))
      throw IoError("checkpoint '" + path + "' holds tensor '" + t.name + "', which the model does not have " +
                    "(written for another architecture?)");
  // Shapes agree; the remaining config keys change what the weights compute, so they must agree too.
  const auto file_cfg = info.config.to_map(), model_cfg = model.config().to_map();
  for (const auto& [key, value] : model_cfg) {
    if (runtime_only_key(key) || key == "dtype") continue;
    const auto it = file_cfg.find(key);
    if (it != file_cfg.end() && it->second != value)
      throw IoError("checkpoint '" + path + "' was written for " + key + " = " + it->second + ", the model has " +
                    value);
  }
}

}  // namespace

std::vector<TensorBlock> parameter_blocks(const TransformerModel& model, const ProcessGrid& grid,
                                          const std::vector<at::Tensor>& values, const std::string& prefix) {
  std::vector<std::size_t> all(model.parameters().size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  return parameter_blocks(model, grid, all, values, prefix);
}

std::vector<TensorBlock> parameter_blocks(const TransformerModel& model, const ProcessGrid& grid,
                                          const std::vector<std::size_t>& subset,
                                          const std::vector<at::Tensor>& values, const std::string& prefix) {
  UNLEARN_CHECK(values.size() == subset.size(),
                "parameter_blocks: " << values.size() << " values for " << subset.size() << " parameters");
  std::vector<TensorBlock> blocks;
  for (std::size_t j = 0; j < values.size(); ++j) {
    const Parameter& p = model.parameters()[subset[j]];
    UNLEARN_CHECK(values[j].sizes() == p.value.sizes(), "parameter_blocks: '" << p.name << "' has the wrong shape");
    TensorBlock b;
    b.name = prefix + p.name;
    b.local = values[j];
    b.global_shape = p.global_shape;
    b.shard_dim = p.shard_dim;
    b.shard_start = p.shard_start;
    // One writer per element: DP replica 0, and within its TP group the rank counted for the replicated ones.
    b.owner = grid.dp_rank() == 0 && p.layout.counted;
    blocks.push_back(std::move(b));
  }
  return blocks;
}

std::string checkpoint_file_name(std::int64_t step) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "step-%08lld.h5", static_cast<long long>(step));
  return buf;
}

Attributes model_checkpoint_attributes(const ModelConfig& config, StorageType storage, const SaveOptions& options,
                                      const std::string& rank_layout) {
  Attributes attrs;
  attrs["format"] = std::string(kCheckpointFormat);
  attrs["format_version"] = kCheckpointFormatVersion;
  attrs["kind"] = std::string("model");
  attrs["step"] = options.step;
  attrs["dtype"] = storage_type_name(storage);
  attrs["tokenizer"] = options.tokenizer;
  for (const auto& [key, value] : config.to_map())
    if (!runtime_only_key(key)) attrs[kConfigPrefix + key] = value;

  const std::string pp = kProvenancePrefix;
  attrs[pp + "git_revision"] = detail::build_git_revision();
  attrs[pp + "unlearn_version"] = std::string("0.1.0");
  attrs[pp + "command_line"] = options.command_line.empty() ? detail::process_command_line() : options.command_line;
  attrs[pp + "rank_layout"] = rank_layout;
  attrs[pp + "numerics"] = numerics_description();
  attrs[pp + "created_utc"] = detail::utc_now();
  attrs[pp + "input_digest"] = options.input_digest;
  if (options.seed) attrs[pp + "seed"] = std::to_string(*options.seed);
  for (const auto& [key, value] : options.provenance) attrs[pp + key] = value;
  return attrs;
}

CheckpointInfo save_checkpoint(const std::string& path, const TransformerModel& model, const ProcessGrid& grid,
                               const SaveOptions& options) {
  const StorageType storage = options.io.storage ? *options.io.storage : storage_type_of(model.config().dtype);
  const Attributes attrs = model_checkpoint_attributes(model.config(), storage, options, grid.describe());
  WriteOptions io = options.io;
  io.storage = storage;
  write_tensor_file(path, grid.world(), attrs, model_blocks(model, grid), io);
  return read_checkpoint_info(path, grid.world());
}

CheckpointInfo read_checkpoint_info(const std::string& path, Communicator& world) {
  FileInfo file = read_file_info(path, world);
  // Identical metadata on every rank, so the interpretation throws identically too; the agreement marks the error
  // as agreed, so the command line reports it once instead of aborting the job from every rank (found by
  // tests/reliability/bad_input.sh).
  CheckpointInfo info;
  detail::Collective(world).run([&] { info = interpret(std::move(file)); });
  return info;
}

CheckpointInfo load_checkpoint(const std::string& path, TransformerModel& model, const ProcessGrid& grid) {
  CheckpointInfo info = read_checkpoint_info(path, grid.world());
  // The checks below see the same metadata and the same model on every rank: agreed like the interpretation.
  detail::Collective(grid.world()).run([&] { check_against_model(path, info, model); });
  std::vector<TensorBlock> blocks = model_blocks(model, grid);
  read_tensor_blocks(path, grid.world(), blocks, /*verify_digest=*/true);
  return info;
}

std::unique_ptr<TransformerModel> load_model(const std::string& path, const ProcessGrid& grid,
                                             CheckpointInfo* info_out) {
  CheckpointInfo info = read_checkpoint_info(path, grid.world());
  try {
    info.config.validate(grid.tp_size());
  } catch (const ConfigError& e) {
    // Every rank read the same config and validates it the same way: agreed.
    throw AgreedError("checkpoint '" + path + "' (" + info.config.describe() + ") cannot be loaded at --tp " +
                      std::to_string(grid.tp_size()) + ": " + e.what());
  }
  auto model = std::make_unique<TransformerModel>(info.config, grid.tp());
  CheckpointInfo loaded = load_checkpoint(path, *model, grid);
  if (info_out) *info_out = std::move(loaded);
  return model;
}

}  // namespace unlearn
