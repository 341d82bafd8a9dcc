// Curvature products by double backward. H·v: g = ∇L with create_graph once, then ∇<g, v> per product.
// G·v: w(u) = Jᵀu with create_graph once (u a dummy on the logits), J v = ∇_u <w(u), v>, then Jᵀ(H_out J v).
#include "unlearn/model/curvature.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include "unlearn/model/tp_layers.h"
#include "unlearn/model/tp_mappings.h"
#include "unlearn/util/error.h"

namespace unlearn {

struct Curvature::MicroBatch {
  ForwardResult forward;
  std::vector<at::Tensor> grad;  // per subset entry, with graph (create_graph)
  at::Tensor u;                  // dummy logit cotangent for the R-op
  std::vector<at::Tensor> jtu;   // Jᵀu, with graph
};

namespace {

std::vector<at::Tensor> inputs_of(const TransformerModel& model, const std::vector<std::size_t>& subset) {
  std::vector<at::Tensor> in;
  in.reserve(subset.size());
  for (std::size_t i : subset) in.push_back(model.parameters()[i].value);
  return in;
}

/// s = reduce_from_tp(Σ_sharded <a, v>) + Σ_replicated <a, v>: its gradient is the TP-correct ∇<a, v>. Replicated
/// entries are seeded on every rank that holds them (Megatron's convention for replicated values), so the forward
/// value of s is not the global dot product; only its derivative is used.
at::Tensor product_seed(const std::vector<at::Tensor>& a, const ShardedVector& v, Communicator& tp) {
  at::Tensor sharded, replicated;
  auto add = [](at::Tensor& acc, const at::Tensor& term) { acc = acc.defined() ? acc + term : term; };
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!a[i].defined()) continue;  // parameter does not reach the output
    const at::Tensor term = (a[i] * v[i]).sum();
    add(v.layout()[i].replicated ? replicated : sharded, term);
  }
  const auto opts = v[0].options();
  at::Tensor s = reduce_from_tp(sharded.defined() ? sharded : at::zeros({}, opts), tp);
  return replicated.defined() ? s + replicated : s;
}

void check_same_layout(const ShardedVector& v, const std::vector<std::size_t>& subset, const TransformerModel& model) {
  UNLEARN_CHECK(v.size() == subset.size(), "curvature product: vector has " << v.size() << " entries, the subset "
                                                                            << subset.size());
  for (std::size_t i = 0; i < subset.size(); ++i)
    UNLEARN_CHECK(v[i].sizes() == model.parameters()[subset[i]].value.sizes(),
                  "curvature product: entry '" << v.layout()[i].name << "' has the wrong shape");
}

/// Sums per-rank local shards over DP with one all-reduce (flatten, reduce, split back).
ShardedVector sum_over_dp(const TransformerModel& model, Communicator& dp, const std::vector<std::size_t>& subset,
                          std::vector<at::Tensor> local) {
  if (dp.size() > 1) {
    // One all-reduce for all entries: flatten, reduce, split back.
    std::vector<at::Tensor> flat;
    for (const auto& t : local) flat.push_back(t.reshape(-1));
    at::Tensor buf = at::cat(flat);
    dp.all_reduce(buf, ReduceOp::kSum);
    std::int64_t off = 0;
    for (auto& t : local) {
      t = buf.narrow(0, off, t.numel()).view(t.sizes()).clone();
      off += t.numel();
    }
  }
  std::vector<ShardLayout> layout;
  for (std::size_t i : subset) layout.push_back(model.parameters()[i].layout);
  return ShardedVector(std::move(local), std::move(layout), &model.tp());
}

}  // namespace

Curvature::Curvature(const TransformerModel& model, Communicator& dp, std::vector<std::size_t> subset, GraphMode mode)
    : model_(model), dp_(dp), subset_(std::move(subset)), mode_(mode) {
  UNLEARN_CHECK(!subset_.empty(), "Curvature: empty parameter subset");
}

Curvature::~Curvature() = default;

ShardedVector Curvature::reduce_over_dp(std::vector<at::Tensor> local, DpReduction reduction) {
  if (reduction == DpReduction::kAllReduce) return sum_over_dp(model_, dp_, subset_, std::move(local));
  std::vector<ShardLayout> layout;
  for (std::size_t i : subset_) layout.push_back(model_.parameters()[i].layout);
  return ShardedVector(std::move(local), std::move(layout), &model_.tp());
}

Curvature::MicroBatch& Curvature::graph(std::size_t i, bool need_jtu) {
  auto& slot = graphs_[i];
  if (!slot) {
    slot = std::make_unique<MicroBatch>();
    slot->forward = model_.forward(batches_[i]);
    const at::Tensor loss = slot->forward.loss_sum / static_cast<double>(n_global_);
    slot->grad = torch::autograd::grad({loss}, inputs_of(model_, subset_), {}, /*retain_graph=*/true,
                                       /*create_graph=*/true, /*allow_unused=*/true);
  }
  if (need_jtu && !slot->u.defined()) {
    slot->u = at::zeros_like(slot->forward.logits).detach().requires_grad_(true);
    slot->jtu = torch::autograd::grad({slot->forward.logits}, inputs_of(model_, subset_), {slot->u},
                                      /*retain_graph=*/true, /*create_graph=*/true, /*allow_unused=*/true);
  }
  return *slot;
}

void Curvature::release(std::size_t i) {
  if (mode_ == GraphMode::kRecompute) graphs_[i].reset();
}

void Curvature::prepare(std::vector<Batch> batches) {
  batches_ = std::move(batches);
  graphs_.clear();
  graphs_.resize(batches_.size());
  products_ = 0;
  std::int64_t n_local = 0;
  for (const auto& b : batches_) {
    b.validate(model_.config());
    n_local += b.num_targets();
  }
  n_global_ = dp_.all_reduce_scalar(n_local);
  if (n_global_ == 0) UNLEARN_THROW(Error, "curvature: the set has no target tokens on any rank (empty set?)");

  std::vector<at::Tensor> grad;
  double loss_local = 0.0;
  for (std::size_t i = 0; i < batches_.size(); ++i) {
    MicroBatch& mb = graph(i, false);
    loss_local += mb.forward.loss_sum.item<double>();
    for (std::size_t j = 0; j < subset_.size(); ++j) {
      const at::Tensor gj = mb.grad[j].defined() ? mb.grad[j].detach()
                                                 : at::zeros_like(model_.parameters()[subset_[j]].value).detach();
      if (grad.size() < subset_.size()) {
        grad.push_back(gj.clone());
      } else {
        grad[j].add_(gj);
      }
    }
    release(i);
  }
  if (grad.empty())
    for (std::size_t j : subset_) grad.push_back(at::zeros_like(model_.parameters()[j].value).detach());
  // The loss is identical on every TP rank: sum over DP only.
  loss_ = dp_.all_reduce_scalar(loss_local) / static_cast<double>(n_global_);
  gradient_ = reduce_over_dp(std::move(grad));
}

ShardedVector Curvature::hvp(const ShardedVector& v, DpReduction reduction) {
  check_same_layout(v, subset_, model_);
  const auto inputs = inputs_of(model_, subset_);
  std::vector<at::Tensor> acc;
  for (std::size_t i = 0; i < batches_.size(); ++i) {
    MicroBatch& mb = graph(i, false);
    const at::Tensor s = product_seed(mb.grad, v, model_.tp());
    auto hv = torch::autograd::grad({s}, inputs, {}, /*retain_graph=*/mode_ == GraphMode::kReuse,
                                    /*create_graph=*/false, /*allow_unused=*/true);
    for (std::size_t j = 0; j < hv.size(); ++j) {
      if (!hv[j].defined()) hv[j] = at::zeros_like(inputs[j]).detach();
      if (acc.size() < hv.size()) {
        acc.push_back(hv[j]);
      } else {
        acc[j].add_(hv[j]);
      }
    }
    release(i);
  }
  ++products_;
  return reduce_over_dp(std::move(acc), reduction);
}

ShardedVector Curvature::gvp(const ShardedVector& v, DpReduction reduction) {
  check_same_layout(v, subset_, model_);
  const auto inputs = inputs_of(model_, subset_);
  std::vector<at::Tensor> acc;
  for (std::size_t i = 0; i < batches_.size(); ++i) {
    MicroBatch& mb = graph(i, true);
    at::Tensor jv;
    if (mb.forward.logits.size(0) > 0) {
      const at::Tensor s = product_seed(mb.jtu, v, model_.tp());
      jv = torch::autograd::grad({s}, {mb.u}, {}, /*retain_graph=*/true, /*create_graph=*/false,
                                 /*allow_unused=*/true)[0];
    }
    if (!jv.defined()) jv = at::zeros_like(mb.forward.logits).detach();
    const at::Tensor y = softmax_hessian_apply(mb.forward.logits, jv, model_.tp()) / static_cast<double>(n_global_);
    auto gv = torch::autograd::grad({mb.forward.logits}, inputs, {y}, /*retain_graph=*/mode_ == GraphMode::kReuse,
                                    /*create_graph=*/false, /*allow_unused=*/true);
    for (std::size_t j = 0; j < gv.size(); ++j) {
      if (!gv[j].defined()) gv[j] = at::zeros_like(inputs[j]).detach();
      if (acc.size() < gv.size()) {
        acc.push_back(gv[j]);
      } else {
        acc[j].add_(gv[j]);
      }
    }
    release(i);
  }
  ++products_;
  return reduce_over_dp(std::move(acc), reduction);
}

namespace {

/// Gradient of one document's SUM loss with respect to `inputs` (zeros for parameters it does not reach); no graph
/// is kept.
std::vector<at::Tensor> document_gradient(const TransformerModel& model, const std::vector<at::Tensor>& inputs,
                                          const Batch& document) {
  const ForwardResult f = model.forward(document);
  auto grads = torch::autograd::grad({f.loss_sum}, inputs, {}, false, false, /*allow_unused=*/true);
  for (std::size_t j = 0; j < grads.size(); ++j)
    grads[j] = grads[j].defined() ? grads[j].detach() : at::zeros_like(inputs[j]).detach();
  return grads;
}

}  // namespace

DocumentGradients document_gradients(const TransformerModel& model, Communicator& dp,
                                     const std::vector<std::size_t>& subset, const std::vector<Batch>& documents,
                                     const DpPartition* partition) {
  DocumentGradients out;
  const auto inputs = inputs_of(model, subset);
  std::vector<ShardLayout> layout;
  for (std::size_t i : subset) layout.push_back(model.parameters()[i].layout);
  for (std::size_t d = 0; d < documents.size(); ++d) {
    const std::int64_t tokens = documents[d].num_targets();
    if (tokens == 0) UNLEARN_THROW(Error, "document " << d << " of the Fisher sample has no target tokens");
    out.total_tokens += tokens;
    const int owner = static_cast<int>(d % static_cast<std::size_t>(dp.size()));
    std::vector<at::Tensor> grads;
    if (dp.rank() == owner) {
      grads = document_gradient(model, inputs, documents[d]);
    } else {
      for (const auto& in : inputs) grads.push_back(at::empty_like(in).detach());
    }
    if (dp.size() > 1) {
      std::vector<at::Tensor> flat;
      for (const auto& g : grads) flat.push_back(g.reshape(-1));
      at::Tensor buf = at::cat(flat);
      dp.broadcast(buf, owner);
      std::int64_t off = 0;
      for (auto& g : grads) {
        g = buf.narrow(0, off, g.numel()).view(g.sizes()).clone();
        off += g.numel();
      }
    }
    ShardedVector row(std::move(grads), layout, &model.tp());
    out.rows.push_back(partition ? partition->slice(row) : std::move(row));
  }
  return out;
}

ShardedVector squared_gradient_sum(const TransformerModel& model, Communicator& dp,
                                   const std::vector<std::size_t>& subset, const std::vector<Batch>& documents) {
  const auto inputs = inputs_of(model, subset);
  std::vector<at::Tensor> sum;
  for (std::size_t j : subset) sum.push_back(at::zeros_like(model.parameters()[j].value).detach());
  const auto step = static_cast<std::size_t>(dp.size());
  for (std::size_t d = static_cast<std::size_t>(dp.rank()); d < documents.size(); d += step) {
    if (documents[d].num_targets() == 0) continue;
    const auto g = document_gradient(model, inputs, documents[d]);
    for (std::size_t j = 0; j < g.size(); ++j) sum[j].addcmul_(g[j], g[j]);
  }
  return sum_over_dp(model, dp, subset, std::move(sum));
}

LossGradient loss_and_gradient(const TransformerModel& model, Communicator& dp, const std::vector<std::size_t>& subset,
                               const std::vector<Batch>& batches) {
  std::int64_t n_local = 0;
  for (const auto& b : batches) {
    b.validate(model.config());
    n_local += b.num_targets();
  }
  LossGradient out;
  out.num_targets = dp.all_reduce_scalar(n_local);
  if (out.num_targets == 0) UNLEARN_THROW(Error, "gradient: the set has no target tokens on any rank (empty set?)");
  const auto inputs = inputs_of(model, subset);
  std::vector<at::Tensor> grad;
  for (std::size_t j : subset) grad.push_back(at::zeros_like(model.parameters()[j].value).detach());
  double loss_local = 0.0;
  for (const auto& b : batches) {
    if (b.tokens.numel() == 0) continue;
    const ForwardResult f = model.forward(b);
    loss_local += f.loss_sum.item<double>();
    const auto g = torch::autograd::grad({f.loss_sum / static_cast<double>(out.num_targets)}, inputs, {},
                                         /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);
    for (std::size_t j = 0; j < g.size(); ++j)
      if (g[j].defined()) grad[j].add_(g[j]);
  }
  out.loss = dp.all_reduce_scalar(loss_local) / static_cast<double>(out.num_targets);
  out.gradient = sum_over_dp(model, dp, subset, std::move(grad));
  return out;
}

}  // namespace unlearn
