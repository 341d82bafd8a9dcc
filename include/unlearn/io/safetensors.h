// Hugging Face safetensors <-> our HDF5 checkpoints (design section 5): GPT-2 names with Conv1D weights transposed
// and the fused c_attn split into Q, K, V (and fused again on export), LLaMA names; f32, f16, bf16 kept bit-exact.
// io layer. The header decoding lives in the torch-free parse library (unlearn/parse/safetensors.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "unlearn/comm/communicator.h"
#include "unlearn/io/checkpoint.h"
#include "unlearn/model/config.h"

namespace unlearn {

/// Name and global shape of every parameter of a model with this config, in TransformerModel's order (no
/// allocation: converters of large models need the list without the model).
struct ParameterSpec {
  std::string name;
  std::vector<std::int64_t> shape;
};
std::vector<ParameterSpec> parameter_specs(const ModelConfig& config);

/// Model config from a Hugging Face config.json (model_type gpt2 or llama). IoError for settings our models do not
/// compute (another activation, rope scaling, biases in LLaMA attention, ...). The compute dtype is float32.
ModelConfig config_from_hf_json(const std::string& json_text, const std::string& what);
/// config.json text for our config (the fields Hugging Face's GPT2Config / LlamaConfig read).
std::string hf_config_json(const ModelConfig& config, StorageType storage);

struct ImportOptions {
  std::string config_path;            // config.json; default: beside the safetensors file(s)
  std::optional<StorageType> storage; // default: the source's dtype (all tensors must share it)
  SaveOptions save;                   // step, tokenizer, provenance of the new checkpoint
};

/// `source`: a directory (config.json + model.safetensors or model.safetensors.index.json and its shards) or one
/// .safetensors file. Writes the checkpoint `output` (commit protocol of write_tensor_file). Collective over `world`;
/// rank 0 reads the source (memory-mapped, one tensor copied at a time), every rank takes part in the write.
CheckpointInfo import_safetensors(const std::string& source, const std::string& output, Communicator& world,
                                  const ImportOptions& options = {});

struct ExportOptions {
  std::optional<StorageType> storage;  // default: the checkpoint's storage type
};

/// Writes `out_dir`/model.safetensors and `out_dir`/config.json (Hugging Face names and layout) from a checkpoint.
/// Refuses to replace existing files; the safetensors file appears by rename once complete. Collective; rank 0
/// holds the whole model while writing.
void export_safetensors(const std::string& checkpoint, const std::string& out_dir, Communicator& world,
                        const ExportOptions& options = {});

}  // namespace unlearn
