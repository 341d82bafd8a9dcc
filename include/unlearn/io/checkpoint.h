// Parallel HDF5 checkpoints (design section 5): one file of global tensors, each rank writing and reading only its
// own hyperslab collectively, committed atomically by rename, checksummed (Fletcher32 + V110 metadata checksums).
// io layer: depends on model and comm; the format is specified in docs/checkpoint-format.md.
//
// Every function here is collective over the communicator it takes, and every error it throws (IoError for files,
// ConfigError for layouts the model cannot take) is thrown identically on every rank, after an all-reduced status:
// callers may treat it like a configuration error (one message, same exit code everywhere).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "unlearn/comm/communicator.h"
#include "unlearn/comm/process_grid.h"
#include "unlearn/model/config.h"
#include "unlearn/model/transformer.h"
#include "unlearn/parse/checkpoint_attributes.h"

namespace unlearn {

// StorageType (with storage_type_name, parse_storage_type), AttributeValue, Attributes and attribute_to_string come
// from unlearn/parse/checkpoint_attributes.h: their decoding is torch-free and fuzzed (tests/fuzz).
StorageType storage_type_of(at::ScalarType t);                    // ConfigError for non-float types
at::ScalarType scalar_type_of(StorageType t);

// ---------------------------------------------------------------------------------------------------------------
// Generic layer: files of named global tensors, each rank holding one block of each.

/// This rank's block of one global tensor: the whole tensor (shard_dim = -1) or the slice
/// [shard_start, shard_start + local.size(shard_dim)) along shard_dim.
struct TensorBlock {
  std::string name;
  at::Tensor local;
  std::vector<std::int64_t> global_shape;
  int shard_dim = -1;
  std::int64_t shard_start = 0;
  /// Writing: this rank stores its block. Exactly one rank must own each element (identical copies held by other
  /// TP or DP ranks set false). Reading: every block is filled; owners feed the content digest.
  bool owner = true;
};

struct WriteOptions {
  /// Element type on disk; unset: each tensor's own dtype.
  std::optional<StorageType> storage;
  /// Target bytes per chunk (the unit of the Fletcher32 checksum and of partial reads).
  std::int64_t chunk_bytes = 4 << 20;
  /// Called on every rank after each tensor's collective write (progress; fault-injection tests).
  std::function<void(std::size_t index, const std::string& name)> on_tensor_written;
};

/// What a file holds, from metadata alone (identical on every rank).
struct TensorInfo {
  std::string name;
  std::vector<std::int64_t> shape;
  StorageType storage = StorageType::kFloat32;
  std::vector<std::int64_t> chunk;  // empty: not chunked
  bool fletcher32 = false;
};
struct FileInfo {
  std::string path;
  Attributes attributes;           // root attributes
  std::vector<TensorInfo> tensors; // in name order
  std::int64_t file_bytes = 0;
  const TensorInfo* find(const std::string& name) const;
};

/// Writes `blocks` and `attributes` (taken from rank 0) to `final_path` with the commit protocol: a temporary
/// `<final>.tmp.<jobid>.<nonce>` in the same directory, collective writes, flush, collective close, agreed success,
/// then rank 0 renames it (never replacing an existing file) and fsyncs the directory. On any failure rank 0 removes
/// the temporary and nothing appears under `final_path`. Adds the root attribute `content_digest`; returns it.
std::string write_tensor_file(const std::string& final_path, Communicator& world, const Attributes& attributes,
                              const std::vector<TensorBlock>& blocks, const WriteOptions& options = {});

/// Root attributes and the tensor list. Refuses temporary names.
FileInfo read_file_info(const std::string& path, Communicator& world);

/// Fills every block's `local` (shapes must match the file; dtypes convert) from `path`. The status is all-reduced
/// after the last block, so a checksum error on any rank fails every rank naming the tensor.
/// `verify_digest`: recompute the content digest over the owners' blocks and compare it with the file's (set it only
/// when the blocks cover every tensor of the file).
void read_tensor_blocks(const std::string& path, Communicator& world, std::vector<TensorBlock>& blocks,
                        bool verify_digest = false);

/// Result of reading every tensor of a file split across the ranks (for `unlearn inspect`).
struct VerifyResult {
  std::vector<std::string> tensor_errors;  // per FileInfo::tensors entry; empty string: checksums passed
  std::string digest_stored, digest_computed;
  bool ok() const;
};
VerifyResult verify_tensor_file(const std::string& path, Communicator& world, const FileInfo& info);

/// True when the file name has the temporary form `<name>.tmp.<jobid>.<16 hex digits>`.
bool is_temporary_checkpoint_name(const std::string& path);

// ---------------------------------------------------------------------------------------------------------------
// Model checkpoints.

/// One block per model parameter holding `values[i]` (shaped like that parameter's shard) under the name
/// `prefix` + parameter name, with the parameter's placement and one owner per element: optimizer and solver state
/// stored in the checkpoint layout.
std::vector<TensorBlock> parameter_blocks(const TransformerModel& model, const ProcessGrid& grid,
                                          const std::vector<at::Tensor>& values, const std::string& prefix);
/// The same for the parameters `subset` (model.select()), `values[j]` shaped like parameter subset[j]'s shard.
std::vector<TensorBlock> parameter_blocks(const TransformerModel& model, const ProcessGrid& grid,
                                          const std::vector<std::size_t>& subset,
                                          const std::vector<at::Tensor>& values, const std::string& prefix);

/// Step-numbered final name, `step-00000012.h5`; never reused (writers refuse existing files).
std::string checkpoint_file_name(std::int64_t step);

struct SaveOptions {
  std::int64_t step = 0;
  std::string tokenizer;              // tokenizer identity; empty until a tokenizer is in use
  std::optional<std::uint64_t> seed;  // seed of the run that produced the weights
  std::string input_digest;           // content_digest of the checkpoint these weights derive from
  std::string command_line;           // default: this process's command line
  std::map<std::string, std::string> provenance;  // more provenance.* attributes
  WriteOptions io;
};

struct CheckpointInfo {
  FileInfo file;
  ModelConfig config;
  std::int64_t step = 0;
  std::string tokenizer;
  StorageType storage = StorageType::kFloat32;
  std::string content_digest;
  std::map<std::string, std::string> provenance;  // provenance.* without the prefix
};

/// Saves the model (global tensors; every rank of `grid` takes part, only dp_rank 0 writes, and only one rank per
/// replicated tensor). Returns the new file's info.
CheckpointInfo save_checkpoint(const std::string& path, const TransformerModel& model, const ProcessGrid& grid,
                               const SaveOptions& options = {});

/// The root attributes of a model checkpoint (format, step, dtype, tokenizer, config.*, provenance.*), for writers
/// of model checkpoints other than save_checkpoint (convert). `rank_layout` is recorded as provenance.
Attributes model_checkpoint_attributes(const ModelConfig& config, StorageType storage, const SaveOptions& options,
                                      const std::string& rank_layout);

/// Metadata only: config, step, provenance, tensor list. IoError for files that are not model checkpoints.
CheckpointInfo read_checkpoint_info(const std::string& path, Communicator& world);

/// Loads the checkpoint into `model`, whatever TP it was written at. Missing, extra or wrongly shaped tensors are
/// IoErrors naming the tensor; the content digest is verified.
CheckpointInfo load_checkpoint(const std::string& path, TransformerModel& model, const ProcessGrid& grid);

/// Builds the model the checkpoint describes on grid.tp() (ConfigError when the TP size cannot split it) and loads it.
std::unique_ptr<TransformerModel> load_model(const std::string& path, const ProcessGrid& grid,
                                             CheckpointInfo* info = nullptr);

/// Checkpoint attributes that are provenance (excluded from "bit-identical"): names starting with this prefix.
inline constexpr const char* kProvenancePrefix = "provenance.";
inline constexpr const char* kConfigPrefix = "config.";

}  // namespace unlearn
