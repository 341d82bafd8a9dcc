// Checkpoint attribute values: storage type names, the model configuration's text form, the root attributes of a
// model checkpoint and the broadcast record. Everything here sees only bytes already in memory.
#include "unlearn/parse/checkpoint_attributes.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>

#include "unlearn/util/error.h"

namespace unlearn {
namespace {

/// Plain decimal with an optional sign, nothing around it; false when it does not fit 64 bits.
bool decimal_int64(std::string_view s, std::int64_t& out) {
  std::size_t i = 0;
  const bool negative = !s.empty() && s[0] == '-';
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) i = 1;
  if (i == s.size()) return false;
  // Accumulate the magnitude as unsigned so INT64_MIN is representable without signed overflow.
  const std::uint64_t limit = negative ? std::uint64_t{1} << 63 : std::uint64_t{INT64_MAX};
  std::uint64_t v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    const auto digit = static_cast<std::uint64_t>(s[i] - '0');
    if (v > (limit - digit) / 10) return false;
    v = v * 10 + digit;
  }
  out = negative ? static_cast<std::int64_t>(0 - v) : static_cast<std::int64_t>(v);
  return true;
}

/// Canonical unsigned decimal (what std::to_string writes: no sign, no leading zeros); false otherwise.
bool canonical_uint64(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return false;
    v = v * 10 + digit;
  }
  out = v;
  return true;
}

std::int64_t config_int(const char* key, const std::string& s) {
  std::int64_t v = 0;
  if (!decimal_int64(s, v)) UNLEARN_THROW(ConfigError, "model config: " << key << " = '" << s << "' is not an integer");
  return v;
}

double config_number(const char* key, const std::string& s) {
  // strtod alone would skip leading white space and read "nan", "inf" and hex floats: none of them belongs here.
  const bool plain = !s.empty() && s.find_first_of(" \t\n\v\f\r") == std::string::npos;
  char* end = nullptr;
  const double v = plain ? std::strtod(s.c_str(), &end) : 0.0;
  if (!plain || end != s.c_str() + s.size() || !std::isfinite(v) || s.find_first_of("xXnN") != std::string::npos)
    UNLEARN_THROW(ConfigError, "model config: " << key << " = '" << s << "' is not a finite number");
  return v;
}

}  // namespace

std::string storage_type_name(StorageType t) {
  switch (t) {
    case StorageType::kFloat32: return "float32";
    case StorageType::kFloat64: return "float64";
    case StorageType::kFloat16: return "float16";
    case StorageType::kBFloat16: return "bf16";
  }
  return "?";
}

StorageType parse_storage_type(const std::string& name) {
  if (name == "float32" || name == "f32") return StorageType::kFloat32;
  if (name == "float64" || name == "f64") return StorageType::kFloat64;
  if (name == "float16" || name == "f16") return StorageType::kFloat16;
  if (name == "bf16" || name == "bfloat16") return StorageType::kBFloat16;
  throw ConfigError("unknown storage dtype '" + name + "' (expected float32, float64, float16 or bf16)");
}

std::string attribute_to_string(const AttributeValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  std::ostringstream os;
  os.precision(17);
  os << std::get<double>(v);
  return os.str();
}

ModelConfigValues decode_model_config(const std::map<std::string, std::string>& kv,
                                      const ModelConfigValues& defaults) {
  ModelConfigValues c = defaults;
  auto get = [&](const char* key) -> const std::string* {
    const auto it = kv.find(key);
    return it == kv.end() ? nullptr : &it->second;
  };
  if (const auto* v = get("family")) {
    if (*v != "gpt2" && *v != "llama")
      UNLEARN_THROW(ConfigError, "unknown model family '" << *v << "' (expected gpt2 or llama)");
    c.family = *v;
  }
  if (c.family == "llama") c.norm_eps = 1e-6;
  for (auto [key, field] : {std::pair{"vocab_size", &c.vocab_size}, {"d_model", &c.d_model},
                            {"n_layers", &c.n_layers}, {"n_heads", &c.n_heads}, {"d_ff", &c.d_ff},
                            {"max_positions", &c.max_positions}})
    if (const auto* v = get(key)) *field = config_int(key, *v);
  c.n_kv_heads = c.n_heads;
  if (const auto* v = get("n_kv_heads")) c.n_kv_heads = config_int("n_kv_heads", *v);
  if (const auto* v = get("norm_eps")) c.norm_eps = config_number("norm_eps", *v);
  if (const auto* v = get("rope_theta")) c.rope_theta = config_number("rope_theta", *v);
  if (const auto* v = get("dtype")) {
    if (*v != "float32" && *v != "float64")
      UNLEARN_THROW(ConfigError, "unsupported model dtype '" << *v << "' (expected float32 or float64)");
    c.dtype = *v;
  }
  if (const auto* v = get("device")) c.device = *v;
  static const char* kKnown[] = {"family", "vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff",
                                 "max_positions", "norm_eps", "rope_theta", "dtype", "device"};
  for (const auto& [key, value] : kv) {
    bool known = false;
    for (const char* k : kKnown) known = known || key == k;
    if (!known) UNLEARN_THROW(ConfigError, "model config: unknown key '" << key << "'");
  }
  return c;
}

CheckpointAttributes decode_checkpoint_attributes(const Attributes& attrs, const std::string& path) {
  auto get = [&](const char* key) -> const AttributeValue* {
    const auto it = attrs.find(key);
    return it == attrs.end() ? nullptr : &it->second;
  };
  auto get_string = [&](const char* key) {
    const AttributeValue* v = get(key);
    if (!v) UNLEARN_THROW(IoError, "checkpoint '" << path << "' lacks the attribute '" << key << "'");
    return attribute_to_string(*v);
  };
  auto get_int = [&](const char* key) {
    const AttributeValue* v = get(key);
    const auto* i = v ? std::get_if<std::int64_t>(v) : nullptr;
    if (!i) UNLEARN_THROW(IoError, "checkpoint '" << path << "' lacks the integer attribute '" << key << "'");
    return *i;
  };

  const AttributeValue* format = get("format");
  if (!format || attribute_to_string(*format) != kCheckpointFormat)
    UNLEARN_THROW(IoError, "'" << path << "' is an HDF5 file but not an unlearn checkpoint (no format = "
                               << kCheckpointFormat << " attribute)");
  CheckpointAttributes out;
  out.format_version = get_int("format_version");
  if (out.format_version < 1 || out.format_version > kCheckpointFormatVersion)
    UNLEARN_THROW(IoError, "checkpoint '" << path << "' has format_version " << out.format_version
                                          << "; this build reads version " << kCheckpointFormatVersion);
  const std::string kind = get_string("kind");
  if (kind != "model") UNLEARN_THROW(IoError, "checkpoint '" << path << "' holds '" << kind << "', not a model");

  const std::string cp = "config.", pp = "provenance.";
  for (const auto& [key, value] : attrs) {
    if (key.compare(0, cp.size(), cp) == 0) out.config_text[key.substr(cp.size())] = attribute_to_string(value);
    if (key.compare(0, pp.size(), pp) == 0) out.provenance[key.substr(pp.size())] = attribute_to_string(value);
  }
  try {
    decode_model_config(out.config_text);
  } catch (const ConfigError& e) {
    UNLEARN_THROW(IoError, "checkpoint '" << path << "' holds an invalid model config: " << e.what());
  }
  out.step = get_int("step");
  if (out.step < 0) UNLEARN_THROW(IoError, "checkpoint '" << path << "' has the negative step " << out.step);
  out.tokenizer = get_string("tokenizer");
  try {
    out.storage = parse_storage_type(get_string("dtype"));
  } catch (const ConfigError& e) {
    UNLEARN_THROW(IoError, "checkpoint '" << path << "': " << e.what());
  }
  out.content_digest = get_string("content_digest");
  bool hex = out.content_digest.size() == 16;
  for (char c : out.content_digest) hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!hex)
    UNLEARN_THROW(IoError, "checkpoint '" << path << "': content_digest '" << out.content_digest
                                          << "' is not 16 lower-case hex digits");
  return out;
}

std::string encode_attribute_record(const Attributes& attrs) {
  std::string out;
  for (const auto& [key, value] : attrs) {
    std::string v;
    char tag = 's';
    if (const auto* s = std::get_if<std::string>(&value)) {
      v = *s;
    } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
      tag = 'i';
      v = std::to_string(*i);
    } else {
      tag = 'd';
      std::uint64_t bits = 0;
      const double d = std::get<double>(value);
      std::memcpy(&bits, &d, sizeof(bits));
      v = std::to_string(bits);
    }
    out += tag;
    out += std::to_string(key.size()) + ':' + key;
    out += std::to_string(v.size()) + ':' + v;
  }
  return out;
}

Attributes decode_attribute_record(std::string_view record) {
  Attributes out;
  std::size_t pos = 0;
  auto fail = [&](const char* why) -> void {
    UNLEARN_THROW(IoError, "malformed attribute record at byte " << pos << ": " << why);
  };
  auto field = [&]() -> std::string {
    const std::size_t colon = record.find(':', pos);
    std::uint64_t n = 0;
    if (colon == std::string_view::npos || !canonical_uint64(record.substr(pos, colon - pos), n))
      fail("expected <length>:");
    if (n > record.size() - colon - 1) fail("length runs past the end");
    std::string f(record.substr(colon + 1, static_cast<std::size_t>(n)));
    pos = colon + 1 + static_cast<std::size_t>(n);
    return f;
  };
  while (pos < record.size()) {
    const char tag = record[pos++];
    if (tag != 's' && tag != 'i' && tag != 'd') fail("unknown tag");
    std::string key = field();
    if (!out.empty() && !(out.rbegin()->first < key)) fail("keys are not in increasing order");
    const std::string v = field();
    if (tag == 's') {
      out.emplace(std::move(key), v);
    } else if (tag == 'i') {
      std::int64_t i = 0;
      if (!decimal_int64(v, i) || std::to_string(i) != v) fail("not a canonical integer");
      out.emplace(std::move(key), i);
    } else {
      std::uint64_t bits = 0;
      if (!canonical_uint64(v, bits)) fail("not the bits of a double");
      double d = 0;
      std::memcpy(&d, &bits, sizeof(d));
      out.emplace(std::move(key), d);
    }
  }
  return out;
}

}  // namespace unlearn
