// GPT-2 and LLaMA forward passes under tensor parallelism. Column-parallel: Q, K, V, MLP up (and LLaMA gate), split
// by output rows; row-parallel: attention out and MLP down, split by input columns, outputs reduced; embedding and
// LM head split by vocabulary rows (unevenly when TP does not divide it); norms and row-parallel biases replicated.
#include "unlearn/model/transformer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <regex>

#include "unlearn/model/tp_layers.h"
#include "unlearn/model/tp_mappings.h"
#include "unlearn/util/error.h"

namespace unlearn {

std::int64_t Batch::num_targets() const { return targets.ge(0).sum().item<std::int64_t>(); }

void Batch::validate(const ModelConfig& cfg) const {
  for (const auto* t : {&tokens, &targets, &segments, &positions}) {
    if (!t->defined() || t->dim() != 2 || t->scalar_type() != at::kLong)
      UNLEARN_THROW(ConfigError, "batch: tokens, targets, segments and positions must be [B, T] int64 tensors");
    if (t->sizes() != tokens.sizes()) UNLEARN_THROW(ConfigError, "batch: tensors have different shapes");
  }
  if (tokens.numel() == 0) return;
  if (tokens.min().item<std::int64_t>() < 0 || tokens.max().item<std::int64_t>() >= cfg.vocab_size)
    UNLEARN_THROW(ConfigError, "batch: token ids outside the vocabulary [0, " << cfg.vocab_size << ")");
  if (targets.min().item<std::int64_t>() < -1 || targets.max().item<std::int64_t>() >= cfg.vocab_size)
    UNLEARN_THROW(ConfigError, "batch: target ids outside the vocabulary (or -1)");
  if (positions.min().item<std::int64_t>() < 0 || positions.max().item<std::int64_t>() >= cfg.max_positions)
    UNLEARN_THROW(ConfigError, "batch: positions outside [0, max_positions " << cfg.max_positions << ")");
}

namespace {

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

enum class Kind { kWeight, kBias, kNorm };

Kind kind_of(const std::string& name) {
  const bool norm = name.find("ln_") != std::string::npos || name.find("norm") != std::string::npos;
  if (norm) return Kind::kNorm;
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0) return Kind::kBias;
  return Kind::kWeight;
}

}  // namespace

/// Per-layer parameter indices and the local head layout, resolved once.
struct TransformerModel::Impl {
  std::int64_t heads_local = 0, kv_local = 0;
  std::unique_ptr<Communicator> kv_group;  // TP ranks sharing this rank's KV heads (size 1 when KV is split)
  std::int64_t emb = -1, pos = -1, head = -1, final_w = -1, final_b = -1;
  struct Layer {
    std::int64_t n1w = -1, n1b = -1, q = -1, qb = -1, k = -1, kb = -1, v = -1, vb = -1, o = -1, ob = -1;
    std::int64_t n2w = -1, n2b = -1, gate = -1, up = -1, upb = -1, down = -1, downb = -1;
  };
  std::vector<Layer> layers;
};

TransformerModel::~TransformerModel() = default;

void TransformerModel::add_param(const std::string& name, std::vector<std::int64_t> global_shape, int shard_dim,
                                 Range range, bool replicated, bool counted) {
  Parameter p;
  p.name = name;
  p.global_shape = global_shape;
  p.shard_dim = shard_dim;
  std::vector<std::int64_t> local = global_shape;
  if (shard_dim >= 0) {
    local[static_cast<std::size_t>(shard_dim)] = range.size;
    p.shard_start = range.start;
  }
  const auto device = at::Device(config_.device);
  p.value = at::zeros(local, at::TensorOptions().dtype(config_.dtype).device(device)).requires_grad_(true);
  p.layout = ShardLayout{name, replicated, counted};
  params_.push_back(std::move(p));
}

TransformerModel::TransformerModel(const ModelConfig& config, Communicator& tp)
    : config_(config), tp_(tp), impl_(std::make_unique<Impl>()) {
  config_.validate(tp.size());
  const int P = tp.size(), r = tp.rank();
  const std::int64_t d = config_.d_model, hd = config_.head_dim(), V = config_.vocab_size;
  const bool gpt2 = config_.family == Family::kGpt2;
  vocab_ = split_range(V, P, r);
  Impl& m = *impl_;
  m.heads_local = config_.n_heads / P;
  const Range heads = split_range(config_.n_heads, P, r);
  // KV heads: split when TP divides their count, else one head shared by TP / n_kv consecutive ranks.
  Range kv;
  if (config_.n_kv_heads % P == 0) {
    kv = split_range(config_.n_kv_heads, P, r);
    m.kv_group = tp.split(r, 0);  // alone: nothing to share
  } else {
    const std::int64_t share = P / config_.n_kv_heads;
    kv = Range{r / share, 1};
    m.kv_group = tp.split(static_cast<int>(kv.start), r);
  }
  m.kv_local = kv.size;
  const bool kv_shared = m.kv_group->size() > 1;
  const bool kv_counted = m.kv_group->rank() == 0;
  const bool tp0 = r == 0;
  const Range ff = split_range(config_.d_ff, P, r);
  const Range q_rows{heads.start * hd, heads.size * hd};
  const Range kv_rows{kv.start * hd, kv.size * hd};
  const Range whole{};

  auto index = [&] { return static_cast<std::int64_t>(params_.size()); };
  auto replicated = [&](const std::string& name, std::vector<std::int64_t> shape) {
    std::int64_t i = index();
    add_param(name, std::move(shape), -1, whole, P > 1, tp0);
    return i;
  };
  auto sharded = [&](const std::string& name, std::vector<std::int64_t> shape, int dim, Range range) {
    std::int64_t i = index();
    add_param(name, std::move(shape), dim, range, false, true);
    return i;
  };
  auto kv_param = [&](const std::string& name, std::vector<std::int64_t> shape) {
    std::int64_t i = index();
    add_param(name, std::move(shape), 0, kv_rows, kv_shared, kv_counted);
    return i;
  };

  if (gpt2) {
    m.emb = sharded("wte.weight", {V, d}, 0, vocab_);
    m.pos = replicated("wpe.weight", {config_.max_positions, d});
    m.head = m.emb;  // tied
  } else {
    m.emb = sharded("embed_tokens.weight", {V, d}, 0, vocab_);
  }
  const std::int64_t qd = config_.n_heads * hd, kvd = config_.n_kv_heads * hd, F = config_.d_ff;
  for (std::int64_t l = 0; l < config_.n_layers; ++l) {
    const std::string pre = "layers." + std::to_string(l) + ".";
    Impl::Layer L;
    if (gpt2) {
      L.n1w = replicated(pre + "ln_1.weight", {d});
      L.n1b = replicated(pre + "ln_1.bias", {d});
      L.q = sharded(pre + "attn.q_proj.weight", {qd, d}, 0, q_rows);
      L.qb = sharded(pre + "attn.q_proj.bias", {qd}, 0, q_rows);
      L.k = kv_param(pre + "attn.k_proj.weight", {kvd, d});
      L.kb = kv_param(pre + "attn.k_proj.bias", {kvd});
      L.v = kv_param(pre + "attn.v_proj.weight", {kvd, d});
      L.vb = kv_param(pre + "attn.v_proj.bias", {kvd});
      L.o = sharded(pre + "attn.o_proj.weight", {d, qd}, 1, q_rows);
      L.ob = replicated(pre + "attn.o_proj.bias", {d});
      L.n2w = replicated(pre + "ln_2.weight", {d});
      L.n2b = replicated(pre + "ln_2.bias", {d});
      L.up = sharded(pre + "mlp.up_proj.weight", {F, d}, 0, ff);
      L.upb = sharded(pre + "mlp.up_proj.bias", {F}, 0, ff);
      L.down = sharded(pre + "mlp.down_proj.weight", {d, F}, 1, ff);
      L.downb = replicated(pre + "mlp.down_proj.bias", {d});
    } else {
      L.n1w = replicated(pre + "input_layernorm.weight", {d});
      L.q = sharded(pre + "attn.q_proj.weight", {qd, d}, 0, q_rows);
      L.k = kv_param(pre + "attn.k_proj.weight", {kvd, d});
      L.v = kv_param(pre + "attn.v_proj.weight", {kvd, d});
      L.o = sharded(pre + "attn.o_proj.weight", {d, qd}, 1, q_rows);
      L.n2w = replicated(pre + "post_attention_layernorm.weight", {d});
      L.gate = sharded(pre + "mlp.gate_proj.weight", {F, d}, 0, ff);
      L.up = sharded(pre + "mlp.up_proj.weight", {F, d}, 0, ff);
      L.down = sharded(pre + "mlp.down_proj.weight", {d, F}, 1, ff);
    }
    m.layers.push_back(L);
  }
  if (gpt2) {
    m.final_w = replicated("ln_f.weight", {d});
    m.final_b = replicated("ln_f.bias", {d});
  } else {
    m.final_w = replicated("norm.weight", {d});
    m.head = sharded("lm_head.weight", {V, d}, 0, vocab_);
  }
  init_random(0);
}

const Parameter& TransformerModel::parameter(const std::string& name) const {
  for (const auto& p : params_)
    if (p.name == name) return p;
  UNLEARN_THROW(ConfigError, "model has no parameter named '" << name << "'");
}

at::Tensor TransformerModel::local_slice(const Parameter& p, const at::Tensor& global) const {
  if (global.sizes() != at::IntArrayRef(p.global_shape))
    UNLEARN_THROW(ConfigError, "parameter '" << p.name << "': global shape " << global.sizes() << ", expected "
                                             << at::IntArrayRef(p.global_shape));
  if (p.shard_dim < 0) return global;
  return global.narrow(p.shard_dim, p.shard_start, p.value.size(p.shard_dim));
}

void TransformerModel::set_global(const std::string& name, const at::Tensor& global) {
  for (auto& p : params_) {
    if (p.name != name) continue;
    c10::NoGradGuard no_grad;
    p.value.copy_(local_slice(p, global.to(p.value.options())));
    return;
  }
  UNLEARN_THROW(ConfigError, "model has no parameter named '" << name << "'");
}

void TransformerModel::init_random(std::uint64_t seed, const InitOptions& options) {
  c10::NoGradGuard no_grad;
  for (auto& p : params_) {
    // The generator is keyed by (seed, name): the global tensor is the same whatever the layout.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed ^ fnv1a(p.name));
    at::Tensor g = at::empty(p.global_shape, at::TensorOptions().dtype(at::kDouble));
    switch (kind_of(p.name)) {
      case Kind::kWeight: g.normal_(0.0, options.weight_std, gen); break;
      case Kind::kBias: g.normal_(0.0, 1.0, gen).mul_(options.bias_std); break;
      case Kind::kNorm: g.normal_(0.0, 1.0, gen).mul_(options.norm_std).add_(1.0); break;
    }
    p.value.copy_(local_slice(p, g.to(p.value.options())));
  }
}

ForwardResult TransformerModel::forward(const Batch& batch) const {
  const Impl& m = *impl_;
  const ModelConfig& c = config_;
  const auto opts = params_[0].value.options();
  const std::int64_t B = batch.tokens.size(0), T = batch.tokens.size(1), hd = c.head_dim();
  const bool gpt2 = c.family == Family::kGpt2;
  auto W = [&](std::int64_t i) -> const at::Tensor& { return params_[static_cast<std::size_t>(i)].value; };
  const auto dev = opts.device();
  const at::Tensor tokens = batch.tokens.to(dev), positions = batch.positions.to(dev);
  const at::Tensor segments = batch.segments.to(dev), targets = batch.targets.to(dev);

  at::Tensor x = vocab_parallel_embedding(tokens, W(m.emb), vocab_, tp_);  // [B, T, d], replicated
  if (gpt2) x = x + W(m.pos).index_select(0, positions.reshape(-1)).view({B, T, c.d_model});

  const at::Tensor mask = attention_bias(segments, c.dtype);  // [B, 1, T, T], 0 or -inf
  at::Tensor cos, sin;
  if (!gpt2) std::tie(cos, sin) = rotary_tables(positions, hd, c.rope_theta, c.dtype);

  auto norm = [&](const at::Tensor& in, std::int64_t w, std::int64_t b) {
    return gpt2 ? layer_norm(in, W(w), W(b), c.norm_eps) : rms_norm(in, W(w), c.norm_eps);
  };
  // Shared KV weights enter through copy_to_tp on their group, so their gradient sums over the sharing ranks.
  auto kv = [&](std::int64_t i) { return copy_to_tp(W(i), *m.kv_group); };

  for (const auto& L : m.layers) {
    const at::Tensor a = copy_to_tp(norm(x, L.n1w, L.n1b), tp_);
    // q, k and v as one product with the three weights stacked: one wide GEMM instead of three narrow ones, in the
    // forward and in every backward and double backward through it, and no sums of three input gradients.
    // GPT-2 has all three biases, LLaMA none.
    const at::Tensor w_qkv = at::cat({W(L.q), kv(L.k), kv(L.v)});
    const at::Tensor b_qkv = L.qb >= 0 ? at::cat({W(L.qb), kv(L.kb), kv(L.vb)}) : at::Tensor();
    const at::Tensor qkv = at::linear(a, w_qkv, b_qkv);
    const std::int64_t qw = m.heads_local * hd, kvw = m.kv_local * hd;
    at::Tensor q = qkv.narrow(-1, 0, qw).view({B, T, m.heads_local, hd}).transpose(1, 2);
    at::Tensor k = qkv.narrow(-1, qw, kvw).view({B, T, m.kv_local, hd}).transpose(1, 2);
    at::Tensor v = qkv.narrow(-1, qw + kvw, kvw).view({B, T, m.kv_local, hd}).transpose(1, 2);
    if (!gpt2) {
      q = apply_rotary(q, cos, sin);
      k = apply_rotary(k, cos, sin);
    }
    const at::Tensor att = attention(q, k, v, mask);  // [B, T, heads_local * hd]
    at::Tensor o = reduce_from_tp(at::linear(att, W(L.o)), tp_);
    if (L.ob >= 0) o = o + W(L.ob);
    x = x + o;

    const at::Tensor h = copy_to_tp(norm(x, L.n2w, L.n2b), tp_);
    at::Tensor inner;
    if (gpt2) {
      inner = gelu_tanh(at::linear(h, W(L.up), W(L.upb)));
    } else {
      const at::Tensor gate_up = at::linear(h, at::cat({W(L.gate), W(L.up)}));  // one GEMM, as q, k, v above
      const std::int64_t f = W(L.gate).size(0);
      inner = at::silu(gate_up.narrow(-1, 0, f)) * gate_up.narrow(-1, f, f);
    }
    at::Tensor down = reduce_from_tp(at::linear(inner, W(L.down)), tp_);
    if (L.downb >= 0) down = down + W(L.downb);
    x = x + down;
  }
  x = norm(x, m.final_w, m.final_b);

  // Only target rows reach the LM head: the other positions never enter the loss.
  const at::Tensor flat_targets = targets.reshape(-1);
  const at::Tensor rows = flat_targets.ge(0).nonzero().view(-1);
  const at::Tensor x_rows = x.reshape({B * T, c.d_model}).index_select(0, rows);
  ForwardResult out;
  out.targets = flat_targets.index_select(0, rows);
  out.logits = at::linear(copy_to_tp(x_rows, tp_), W(m.head));  // [n, V_local]
  out.loss_sum = vocab_parallel_cross_entropy_sum(out.logits, out.targets, vocab_, tp_);
  return out;
}

ShardedVector TransformerModel::values(const std::vector<std::size_t>& subset) const {
  std::vector<at::Tensor> shards;
  std::vector<ShardLayout> layout;
  for (std::size_t i : subset) {
    shards.push_back(params_[i].value.detach().clone());
    layout.push_back(params_[i].layout);
  }
  return ShardedVector(std::move(shards), std::move(layout), &tp_);
}

ShardedVector TransformerModel::zeros(const std::vector<std::size_t>& subset) const {
  ShardedVector v = values(subset);
  v.scale(0.0);
  return v;
}

std::vector<std::size_t> TransformerModel::select(const std::string& pattern) const {
  std::vector<std::size_t> out;
  std::regex re;
  try {
    re = std::regex(pattern.empty() ? std::string(".*") : pattern);
  } catch (const std::regex_error& e) {
    UNLEARN_THROW(ConfigError, "--params: invalid regular expression '" << pattern << "': " << e.what());
  }
  for (std::size_t i = 0; i < params_.size(); ++i)
    if (std::regex_search(params_[i].name, re)) out.push_back(i);
  if (out.empty()) UNLEARN_THROW(ConfigError, "--params '" << pattern << "' matches no parameter of the model");
  return out;
}

std::int64_t TransformerModel::global_numel() const {
  std::int64_t n = 0;
  for (const auto& p : params_) {
    std::int64_t k = 1;
    for (auto s : p.global_shape) k *= s;
    n += k;
  }
  return n;
}

}  // namespace unlearn
