// ModelConfig validation, (de)serialisation and the shard arithmetic.
#include "unlearn/model/config.h"

#include <sstream>

#include "unlearn/parse/checkpoint_attributes.h"
#include "unlearn/util/error.h"

namespace unlearn {

std::string to_string(Family f) { return f == Family::kGpt2 ? "gpt2" : "llama"; }

Family parse_family(const std::string& name) {
  if (name == "gpt2") return Family::kGpt2;
  if (name == "llama") return Family::kLlama;
  UNLEARN_THROW(ConfigError, "unknown model family '" << name << "' (expected gpt2 or llama)");
}

at::ScalarType parse_dtype_name(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "float64") return at::kDouble;
  UNLEARN_THROW(ConfigError, "unsupported model dtype '" << name << "' (expected float32 or float64)");
}

std::string dtype_name(at::ScalarType t) {
  if (t == at::kFloat) return "float32";
  if (t == at::kDouble) return "float64";
  UNLEARN_THROW(ConfigError, "unsupported model dtype " << t);
}

Range split_range(std::int64_t n, int parts, int index) {
  UNLEARN_CHECK(parts > 0 && index >= 0 && index < parts, "split_range: bad part " << index << " of " << parts);
  const std::int64_t base = n / parts, extra = n % parts;
  Range r;
  r.size = base + (index < extra ? 1 : 0);
  r.start = index * base + std::min<std::int64_t>(index, extra);
  return r;
}

void ModelConfig::validate(int tp) const {
  auto positive = [](const char* what, std::int64_t v) {
    if (v <= 0) UNLEARN_THROW(ConfigError, "model config: " << what << " must be positive, got " << v);
  };
  positive("vocab_size", vocab_size);
  positive("d_model", d_model);
  positive("n_layers", n_layers);
  positive("n_heads", n_heads);
  positive("n_kv_heads", n_kv_heads);
  positive("d_ff", d_ff);
  positive("max_positions", max_positions);
  if (d_model % n_heads != 0)
    UNLEARN_THROW(ConfigError, "model config: d_model " << d_model << " is not a multiple of n_heads " << n_heads);
  if (family == Family::kGpt2 && n_kv_heads != n_heads)
    UNLEARN_THROW(ConfigError, "model config: GPT-2 has no grouped-query attention (n_kv_heads " << n_kv_heads
                                                                                           << " != n_heads " << n_heads
                                                                                           << ")");
  if (n_heads % n_kv_heads != 0)
    UNLEARN_THROW(ConfigError, "model config: n_heads " << n_heads << " is not a multiple of n_kv_heads " << n_kv_heads);
  if (family == Family::kLlama && head_dim() % 2 != 0)
    UNLEARN_THROW(ConfigError, "model config: rotary embeddings need an even head_dim, got " << head_dim());
  if (!(norm_eps > 0)) UNLEARN_THROW(ConfigError, "model config: norm_eps must be positive");
  if (!(rope_theta > 0)) UNLEARN_THROW(ConfigError, "model config: rope_theta must be positive");
  if (tp < 1) UNLEARN_THROW(ConfigError, "--tp must be at least 1");
  if (n_heads % tp != 0)
    UNLEARN_THROW(ConfigError, "--tp " << tp << " does not divide the " << n_heads
                                       << " attention heads: pick a TP size that divides n_heads");
  if (n_kv_heads % tp != 0 && tp % n_kv_heads != 0)
    UNLEARN_THROW(ConfigError, "--tp " << tp << " and n_kv_heads " << n_kv_heads
                                       << " are incompatible: KV heads are split when TP divides their count and "
                                          "replicated when their count divides TP");
  if (vocab_size < tp) UNLEARN_THROW(ConfigError, "--tp " << tp << " exceeds the vocabulary size " << vocab_size);
  if (d_ff < tp) UNLEARN_THROW(ConfigError, "--tp " << tp << " exceeds d_ff " << d_ff);
  // "meta": shapes without memory, for estimates (unlearn forget --dry-run).
  if (device != "cpu" && device != "meta" && device.rfind("cuda", 0) != 0)
    UNLEARN_THROW(ConfigError, "model config: unknown device '" << device << "' (cpu or cuda[:N])");
}

std::map<std::string, std::string> ModelConfig::to_map() const {
  auto num = [](double v) {
    std::ostringstream os;
    os.precision(17);
    os << v;
    return os.str();
  };
  return {{"family", to_string(family)},
          {"vocab_size", std::to_string(vocab_size)},
          {"d_model", std::to_string(d_model)},
          {"n_layers", std::to_string(n_layers)},
          {"n_heads", std::to_string(n_heads)},
          {"n_kv_heads", std::to_string(n_kv_heads)},
          {"d_ff", std::to_string(d_ff)},
          {"max_positions", std::to_string(max_positions)},
          {"norm_eps", num(norm_eps)},
          {"rope_theta", num(rope_theta)},
          {"dtype", dtype_name(dtype)},
          {"device", device}};
}

ModelConfig ModelConfig::from_map(const std::map<std::string, std::string>& kv) {
  const ModelConfig d;
  ModelConfigValues defaults;
  defaults.family = to_string(d.family);
  defaults.vocab_size = d.vocab_size;
  defaults.d_model = d.d_model;
  defaults.n_layers = d.n_layers;
  defaults.n_heads = d.n_heads;
  defaults.n_kv_heads = d.n_kv_heads;
  defaults.d_ff = d.d_ff;
  defaults.max_positions = d.max_positions;
  defaults.norm_eps = d.norm_eps;
  defaults.rope_theta = d.rope_theta;
  defaults.dtype = dtype_name(d.dtype);
  defaults.device = d.device;
  // The text is decoded by the parse layer (fuzzed, tests/fuzz); only the conversion to LibTorch types is here.
  const ModelConfigValues v = decode_model_config(kv, defaults);
  ModelConfig c;
  c.family = parse_family(v.family);
  c.vocab_size = v.vocab_size;
  c.d_model = v.d_model;
  c.n_layers = v.n_layers;
  c.n_heads = v.n_heads;
  c.n_kv_heads = v.n_kv_heads;
  c.d_ff = v.d_ff;
  c.max_positions = v.max_positions;
  c.norm_eps = v.norm_eps;
  c.rope_theta = v.rope_theta;
  c.dtype = parse_dtype_name(v.dtype);
  c.device = v.device;
  return c;
}

std::string ModelConfig::describe() const {
  std::ostringstream os;
  os << to_string(family) << " d_model " << d_model << ", " << n_layers << " layers, " << n_heads << " heads";
  if (n_kv_heads != n_heads) os << " (" << n_kv_heads << " KV)";
  os << ", d_ff " << d_ff << ", vocab " << vocab_size << ", " << dtype_name(dtype) << " on " << device;
  return os.str();
}

}  // namespace unlearn
