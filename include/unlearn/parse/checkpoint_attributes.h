// Decoding of checkpoint attribute values once libhdf5 has handed them over: the storage type names, the model
// configuration's key = value form (config.* attributes, also --config files and the command line), the root
// attributes of a model checkpoint, and the record in which rank 0 broadcasts attributes to the other ranks.
// parse layer: no LibTorch, no HDF5, so that the fuzzer (tests/fuzz) runs exactly the code the reader runs.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>

namespace unlearn {

/// Element types a checkpoint stores. f16 is IEEE binary16; bf16 is stored as uint16 words with a dtype attribute.
enum class StorageType { kFloat32, kFloat64, kFloat16, kBFloat16 };
std::string storage_type_name(StorageType t);             // float32 | float64 | float16 | bf16
StorageType parse_storage_type(const std::string& name);  // also f32 f64 f16 bfloat16; ConfigError otherwise

/// One scalar attribute as read from (or written to) a file, and a set of them by name.
using AttributeValue = std::variant<std::string, std::int64_t, double>;
using Attributes = std::map<std::string, AttributeValue>;
/// Text form: strings as they are, integers in decimal, doubles with 17 significant digits.
std::string attribute_to_string(const AttributeValue& v);

/// The values of a model configuration without LibTorch types (ModelConfig::from_map converts them).
struct ModelConfigValues {
  std::string family = "gpt2";  // gpt2 | llama
  std::int64_t vocab_size = 256;
  std::int64_t d_model = 64;
  std::int64_t n_layers = 2;
  std::int64_t n_heads = 4;
  std::int64_t n_kv_heads = 4;
  std::int64_t d_ff = 256;
  std::int64_t max_positions = 128;
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  std::string dtype = "float32";  // float32 | float64
  std::string device = "cpu";
};

/// Decodes key = value text over `defaults`: keys present replace the default, n_kv_heads defaults to n_heads and
/// norm_eps to 1e-6 for LLaMA. Integers are plain decimal (optional sign), numbers as strtod reads them, both
/// without surrounding text. ConfigError ("model config: ...") for an unknown key, family or dtype, or a value that
/// is not a number. Sizes are not checked here (ModelConfig::validate does that with the TP size).
ModelConfigValues decode_model_config(const std::map<std::string, std::string>& kv,
                                      const ModelConfigValues& defaults = {});

/// What a model checkpoint's root attributes say (docs/checkpoint-format.md).
struct CheckpointAttributes {
  std::int64_t format_version = 0;
  std::int64_t step = 0;
  std::string tokenizer;
  StorageType storage = StorageType::kFloat32;
  std::string content_digest;                     // 16 lower-case hex digits
  std::map<std::string, std::string> config_text;  // config.* without the prefix, as text; decode_model_config
                                                   // accepts it
  std::map<std::string, std::string> provenance;   // provenance.* without the prefix
};

inline constexpr const char* kCheckpointFormat = "unlearn-checkpoint";
inline constexpr std::int64_t kCheckpointFormatVersion = 1;

/// Checks and decodes the root attributes of the model checkpoint `path` (named in messages): format, a
/// format_version this build reads, kind = model, integer step, string tokenizer, dtype, content_digest, config.*
/// (decode_model_config), provenance.*. IoError naming the file and the attribute otherwise.
CheckpointAttributes decode_checkpoint_attributes(const Attributes& attrs, const std::string& path);

/// A self-delimiting byte record of attributes (rank 0 broadcasts the attributes it writes): per attribute a tag
/// ('s' string, 'i' integer, 'd' double bits), then "<length>:<key>" and "<length>:<value text>".
std::string encode_attribute_record(const Attributes& attrs);
/// Inverse of encode_attribute_record; IoError on anything it would not have produced.
Attributes decode_attribute_record(std::string_view record);

}  // namespace unlearn
