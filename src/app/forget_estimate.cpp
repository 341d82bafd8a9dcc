#include "forget_estimate.h"

#include <ATen/ATen.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "unlearn/model/transformer.h"
#include "unlearn/parse/units.h"
#include "unlearn/util/error.h"
#include "unlearn/util/log.h"

namespace unlearn {

namespace {

/// What a rank holds before any model: LibTorch, MPI, BLAS and the token dataset (peak RSS of gradient ascent on
/// the demo's 3 MB model was 285 MB).
constexpr std::int64_t kRuntimeBytes = std::int64_t{256} << 20;

/// GFLOP/s of a [256, 256] x [256, 256] product in this process's dtype, for about 0.1 s.
double measure_matmul_gflops(at::ScalarType dtype) {
  const at::Tensor a = at::randn({256, 256}, at::TensorOptions().dtype(dtype));
  const at::Tensor b = at::randn({256, 256}, at::TensorOptions().dtype(dtype));
  at::Tensor c = at::mm(a, b);  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  int reps = 0;
  double s = 0;
  while (s < 0.1) {
    c = at::mm(a, b);
    ++reps;
    s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return 2.0 * 256 * 256 * 256 * reps / s / 1e9;
}

}  // namespace

ForgetEstimate estimate_forget(const ModelConfig& config, const ProcessGrid& grid, const ForgetShape& shape) {
  // The config comes from the checkpoint's metadata, identical on every rank: a TP size that cannot split it is
  // agreed (one message) rather than an exception per rank that aborts the job (found by
  // tests/reliability/bad_input.sh; load_model words it the same way).
  try {
    config.validate(grid.tp_size());
  } catch (const ConfigError& e) {
    throw AgreedError("the checkpoint's model (" + config.describe() + ") cannot be loaded at --tp " +
                      std::to_string(grid.tp_size()) + ": " + e.what());
  }
  ModelConfig meta = config;
  meta.device = "meta";  // shapes only: no memory, no initialisation
  TransformerModel model(meta, grid.tp());
  ForgetEstimate e;
  for (const Parameter& p : model.parameters()) e.params_local += p.value.numel();
  for (std::size_t i : model.select(shape.params_regex)) e.subset_local += model.parameters()[i].value.numel();
  const std::int64_t b = static_cast<std::int64_t>(at::elementSize(config.dtype));
  e.weights_bytes = e.params_local * b;
  // Vectors of the subset's size alive at once: gradients (forget, retain, full, and the Curvature object's), the
  // right-hand side and update, CG's x, r, p, Ap (and M⁻¹ with a preconditioner); gradient ascent keeps the step
  // and one gradient. Split over DP
  // (design 3.4), the solver's vectors are DP chunks, while a product's gathered input, its partial result and the
  // reduce-scatter buffer stay whole, as do the step, noise and update applied after the solve.
  const bool fisher = shape.method == Method::kFisherRemoval || shape.method == Method::kFisherForgetting ||
                      (shape.method == Method::kNewtonCg && shape.curvature == CurvatureKind::kFisher);
  const int vectors = (shape.method == Method::kGradientAscent ? 5 : shape.method == Method::kNewtonCg ? 11 : 9) +
                      (shape.preconditioner && shape.method == Method::kNewtonCg ? 1 : 0);
  const bool chunked = shape.dp_chunks > 1 && shape.method != Method::kGradientAscent;
  e.vectors = chunked ? 4 : vectors;
  e.chunked_vectors = chunked ? vectors - 2 : 0;
  const std::int64_t chunk = (e.subset_local + shape.dp_chunks - 1) / shape.dp_chunks;
  e.vectors_bytes = (e.vectors * e.subset_local + e.chunked_vectors * chunk) * b;
  // The Fisher store: m per-document gradients (or their DP chunks) plus the m x m Gram in float64.
  if (fisher) e.fisher_bytes = shape.retain_documents * (chunked ? chunk : e.subset_local) * b +
                               shape.retain_documents * shape.retain_documents * 8;
  // Reused graphs (forward + create_graph backward) of the retain sample on this DP replica: per token and layer
  // about 4d + 10d/tp + (heads/tp) T saved values, doubled by the second graph, plus three logit-sized tensors;
  // times what LibTorch really keeps beyond that count, measured as peak RSS per retain token on the demo model
  // (docs/forget.md "Memory and time"): 3.3x for the G·v graphs, 2.3x for H·v. Only Newton-CG on H or G keeps
  // graphs; every other pass is a plain backward of one micro-batch at a time (`transient`, one graph's worth).
  // GPT-2's GELU keeps its first derivative on the graph (from the setup's backward; shared by the double-backward
  // nodes) and, for H·v, grad·second derivative (from the first product): d_ff / tp values each per token and layer
  // (src/model/tp_layers.cpp), counted apart from the 2.3x / 3.3x.
  const double tp = grid.tp_size(), d = static_cast<double>(config.d_model);
  double gelu_caches = 0.0;  // LLaMA's SiLU keeps none
  if (config.family == Family::kGpt2) gelu_caches = shape.curvature == CurvatureKind::kGgn ? 1.0 : 2.0;
  const double per_token = 2.0 * static_cast<double>(config.n_layers) *
                               (4 * d + 10 * d / tp + static_cast<double>(config.n_heads) / tp *
                                                          static_cast<double>(config.max_positions)) +
                           3.0 * static_cast<double>(config.vocab_size) / tp;
  const double tokens = static_cast<double>(shape.retain_tokens) / grid.dp_size();
  const bool keeps_graphs = shape.method == Method::kNewtonCg && shape.curvature != CurvatureKind::kFisher;
  const double kept = shape.curvature == CurvatureKind::kGgn ? 3.3 : 2.3;
  const double cached_per_token =
      gelu_caches * static_cast<double>(config.n_layers) * static_cast<double>(config.d_ff) / tp;
  if (keeps_graphs)
    e.graph_bytes =
        static_cast<std::int64_t>((kept * per_token + cached_per_token) * tokens * static_cast<double>(b));
  e.transient_bytes = static_cast<std::int64_t>(1.3 * per_token * static_cast<double>(shape.rows_per_batch) *
                                                static_cast<double>(config.max_positions) * static_cast<double>(b));
  e.total_bytes = kRuntimeBytes + e.weights_bytes + e.vectors_bytes + e.fisher_bytes + e.graph_bytes +
                  e.transient_bytes;
  // Time: a forward is about 2 FLOPs per local parameter per token; with the graph reused an H·v costs 6 forwards
  // of matrix products and a G·v 4 (docs/scaling.md 1.1), the graph setup 3 (forward + first backward).
  e.matmul_gflops = measure_matmul_gflops(config.dtype);
  const double forward_s = 2.0 * static_cast<double>(e.params_local) * tokens / (e.matmul_gflops * 1e9);
  e.product_s = (shape.curvature == CurvatureKind::kHessian ? 6 : 4) * forward_s;
  e.setup_s = 3 * forward_s;
  const double products = fisher && shape.method != Method::kNewtonCg ? 0.0 : shape.cg_iterations;
  e.solve_s = e.setup_s * 2 + products * e.product_s;
  if (fisher) e.solve_s += shape.retain_documents > 0 ? 3 * forward_s : 0;  // per-document gradients
  return e;
}

std::int64_t available_memory_per_rank(const ProcessGrid& grid) {
  std::int64_t kb = 0;
  std::ifstream f("/proc/meminfo");
  for (std::string key; f >> key;) {
    std::int64_t value = 0;
    std::string unit;
    f >> value >> unit;
    if (key == "MemAvailable:") kb = value;
  }
  const std::int64_t mine = kb > 0 ? kb * 1024 / std::max(1, grid.node_local_size()) : 0;
  // The smallest over the ranks (0 anywhere: unknown, so no limit).
  const std::int64_t least = grid.world().all_reduce_scalar(mine > 0 ? mine : INT64_MAX, ReduceOp::kMin);
  return least == INT64_MAX ? 0 : least;
}

std::string describe(const ForgetEstimate& e, const ProcessGrid& grid) {
  auto fb = [](std::int64_t n) { return format_bytes(static_cast<std::uint64_t>(n)); };
  std::ostringstream os;
  os.precision(3);
  os << "estimate per rank (tp " << grid.tp_size() << " x dp " << grid.dp_size() << "): " << e.params_local
     << " parameters held, " << e.subset_local << " updated\n"
     << "  memory: weights " << fb(e.weights_bytes) << ", solver vectors " << fb(e.vectors_bytes) << " ("
     << e.vectors << " whole" << (e.chunked_vectors ? " + " + std::to_string(e.chunked_vectors) + " in DP chunks" : "")
     << "), Fisher store " << fb(e.fisher_bytes)
     << ", reused graphs ~" << fb(e.graph_bytes) << ", one micro-batch ~" << fb(e.transient_bytes)
     << ", runtime ~" << fb(kRuntimeBytes) << "; total ~" << fb(e.total_bytes) << "\n"
     << "  time: matmul " << e.matmul_gflops << " GFLOP/s here; ~" << e.setup_s << " s graph setup, ~" << e.product_s
     << " s per curvature product, ~" << e.solve_s << " s for the solve";
  return os.str();
}

std::string to_json(const ForgetEstimate& e) {
  return JsonObject().add("params_local", e.params_local).add("subset_local", e.subset_local)
      .add("weights_bytes", e.weights_bytes).add("vectors", e.vectors)
      .add("chunked_vectors", e.chunked_vectors).add("vectors_bytes", e.vectors_bytes)
      .add("fisher_bytes", e.fisher_bytes).add("graph_bytes", e.graph_bytes)
      .add("transient_bytes", e.transient_bytes).add("runtime_bytes", kRuntimeBytes).add("total_bytes", e.total_bytes)
      .add("matmul_gflops", e.matmul_gflops).add("product_s", e.product_s).add("setup_s", e.setup_s)
      .add("solve_s", e.solve_s).str();
}

}  // namespace unlearn
