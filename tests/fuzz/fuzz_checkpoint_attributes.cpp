// Fuzz target: checkpoint attribute values decoded from memory, the code the checkpoint reader runs after
// libhdf5 hands the values over (io/checkpoint.cpp interpret -> decode_checkpoint_attributes; ModelConfig::from_map
// -> decode_model_config). The input is an attribute record (encode_attribute_record's format, the one rank 0
// broadcasts when writing). Invariants: an accepted record re-encodes to exactly the input bytes; an accepted
// checkpoint has a supported version, a non-negative step, a 16-hex-digit digest and config values that read back.
#include <string>

#include "fuzz_common.h"
#include "unlearn/parse/checkpoint_attributes.h"

using namespace unlearn;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view record = fuzz::bytes(data, size);
  Attributes attrs;
  if (!fuzz::accepts([&] { attrs = decode_attribute_record(record); })) return 0;
  FUZZ_ASSERT(encode_attribute_record(attrs) == record);

  // The config.* values alone, as a --config file or the command line would give them.
  std::map<std::string, std::string> kv;
  for (const auto& [key, value] : attrs) kv[key] = attribute_to_string(value);
  fuzz::accepts([&] { decode_model_config(kv); });

  CheckpointAttributes c;
  if (!fuzz::accepts([&] { c = decode_checkpoint_attributes(attrs, "ckpt.h5"); })) return 0;
  FUZZ_ASSERT(c.format_version == kCheckpointFormatVersion && c.step >= 0 && c.content_digest.size() == 16);
  FUZZ_ASSERT(parse_storage_type(storage_type_name(c.storage)) == c.storage);
  const ModelConfigValues cfg = decode_model_config(c.config_text);  // accepted above: must not throw now
  FUZZ_ASSERT(cfg.family == "gpt2" || cfg.family == "llama");
  FUZZ_ASSERT(cfg.dtype == "float32" || cfg.dtype == "float64");
  // Writing the decoded config back as text (ModelConfig::to_map's form) and decoding it again is stable.
  const std::map<std::string, std::string> text = {
      {"family", cfg.family},
      {"vocab_size", std::to_string(cfg.vocab_size)},
      {"d_model", std::to_string(cfg.d_model)},
      {"n_layers", std::to_string(cfg.n_layers)},
      {"n_heads", std::to_string(cfg.n_heads)},
      {"n_kv_heads", std::to_string(cfg.n_kv_heads)},
      {"d_ff", std::to_string(cfg.d_ff)},
      {"max_positions", std::to_string(cfg.max_positions)},
      {"norm_eps", attribute_to_string(cfg.norm_eps)},
      {"rope_theta", attribute_to_string(cfg.rope_theta)},
      {"dtype", cfg.dtype},
      {"device", cfg.device}};
  const ModelConfigValues back = decode_model_config(text);
  FUZZ_ASSERT(back.vocab_size == cfg.vocab_size && back.d_model == cfg.d_model && back.n_layers == cfg.n_layers &&
              back.n_heads == cfg.n_heads && back.n_kv_heads == cfg.n_kv_heads && back.d_ff == cfg.d_ff &&
              back.max_positions == cfg.max_positions && back.norm_eps == cfg.norm_eps &&
              back.rope_theta == cfg.rope_theta && back.family == cfg.family && back.dtype == cfg.dtype);
  return 0;
}
