// Model configuration for the two architecture families (design section 4). model layer.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace unlearn {

enum class Family { kGpt2, kLlama };

struct ModelConfig {
  Family family = Family::kGpt2;
  std::int64_t vocab_size = 256;
  std::int64_t d_model = 64;
  std::int64_t n_layers = 2;
  std::int64_t n_heads = 4;
  std::int64_t n_kv_heads = 4;     // LLaMA grouped-query attention; GPT-2: equal to n_heads
  std::int64_t d_ff = 256;         // GPT-2: 4 * d_model by convention
  std::int64_t max_positions = 128;  // GPT-2 learned positions; LLaMA: longest document it may see
  double norm_eps = 1e-5;          // GPT-2 LayerNorm: always 1e-5
  double rope_theta = 10000.0;     // LLaMA
  at::ScalarType dtype = at::kFloat;
  std::string device = "cpu";

  std::int64_t head_dim() const { return d_model / n_heads; }
  /// Throws ConfigError (same message on every rank) when the sizes are inconsistent or `tp` cannot split them.
  void validate(int tp) const;
  /// key = value pairs, the form stored in checkpoint attributes and read from config files.
  std::map<std::string, std::string> to_map() const;
  static ModelConfig from_map(const std::map<std::string, std::string>& kv);
  std::string describe() const;  // one line for logs
};

std::string to_string(Family f);
Family parse_family(const std::string& name);
at::ScalarType parse_dtype_name(const std::string& name);  // float32 | float64
std::string dtype_name(at::ScalarType t);

/// [start, start + size) of part `index` when `n` items are split into `parts` contiguous parts, the first
/// n % parts parts one larger (uneven vocabulary shards: GPT-2's 50257 = 29 x 1733 has no small divisor).
struct Range {
  std::int64_t start = 0;
  std::int64_t size = 0;
  std::int64_t end() const { return start + size; }
};
Range split_range(std::int64_t n, int parts, int index);

}  // namespace unlearn
