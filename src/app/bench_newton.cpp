// `unlearn bench newton`: one Newton-CG step on a checkpoint, timed the way a user pays for it (forget gradient,
// retain graph, CG), with each CG iteration split into curvature products, the rest (vector operations and float64
// dot products) and communication. The batches are a formula (below) that tools/peers/newton_peers.py reproduces
// token for token, so the Python peers solve the same system on the same weights.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "unlearn/app/bench.h"
#include "unlearn/io/checkpoint.h"
#include "unlearn/model/curvature.h"
#include "unlearn/solver/cg.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

/// Row r of T tokens: token t = ((r·T + t)·2654435761 + salt·40503) mod 2³² mod V; one document per row, every
/// position but the last a target. This DP replica keeps rows r with r mod DP = its DP rank.
Batch formula_batch(std::int64_t rows, std::int64_t T, std::int64_t vocab, std::uint64_t salt, int dp, int dp_rank) {
  std::vector<std::int64_t> mine;
  for (std::int64_t r = dp_rank; r < rows; r += dp) mine.push_back(r);
  const auto n = static_cast<std::int64_t>(mine.size());
  Batch b;
  b.tokens = at::empty({n, T}, at::kLong);
  auto tok = b.tokens.accessor<std::int64_t, 2>();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t t = 0; t < T; ++t) {
      const std::uint64_t k = static_cast<std::uint64_t>(mine[static_cast<std::size_t>(i)] * T + t);
      tok[i][t] = static_cast<std::int64_t>(((k * 2654435761ull + salt * 40503ull) & 0xffffffffull) %
                                            static_cast<std::uint64_t>(vocab));
    }
  b.targets = at::full({n, T}, -1, at::kLong);
  if (T > 1) b.targets.narrow(1, 0, T - 1).copy_(b.tokens.narrow(1, 1, T - 1));
  b.segments = at::zeros({n, T}, at::kLong);
  b.positions = at::arange(T, at::kLong).expand({n, T}).contiguous();
  return b;
}

/// Times the products of the operator it wraps.
class TimedOperator final : public LinearOperator {
 public:
  explicit TimedOperator(LinearOperator& base) : base_(base) {}
  void apply(const ShardedVector& x, ShardedVector& y) override {
    const double t0 = steady_seconds();
    base_.apply(x, y);
    seconds += steady_seconds() - t0;
  }
  double seconds = 0;

 private:
  LinearOperator& base_;
};

struct StepTimes {
  double gradient = 0, setup = 0, cg = 0, products = 0, comm = 0;
  int iterations = 0;
  std::string status;
  double update_norm = 0, forget_loss = 0, retain_loss = 0;
  std::vector<double> cumulative;  // seconds since the start of the step after each CG iteration
};

}  // namespace

int run_newton_benchmark(AppContext& ctx, const NewtonBenchOptions& opt) {
  const ProcessGrid& grid = ctx.grid;
  const CurvatureKind kind = parse_curvature(opt.curvature);
  UNLEARN_CHECK(kind != CurvatureKind::kFisher, "bench newton: --curvature hessian or ggn");
  std::unique_ptr<TransformerModel> model = load_model(opt.checkpoint, grid);
  const ModelConfig& cfg = model->config();
  const auto all = model->select("");
  const std::int64_t T = cfg.max_positions;
  const Batch retain = formula_batch(opt.retain_rows, T, cfg.vocab_size, 1, grid.dp_size(), grid.dp_rank());
  const Batch forget = formula_batch(opt.forget_rows, T, cfg.vocab_size, 2, grid.dp_size(), grid.dp_rank());
  log_info0("bench newton: " + cfg.describe() + ", " + std::to_string(model->global_numel()) + " parameters; retain " +
            std::to_string(opt.retain_rows) + " x " + std::to_string(T) + " tokens, forget " +
            std::to_string(opt.forget_rows) + " x " + std::to_string(T) + "; " + opt.curvature + ", λ " +
            std::to_string(opt.damping) + ", " + std::to_string(opt.cg_iters) + " CG iterations");

  std::vector<StepTimes> steps;
  for (int r = 0; r < opt.reps + 1; ++r) {  // the first step warms up allocators and is dropped
    StepTimes s;
    grid.world().barrier();
    const CommUsage comm0 = comm_usage();
    const double t0 = steady_seconds();
    const LossGradient f = loss_and_gradient(*model, grid.dp(), all, {forget});
    s.gradient = steady_seconds() - t0;
    double t = steady_seconds();
    Curvature curv(*model, grid.dp(), all);
    curv.prepare({retain});
    s.setup = steady_seconds() - t;
    CurvatureOperator C(curv, kind);
    TimedOperator timed(C);
    DampedOperator A(timed, opt.damping);
    CgOptions cg;
    cg.max_iters = opt.cg_iters;
    cg.rtol = 0.0;  // a fixed iteration count (the peers run as many)
    ShardedVector x;
    t = steady_seconds();
    const CgResult res = solve_cg(A, f.gradient, x, cg);
    s.cg = steady_seconds() - t;
    grid.world().barrier();
    s.products = timed.seconds;
    s.comm = comm_usage().seconds - comm0.seconds;
    s.iterations = res.iterations;
    s.status = to_string(res.status);
    s.update_norm = x.norm();
    s.forget_loss = f.loss;
    s.retain_loss = curv.loss();
    for (const CgIteration& it : res.history) s.cumulative.push_back(s.gradient + s.setup + it.seconds);
    if (r > 0) steps.push_back(std::move(s));
  }
  // The step of median total time.
  std::sort(steps.begin(), steps.end(), [](const StepTimes& a, const StepTimes& b) {
    return a.gradient + a.setup + a.cg < b.gradient + b.setup + b.cg;
  });
  const StepTimes& s = steps[steps.size() / 2];
  const double total = s.gradient + s.setup + s.cg, k = std::max(1, s.iterations);
  // Ranks differ a little; report the slowest rank's numbers (the step ends when it does).
  Communicator& w = grid.world();
  const double total_max = w.all_reduce_scalar(total, ReduceOp::kMax);
  const double comm_max = w.all_reduce_scalar(s.comm, ReduceOp::kMax);
  std::ostringstream out;
  char line[400];
  std::snprintf(line, sizeof(line),
                "| checkpoint | ranks (TP x DP) | CG iterations (status) | step (s) | forget gradient (s) | graph setup (s) | "
                "CG (s) | per iteration (s) | products / iteration (s) | rest of CG / iteration (s) | communication (s) |\n"
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
                "| %s | %d (%d x %d) | %d (%s) | %.3f | %.3f | %.3f | %.3f | %.4f | %.4f | %.4f | %.3f |\n",
                opt.checkpoint.c_str(), grid.world_size(), grid.tp_size(), grid.dp_size(), s.iterations,
                s.status.c_str(), total_max, s.gradient, s.setup, s.cg, s.cg / k, s.products / k,
                (s.cg - s.products) / k, comm_max);
  out << line;
  std::ostringstream curve;
  for (std::size_t i = 0; i < s.cumulative.size(); ++i) curve << (i ? ", " : "") << s.cumulative[i];
  log_info0(out.str() + "\nstep time after each CG iteration (s): " + curve.str());
  if (grid.world_rank() == 0) {
    JsonObject rec;
    rec.add("event", "bench_newton").add("checkpoint", opt.checkpoint).add("params", model->global_numel())
        .add("world_size", grid.world_size()).add("tp", grid.tp_size()).add("dp", grid.dp_size())
        .add("curvature", opt.curvature).add("damping", opt.damping).add("retain_rows", opt.retain_rows)
        .add("forget_rows", opt.forget_rows).add("cg_iterations", s.iterations).add("cg_status", s.status)
        .add("step_s", total_max).add("gradient_s", s.gradient).add("setup_s", s.setup).add("cg_s", s.cg)
        .add("products_s", s.products).add("comm_s", comm_max).add("update_norm", s.update_norm)
        .add("forget_loss", s.forget_loss).add("retain_loss", s.retain_loss)
        .add_raw("cumulative_s", "[" + curve.str() + "]").add("reps", opt.reps);
    ctx.metrics.write(rec);
  }
  write_bench_output(ctx, opt.output, out.str());
  return 0;
}

}  // namespace unlearn
