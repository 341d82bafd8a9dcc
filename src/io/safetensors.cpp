// Hugging Face safetensors import and export: name maps for GPT-2 (Conv1D weights stored [in, out], Q/K/V fused
// in c_attn) and LLaMA, memory-mapped reading on rank 0, collective HDF5 writing. io layer.
#include "unlearn/io/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "collective.h"
#include "files.h"
#include "unlearn/parse/json.h"
#include "unlearn/parse/safetensors.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

using detail::Collective;

// ---- parameter names ----------------------------------------------------------------------------------------

/// Where one of our parameters lives in a Hugging Face checkpoint: tensor `hf`, transposed first when `transpose`
/// (Conv1D [in, out] -> [out, in]), then rows [part * rows, (part + 1) * rows) when part >= 0 (c_attn's Q, K, V).
struct HfSource {
  std::string hf;
  bool transpose = false;
  int part = -1;
};

/// "layers.3.attn.q_proj.weight" -> (3, "attn.q_proj.weight"); false for non-layer names.
bool split_layer(const std::string& name, std::int64_t& layer, std::string& rest) {
  if (name.rfind("layers.", 0) != 0) return false;
  const auto dot = name.find('.', 7);
  layer = std::stoll(name.substr(7, dot - 7));
  rest = name.substr(dot + 1);
  return true;
}

HfSource hf_source(const ModelConfig& c, const std::string& name) {
  std::int64_t l = 0;
  std::string rest;
  const bool in_layer = split_layer(name, l, rest);
  if (c.family == Family::kGpt2) {
    if (!in_layer) return {name};  // wte, wpe, ln_f
    const std::string h = "h." + std::to_string(l) + ".";
    static const std::map<std::string, HfSource> kLayer = {
        {"ln_1.weight", {"ln_1.weight"}},
        {"ln_1.bias", {"ln_1.bias"}},
        {"ln_2.weight", {"ln_2.weight"}},
        {"ln_2.bias", {"ln_2.bias"}},
        {"attn.q_proj.weight", {"attn.c_attn.weight", true, 0}},
        {"attn.k_proj.weight", {"attn.c_attn.weight", true, 1}},
        {"attn.v_proj.weight", {"attn.c_attn.weight", true, 2}},
        {"attn.q_proj.bias", {"attn.c_attn.bias", false, 0}},
        {"attn.k_proj.bias", {"attn.c_attn.bias", false, 1}},
        {"attn.v_proj.bias", {"attn.c_attn.bias", false, 2}},
        {"attn.o_proj.weight", {"attn.c_proj.weight", true}},
        {"attn.o_proj.bias", {"attn.c_proj.bias"}},
        {"mlp.up_proj.weight", {"mlp.c_fc.weight", true}},
        {"mlp.up_proj.bias", {"mlp.c_fc.bias"}},
        {"mlp.down_proj.weight", {"mlp.c_proj.weight", true}},
        {"mlp.down_proj.bias", {"mlp.c_proj.bias"}},
    };
    HfSource s = kLayer.at(rest);
    s.hf = h + s.hf;
    return s;
  }
  if (name == "lm_head.weight") return {"lm_head.weight"};
  if (!in_layer) return {"model." + name};  // embed_tokens, norm
  const std::string pre = "model.layers." + std::to_string(l) + ".";
  if (rest.rfind("attn.", 0) == 0) return {pre + "self_attn." + rest.substr(5)};
  return {pre + rest};
}

/// Hugging Face tensors that carry no weights we need (buffers of older exports), per family.
bool ignorable(const ModelConfig& c, const std::string& hf) {
  auto ends = [&](const char* suffix) {
    const std::size_t n = std::strlen(suffix);
    return hf.size() >= n && hf.compare(hf.size() - n, n, suffix) == 0;
  };
  if (c.family == Family::kGpt2) return ends(".attn.bias") || ends(".attn.masked_bias");
  return ends(".rotary_emb.inv_freq");
}

StorageType storage_of_hf(const std::string& dtype, const std::string& where) {
  if (dtype == "F32") return StorageType::kFloat32;
  if (dtype == "F64") return StorageType::kFloat64;
  if (dtype == "F16") return StorageType::kFloat16;
  if (dtype == "BF16") return StorageType::kBFloat16;
  throw IoError(where + " has dtype " + dtype + "; model weights must be F32, F64, F16 or BF16");
}

std::string hf_dtype(StorageType t) {
  switch (t) {
    case StorageType::kFloat32: return "F32";
    case StorageType::kFloat64: return "F64";
    case StorageType::kFloat16: return "F16";
    case StorageType::kBFloat16: return "BF16";
  }
  return "F32";
}

// ---- reading ------------------------------------------------------------------------------------------------

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open '" + path + "': " + std::strerror(errno));
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

/// One safetensors file, mapped read-only; tensors are views into the mapping.
class MappedSafetensors {
 public:
  explicit MappedSafetensors(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY);
    if (fd_ < 0) throw IoError("cannot open '" + path + "': " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw IoError("cannot stat '" + path + "': " + std::strerror(errno));
    size_ = static_cast<std::uint64_t>(st.st_size);
    char first8[8] = {};
    if (size_ >= 8 && ::pread(fd_, first8, 8, 0) != 8) throw IoError("cannot read '" + path + "'");
    const std::uint64_t n = safetensors_header_length(std::string_view(first8, size_ >= 8 ? 8 : 0), size_, path);
    std::string json(n, '\0');
    if (::pread(fd_, json.data(), n, 8) != static_cast<ssize_t>(n)) throw IoError("cannot read the header of '" + path + "'");
    header_ = parse_safetensors_header(json, size_, path);
    if (size_ > 0) {
      base_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
      if (base_ == MAP_FAILED) {
        base_ = nullptr;
        throw IoError("cannot map '" + path + "': " + std::strerror(errno));
      }
    }
  }
  ~MappedSafetensors() {
    if (base_) ::munmap(base_, size_);
    if (fd_ >= 0) ::close(fd_);
  }
  MappedSafetensors(const MappedSafetensors&) = delete;
  MappedSafetensors& operator=(const MappedSafetensors&) = delete;

  const SafetensorsHeader& header() const { return header_; }
  const std::string& path() const { return path_; }

  /// A tensor viewing the mapped bytes (no copy; the mapping must outlive it).
  at::Tensor view(const SafetensorsEntry& e) const {
    const StorageType st = storage_of_hf(e.dtype, "tensor '" + e.name + "' in " + path_);
    std::vector<std::int64_t> shape(e.shape.begin(), e.shape.end());
    char* p = static_cast<char*>(base_) + header_.data_offset + e.begin;
    return at::from_blob(p, shape, at::TensorOptions().dtype(scalar_type_of(st)));
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  void* base_ = nullptr;
  SafetensorsHeader header_;
};

struct Source {
  std::vector<std::unique_ptr<MappedSafetensors>> files;
  std::map<std::string, std::pair<const MappedSafetensors*, const SafetensorsEntry*>> tensors;
};

/// Maps the source's safetensors file(s) and indexes their tensors; `config_path` gets the default config.json.
Source open_source(const std::string& source, std::string& config_path) {
  Source s;
  std::vector<std::string> paths;
  std::map<std::string, std::string> weight_map;
  std::string dir;
  if (is_dir(source)) {
    dir = source;
    const std::string index = dir + "/model.safetensors.index.json";
    if (exists(index)) {
      weight_map = parse_safetensors_index(read_text(index), index);
      std::set<std::string> shards;
      for (const auto& [name, file] : weight_map) shards.insert(file);
      for (const auto& f : shards) paths.push_back(dir + "/" + f);
    } else if (exists(dir + "/model.safetensors")) {
      paths.push_back(dir + "/model.safetensors");
    } else {
      throw IoError("'" + source + "' holds neither model.safetensors nor model.safetensors.index.json");
    }
  } else {
    if (!exists(source)) throw IoError("cannot open '" + source + "': " + std::strerror(ENOENT));
    dir = detail::dir_name(source);
    paths.push_back(source);
  }
  if (config_path.empty()) config_path = dir + "/config.json";
  for (const auto& p : paths) {
    s.files.push_back(std::make_unique<MappedSafetensors>(p));
    const MappedSafetensors& f = *s.files.back();
    for (const auto& e : f.header().tensors) {
      if (!s.tensors.emplace(e.name, std::pair{&f, &e}).second)
        throw IoError("tensor '" + e.name + "' appears in more than one shard (" + f.path() + ")");
      if (!weight_map.empty()) {
        const auto it = weight_map.find(e.name);
        if (it == weight_map.end() || dir + "/" + it->second != f.path())
          throw IoError("tensor '" + e.name + "' is in " + f.path() + " but the index places it elsewhere");
      }
    }
  }
  for (const auto& [name, file] : weight_map)
    if (!s.tensors.count(name)) throw IoError("the index lists tensor '" + name + "', which " + file + " lacks");
  return s;
}

std::int64_t get_int(const JsonValue& cfg, const char* key, const std::string& what, std::int64_t fallback = -1) {
  const JsonValue* v = cfg.find(key);
  if (!v || v->type == JsonValue::Type::kNull) {
    if (fallback >= 0) return fallback;
    throw IoError(what + ": missing integer '" + key + "'");
  }
  if (!v->is_uint64() || v->as_uint64() > (1ull << 40)) throw IoError(what + ": '" + key + "' is not a size");
  return static_cast<std::int64_t>(v->as_uint64());
}

double get_number(const JsonValue& cfg, const char* key, const std::string& what, double fallback) {
  const JsonValue* v = cfg.find(key);
  if (!v || v->type == JsonValue::Type::kNull) return fallback;
  if (v->type != JsonValue::Type::kNumber) throw IoError(what + ": '" + key + "' is not a number");
  return v->number;
}

std::string get_string(const JsonValue& cfg, const char* key, const std::string& fallback) {
  const JsonValue* v = cfg.find(key);
  return v && v->type == JsonValue::Type::kString ? v->text : fallback;
}

bool get_bool(const JsonValue& cfg, const char* key, bool fallback) {
  const JsonValue* v = cfg.find(key);
  return v && v->type == JsonValue::Type::kBool ? v->boolean : fallback;
}

std::string number_text(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

bool tied_llama(const std::string& config_text, const std::string& what) {
  return get_bool(parse_json(config_text, what), "tie_word_embeddings", false);
}

}  // namespace

std::vector<ParameterSpec> parameter_specs(const ModelConfig& c) {
  const std::int64_t d = c.d_model, V = c.vocab_size, F = c.d_ff, hd = c.head_dim();
  const std::int64_t q = c.n_heads * hd, k = c.n_kv_heads * hd;
  std::vector<ParameterSpec> out;
  auto add = [&](std::string name, std::vector<std::int64_t> shape) { out.push_back({std::move(name), shape}); };
  const bool gpt2 = c.family == Family::kGpt2;
  if (gpt2) {
    add("wte.weight", {V, d});
    add("wpe.weight", {c.max_positions, d});
  } else {
    add("embed_tokens.weight", {V, d});
  }
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    if (gpt2) {
      add(p + "ln_1.weight", {d});
      add(p + "ln_1.bias", {d});
      add(p + "attn.q_proj.weight", {q, d});
      add(p + "attn.q_proj.bias", {q});
      add(p + "attn.k_proj.weight", {k, d});
      add(p + "attn.k_proj.bias", {k});
      add(p + "attn.v_proj.weight", {k, d});
      add(p + "attn.v_proj.bias", {k});
      add(p + "attn.o_proj.weight", {d, q});
      add(p + "attn.o_proj.bias", {d});
      add(p + "ln_2.weight", {d});
      add(p + "ln_2.bias", {d});
      add(p + "mlp.up_proj.weight", {F, d});
      add(p + "mlp.up_proj.bias", {F});
      add(p + "mlp.down_proj.weight", {d, F});
      add(p + "mlp.down_proj.bias", {d});
    } else {
      add(p + "input_layernorm.weight", {d});
      add(p + "attn.q_proj.weight", {q, d});
      add(p + "attn.k_proj.weight", {k, d});
      add(p + "attn.v_proj.weight", {k, d});
      add(p + "attn.o_proj.weight", {d, q});
      add(p + "post_attention_layernorm.weight", {d});
      add(p + "mlp.gate_proj.weight", {F, d});
      add(p + "mlp.up_proj.weight", {F, d});
      add(p + "mlp.down_proj.weight", {d, F});
    }
  }
  if (gpt2) {
    add("ln_f.weight", {d});
    add("ln_f.bias", {d});
  } else {
    add("norm.weight", {d});
    add("lm_head.weight", {V, d});
  }
  return out;
}

ModelConfig config_from_hf_json(const std::string& json_text, const std::string& what) {
  const JsonValue cfg = parse_json(json_text, what);
  if (cfg.type != JsonValue::Type::kObject) throw IoError(what + ": not a JSON object");
  const std::string type = get_string(cfg, "model_type", "");
  ModelConfig c;
  c.dtype = at::kFloat;
  if (type == "gpt2") {
    c.family = Family::kGpt2;
    c.vocab_size = get_int(cfg, "vocab_size", what);
    c.d_model = get_int(cfg, "n_embd", what);
    c.n_layers = get_int(cfg, "n_layer", what);
    c.n_heads = c.n_kv_heads = get_int(cfg, "n_head", what);
    c.d_ff = get_int(cfg, "n_inner", what, 4 * c.d_model);
    c.max_positions = get_int(cfg, "n_positions", what);
    c.norm_eps = get_number(cfg, "layer_norm_epsilon", what, 1e-5);
    const std::string act = get_string(cfg, "activation_function", "gelu_new");
    if (act != "gelu_new")
      throw IoError(what + ": activation_function '" + act + "' (our GPT-2 computes gelu_new, the tanh GELU)");
    if (c.norm_eps != 1e-5) throw IoError(what + ": layer_norm_epsilon " + number_text(c.norm_eps) + " (GPT-2 uses 1e-5)");
    if (get_bool(cfg, "scale_attn_by_inverse_layer_idx", false) || get_bool(cfg, "reorder_and_upcast_attn", false))
      throw IoError(what + ": attention variants (scale_attn_by_inverse_layer_idx, reorder_and_upcast_attn) are not "
                           "supported");
  } else if (type == "llama") {
    c.family = Family::kLlama;
    c.vocab_size = get_int(cfg, "vocab_size", what);
    c.d_model = get_int(cfg, "hidden_size", what);
    c.n_layers = get_int(cfg, "num_hidden_layers", what);
    c.n_heads = get_int(cfg, "num_attention_heads", what);
    c.n_kv_heads = get_int(cfg, "num_key_value_heads", what, c.n_heads);
    c.d_ff = get_int(cfg, "intermediate_size", what);
    c.max_positions = get_int(cfg, "max_position_embeddings", what);
    c.norm_eps = get_number(cfg, "rms_norm_eps", what, 1e-6);
    c.rope_theta = get_number(cfg, "rope_theta", what, 10000.0);
    const std::string act = get_string(cfg, "hidden_act", "silu");
    if (act != "silu") throw IoError(what + ": hidden_act '" + act + "' (our LLaMA computes SwiGLU with silu)");
    const JsonValue* scaling = cfg.find("rope_scaling");
    if (scaling && scaling->type != JsonValue::Type::kNull)
      throw IoError(what + ": rope_scaling is not supported (plain RoPE only)");
    if (get_bool(cfg, "attention_bias", false) || get_bool(cfg, "mlp_bias", false))
      throw IoError(what + ": attention_bias / mlp_bias are not supported (LLaMA has no biases)");
    if (cfg.find("head_dim") && c.n_heads > 0 && get_int(cfg, "head_dim", what) * c.n_heads != c.d_model)
      throw IoError(what + ": head_dim * num_attention_heads != hidden_size is not supported");
  } else {
    throw IoError(what + ": model_type '" + type + "' (supported: gpt2, llama)");
  }
  try {
    c.validate(1);
  } catch (const ConfigError& e) {
    throw IoError(what + ": " + e.what());
  }
  return c;
}

std::string hf_config_json(const ModelConfig& c, StorageType storage) {
  static const std::map<StorageType, const char*> kTorch = {{StorageType::kFloat32, "float32"},
                                                            {StorageType::kFloat64, "float64"},
                                                            {StorageType::kFloat16, "float16"},
                                                            {StorageType::kBFloat16, "bfloat16"}};
  std::ostringstream os;
  if (c.family == Family::kGpt2) {
    os << "{\n  \"architectures\": [\"GPT2LMHeadModel\"],\n  \"model_type\": \"gpt2\",\n  \"vocab_size\": "
       << c.vocab_size << ",\n  \"n_embd\": " << c.d_model << ",\n  \"n_layer\": " << c.n_layers
       << ",\n  \"n_head\": " << c.n_heads << ",\n  \"n_inner\": " << c.d_ff << ",\n  \"n_positions\": "
       << c.max_positions << ",\n  \"n_ctx\": " << c.max_positions << ",\n  \"layer_norm_epsilon\": "
       << number_text(c.norm_eps) << ",\n  \"activation_function\": \"gelu_new\",\n  \"tie_word_embeddings\": true";
  } else {
    os << "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n  \"vocab_size\": "
       << c.vocab_size << ",\n  \"hidden_size\": " << c.d_model << ",\n  \"num_hidden_layers\": " << c.n_layers
       << ",\n  \"num_attention_heads\": " << c.n_heads << ",\n  \"num_key_value_heads\": " << c.n_kv_heads
       << ",\n  \"intermediate_size\": " << c.d_ff << ",\n  \"max_position_embeddings\": " << c.max_positions
       << ",\n  \"rms_norm_eps\": " << number_text(c.norm_eps) << ",\n  \"rope_theta\": " << number_text(c.rope_theta)
       << ",\n  \"hidden_act\": \"silu\",\n  \"tie_word_embeddings\": false";
  }
  os << ",\n  \"torch_dtype\": \"" << kTorch.at(storage) << "\"\n}\n";
  return os.str();
}

CheckpointInfo import_safetensors(const std::string& source, const std::string& output, Communicator& world,
                                  const ImportOptions& options) {
  const Collective coll(world);
  Source src;                       // rank 0 only
  std::vector<TensorBlock> blocks;  // rank 0: whole tensors viewing the mapping
  std::string plan;
  coll.run([&] {
    if (coll.rank() != 0) return;
    std::string config_path = options.config_path;
    src = open_source(source, config_path);
    const std::string config_text = read_text(config_path);
    const ModelConfig cfg = config_from_hf_json(config_text, config_path);
    const bool tied = cfg.family == Family::kLlama && tied_llama(config_text, config_path);
    std::set<std::string> used;
    std::optional<StorageType> common;
    auto lookup = [&](const std::string& hf) -> std::pair<const MappedSafetensors*, const SafetensorsEntry*> {
      for (const std::string& n : {hf, std::string("transformer.") + hf}) {
        const auto it = src.tensors.find(n);
        if (it != src.tensors.end()) {
          used.insert(n);
          return it->second;
        }
      }
      throw IoError("'" + source + "' has no tensor '" + hf + "' (needed for the " + to_string(cfg.family) +
                    " config in " + config_path + ")");
    };
    for (const ParameterSpec& p : parameter_specs(cfg)) {
      HfSource s = hf_source(cfg, p.name);
      if (tied && p.name == "lm_head.weight" && !src.tensors.count("lm_head.weight"))
        s.hf = "model.embed_tokens.weight";
      const auto [file, entry] = lookup(s.hf);
      const StorageType st = storage_of_hf(entry->dtype, "tensor '" + entry->name + "'");
      if (common && *common != st && !options.storage)
        throw IoError("'" + source + "' mixes " + storage_type_name(*common) + " and " + storage_type_name(st) +
                      " tensors; choose one storage type (--dtype)");
      common = st;
      at::Tensor t = file->view(*entry);
      if (s.transpose) {
        if (t.dim() != 2) throw IoError("tensor '" + entry->name + "' should be 2-D (Conv1D weight)");
        t = t.t();
      }
      if (s.part >= 0) {
        const std::int64_t rows = p.shape[0];
        if (t.dim() < 1 || t.size(0) != 3 * rows)
          throw IoError("tensor '" + entry->name + "' has " + std::to_string(t.dim() ? t.size(0) : 0) +
                        " fused Q/K/V rows, expected 3 x " + std::to_string(rows));
        t = t.narrow(0, s.part * rows, rows);
      }
      if (t.sizes() != at::IntArrayRef(p.shape)) {
        std::ostringstream os;
        os << "tensor '" << entry->name << "' has shape " << file->view(*entry).sizes() << "; for '" << p.name
           << "' the config needs " << at::IntArrayRef(p.shape) << (s.transpose ? " after transposing" : "");
        throw IoError(os.str());
      }
      blocks.push_back(TensorBlock{p.name, t, p.shape, -1, 0, true});
    }
    for (const auto& [name, where] : src.tensors) {
      if (used.count(name)) continue;
      const std::string bare = name.rfind("transformer.", 0) == 0 ? name.substr(12) : name;
      if (ignorable(cfg, bare)) continue;
      if (cfg.family == Family::kGpt2 && bare == "lm_head.weight") {
        // GPT-2's head is tied to wte: accept a stored copy only when it is one.
        const auto [wf, we] = lookup("wte.weight");
        if (at::equal(where.first->view(*where.second), wf->view(*we))) continue;
        throw IoError("'" + source + "' has an lm_head.weight that differs from wte.weight (GPT-2 ties them)");
      }
      throw IoError("'" + source + "' has tensor '" + name + "', which a " + to_string(cfg.family) +
                    " model with this config does not have");
    }
    const StorageType storage = options.storage ? *options.storage : *common;
    std::ostringstream os;
    for (const auto& [k, v] : cfg.to_map()) os << k << '=' << v << '\n';
    os << "storage=" << storage_type_name(storage) << '\n';
    plan = os.str();
  });
  plan = coll.broadcast(plan, 0);
  std::map<std::string, std::string> kv;
  std::istringstream in(plan);
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  const StorageType storage = parse_storage_type(kv.at("storage"));
  kv.erase("storage");
  const ModelConfig cfg = ModelConfig::from_map(kv);
  if (coll.rank() != 0) {
    // Other ranks join the collective write holding nothing (zero rows of every tensor).
    for (const ParameterSpec& p : parameter_specs(cfg)) {
      std::vector<std::int64_t> none = p.shape;
      none[0] = 0;
      blocks.push_back(TensorBlock{p.name, at::empty(none, scalar_type_of(storage)), p.shape, 0, 0, false});
    }
  }
  SaveOptions save = options.save;
  save.provenance["source"] = source;
  save.provenance["source_format"] = "safetensors";
  const Attributes attrs = model_checkpoint_attributes(
      cfg, storage, save, "converted by " + std::to_string(coll.size()) + " rank(s), rank 0 reading");
  WriteOptions io = save.io;
  io.storage = storage;
  write_tensor_file(output, world, attrs, blocks, io);
  blocks.clear();  // views into the mappings go before the mappings
  return read_checkpoint_info(output, world);
}

void export_safetensors(const std::string& checkpoint, const std::string& out_dir, Communicator& world,
                        const ExportOptions& options) {
  const Collective coll(world);
  const CheckpointInfo info = read_checkpoint_info(checkpoint, world);
  const ModelConfig& cfg = info.config;
  const StorageType storage = options.storage ? *options.storage : info.storage;
  std::vector<TensorBlock> blocks;
  for (const ParameterSpec& p : parameter_specs(cfg)) {
    std::vector<std::int64_t> shape = p.shape;
    if (coll.rank() != 0) shape[0] = 0;  // rank 0 holds the model; the others take part in the reads
    blocks.push_back(TensorBlock{p.name, at::empty(shape, scalar_type_of(info.storage)), p.shape, 0, 0,
                                 coll.rank() == 0});
  }
  if (blocks.size() != info.file.tensors.size())
    throw IoError("checkpoint '" + checkpoint + "' holds " + std::to_string(info.file.tensors.size()) +
                  " tensors; its config describes " + std::to_string(blocks.size()));
  read_tensor_blocks(checkpoint, world, blocks, /*verify_digest=*/true);

  coll.run([&] {
    if (coll.rank() != 0) return;
    std::map<std::string, at::Tensor> ours;
    for (auto& b : blocks) ours[b.name] = b.local.to(scalar_type_of(storage));
    // Hugging Face tensors: group our parameters by source tensor; fused ones are concatenated in part order.
    std::map<std::string, std::vector<std::pair<int, at::Tensor>>> parts;
    std::map<std::string, bool> transposed;
    for (const ParameterSpec& p : parameter_specs(cfg)) {
      const HfSource s = hf_source(cfg, p.name);
      parts[s.hf].emplace_back(s.part, ours.at(p.name));
      transposed[s.hf] = s.transpose;
    }
    std::vector<SafetensorsEntry> entries;
    std::vector<at::Tensor> data;
    for (auto& [hf, list] : parts) {
      std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      std::vector<at::Tensor> pieces;
      for (auto& [part, t] : list) pieces.push_back(t);
      at::Tensor t = pieces.size() == 1 ? pieces[0] : at::cat(pieces, 0);
      if (transposed[hf]) t = t.t();
      t = t.contiguous();
      SafetensorsEntry e;
      e.name = hf;
      e.dtype = hf_dtype(storage);
      for (auto d : t.sizes()) e.shape.push_back(static_cast<std::uint64_t>(d));
      entries.push_back(e);
      data.push_back(t);
    }
    const std::string header = encode_safetensors_header(
        entries, {{"format", "pt"}, {"source", "unlearn checkpoint " + detail::base_name(checkpoint)},
                  {"content_digest", info.content_digest}});

    if (!is_dir(out_dir) && ::mkdir(out_dir.c_str(), 0777) != 0)
      throw IoError("cannot create directory '" + out_dir + "': " + std::strerror(errno));
    const std::string final_path = out_dir + "/model.safetensors", config_path = out_dir + "/config.json";
    for (const auto& p : {final_path, config_path})
      if (exists(p)) throw IoError("'" + p + "' already exists; export never replaces files");
    const std::string temp = final_path + ".tmp." + std::to_string(::getpid());
    {
      std::ofstream out(temp, std::ios::binary | std::ios::trunc);
      out.write(header.data(), static_cast<std::streamsize>(header.size()));
      for (const auto& t : data)
        out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
      out.flush();
      if (!out) {
        ::unlink(temp.c_str());
        throw IoError("cannot write '" + temp + "': " + std::strerror(errno));
      }
    }
    try {
      detail::fsync_path(temp, false);
      detail::rename_no_replace(temp, final_path);
    } catch (...) {
      ::unlink(temp.c_str());
      throw;
    }
    std::ofstream cfg_out(config_path);
    cfg_out << hf_config_json(cfg, storage);
    if (!cfg_out.flush()) throw IoError("cannot write '" + config_path + "'");
    detail::fsync_path(out_dir, true);
  });
}

}  // namespace unlearn
