// `unlearn bench model`: time of forward+backward, one exact H·v and one G·v for preset GPT-2 sizes; FLOP rates
// against the matrix-product rate measured in the same run; H·v / gradient; TP = 2 against TP = 1 as a fraction of
// the machine's own 2-rank matrix-product speed-up, in paired rounds; peak memory per rank; Fisher Removal's
// Woodbury inverse product with 8 and 64 rows against one H·v.
// Ratios only: every comparison is measured in this one run.
#include <ATen/ATen.h>
#include <mpi.h>
#include <sys/resource.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <sstream>

#include "unlearn/app/bench.h"
#include "unlearn/model/curvature.h"
#include "unlearn/solver/fisher.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

struct Preset {
  const char* name;
  ModelConfig cfg;
  std::int64_t batch, seq;
};

/// Waits for the work queued on `device` (a GPU runs kernels asynchronously): a copy to the host of a tensor made
/// there after that work returns when the stream has run it. No-op on the CPU.
void finish_device_work(const at::Device& device) {
  if (!device.is_cpu()) (void)at::zeros({1}, at::TensorOptions().device(device)).cpu();
}

/// `rows` x `positions` replaces the preset's batch when both are positive.
Preset preset(const std::string& name, at::ScalarType dtype, std::int64_t rows, std::int64_t positions,
              const std::string& device) {
  ModelConfig c;
  c.family = Family::kGpt2;
  c.vocab_size = 256;
  c.dtype = dtype;
  c.device = device;
  std::int64_t batch = 8, seq = 128;
  if (name == "tiny") {
    c.d_model = 64, c.n_layers = 2, c.n_heads = 4, batch = 4, seq = 64;
  } else if (name == "5m") {
    c.d_model = 256, c.n_layers = 6, c.n_heads = 8;
  } else if (name == "30m") {
    c.d_model = 512, c.n_layers = 9, c.n_heads = 8;
  } else {
    UNLEARN_THROW(ConfigError, "unknown model size '" << name << "' (tiny, 5m, 30m)");
  }
  if (rows > 0 && positions > 0) batch = rows, seq = positions;
  c.n_kv_heads = c.n_heads;
  c.d_ff = 4 * c.d_model;
  c.max_positions = seq;
  return {name == "tiny" ? "tiny" : name == "5m" ? "5m" : "30m", c, batch, seq};
}

/// One document per row, every position but the last a target.
Batch bench_batch(const Preset& p) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1234);
  Batch b;
  b.tokens = at::randint(p.cfg.vocab_size, {p.batch, p.seq}, gen, at::TensorOptions().dtype(at::kLong));
  b.targets = at::full({p.batch, p.seq}, -1, at::kLong);
  b.targets.narrow(1, 0, p.seq - 1).copy_(b.tokens.narrow(1, 1, p.seq - 1));
  b.segments = at::zeros({p.batch, p.seq}, at::kLong);
  b.positions = at::arange(p.seq, at::kLong).expand({p.batch, p.seq}).contiguous();
  return b;
}

/// Matrix-product FLOPs of one forward pass (attention included, target rows only through the head).
double forward_flops(const Preset& p) {
  const double tokens = static_cast<double>(p.batch * p.seq), d = static_cast<double>(p.cfg.d_model);
  const double L = static_cast<double>(p.cfg.n_layers), ff = static_cast<double>(p.cfg.d_ff);
  const double per_token = L * (2 * (4 * d * d) + 2 * (2 * d * ff)) + 2 * d * static_cast<double>(p.cfg.vocab_size);
  const double attention = L * 2 * 2 * static_cast<double>(p.batch) * static_cast<double>(p.seq * p.seq) * d;
  return tokens * per_token + attention;
}

struct Timings {
  double grad = 0, hvp = 0, gvp = 0, setup = 0;
  // Fisher Removal's inverse product (F̂₀ + λI)⁻¹ v by Woodbury with m stored rows, the Gram cached, and the
  // Gram itself (paid once per request): m = kFisherRows[i].
  double fisher_solve[2] = {0, 0}, fisher_gram[2] = {0, 0};
};
constexpr int kFisherRows[2] = {8, 64};

/// Products timed on each graph (the optimised Python peer's --products-per-setup default).
constexpr int kProductsPerGraph = 3;

/// Untimed repetitions before the timed ones: a fresh process runs its first two 1.3-2x slower (5m, per-rep times:
/// H·v 2.2 and 1.7 s, then 0.79-0.86 s at TP = 1; 1.1, 0.54, then 0.46-0.51 s at TP = 2), while the heap grows and
/// is first touched; a Newton step runs hundreds of products, so the steady state is what counts.
constexpr int kWarmupReps = 2;

/// Medians over `reps` of: forward + backward; an H·v on a reused graph (kProductsPerGraph per graph, all timed); a
/// G·v on a reused Jᵀu (likewise, after one untimed product that builds Jᵀu); and
/// Fisher Removal's Woodbury product with 8 and 64 rows (random rows: its cost does not depend on their values).
Timings time_products(const Preset& p, Communicator& tp, Communicator& dp, int reps) {
  const at::Device device(p.cfg.device);
  // The end of a timed piece: this rank's device is done, then every rank of the TP group is.
  const auto done = [&] {
    finish_device_work(device);
    tp.barrier();
  };
  TransformerModel model(p.cfg, tp);
  model.init_random(1);
  const Batch batch = bench_batch(p);
  const auto all = model.select("");
  std::vector<at::Tensor> params;
  for (std::size_t i : all) params.push_back(model.parameters()[i].value);
  std::vector<double> tg, th, tgv, ts;
  Curvature curv(model, dp, all);
  ShardedVector v = model.values(all);
  for (int r = 0; r < kWarmupReps + reps; ++r) {
    done();
    double t0 = steady_seconds();
    const ForwardResult f = model.forward(batch);
    auto g = torch::autograd::grad({f.loss_sum / static_cast<double>(batch.num_targets())}, params);
    done();
    const double t_grad = steady_seconds() - t0;
    t0 = steady_seconds();
    curv.prepare({batch});
    done();
    const double t_setup = steady_seconds() - t0;
    // kProductsPerGraph products on each graph, each timed, as the Python peers do: a Newton step runs many on one
    // graph, and the first also fills the per-graph caches (e.g. GELU's second derivative).
    std::vector<double> t_hvp, t_gvp;
    for (int k = 0; k < kProductsPerGraph; ++k) {
      t0 = steady_seconds();
      curv.hvp(v);
      done();
      t_hvp.push_back(steady_seconds() - t0);
    }
    curv.gvp(v);  // builds Jᵀu (paid once per step, like the setup), then the timed products on it
    for (int k = 0; k < kProductsPerGraph; ++k) {
      t0 = steady_seconds();
      curv.gvp(v);
      done();
      t_gvp.push_back(steady_seconds() - t0);
    }
    if (r >= kWarmupReps) {
      tg.push_back(t_grad), ts.push_back(t_setup);
      th.insert(th.end(), t_hvp.begin(), t_hvp.end());
      tgv.insert(tgv.end(), t_gvp.begin(), t_gvp.end());
    }
  }
  Timings out{median(tg), median(th), median(tgv), median(ts)};
  for (int k = 0; k < 2; ++k) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(77 + k);
    std::vector<ShardedVector> rows;
    for (int i = 0; i < kFisherRows[k]; ++i) {
      ShardedVector row = v.zeros_like();
      for (std::size_t j = 0; j < row.size(); ++j)  // drawn on the host: a CPU generator fills host tensors only
        row[j].copy_(at::randn(row[j].sizes(), gen, row[j].options().device(at::kCPU)));
      rows.push_back(std::move(row));
    }
    const FisherStore store(std::move(rows), batch.num_targets());
    finish_device_work(device);
    double t0 = steady_seconds();
    store.gram();
    finish_device_work(device);
    out.fisher_gram[k] = steady_seconds() - t0;
    std::vector<double> tf;
    for (int r = 0; r < reps + 1; ++r) {
      ShardedVector y;
      t0 = steady_seconds();
      store.solve(1e-3, v, y);
      finish_device_work(device);
      if (r > 0) tf.push_back(steady_seconds() - t0);
    }
    out.fisher_solve[k] = median(tf);
  }
  return out;
}

/// GFLOP/s of an [m, k] x [k, n] product, median of reps after as many untimed ones: a process's first products
/// run up to 4x slower (measured: a rank whose first work this was read 24 GFLOP/s over 10 reps after one untimed
/// product, then 95), which made the 2-rank speed-up read 0.4-0.9 on a machine whose two cores give 1.9-2.0.
double matmul_gflops(std::int64_t m, std::int64_t k, std::int64_t n, at::ScalarType dtype, int reps,
                     const at::Device& device = at::kCPU) {
  const at::Tensor a = at::randn({m, k}, at::TensorOptions().dtype(dtype).device(device));
  const at::Tensor b = at::randn({k, n}, at::TensorOptions().dtype(dtype).device(device));
  std::vector<double> t;
  for (int r = 0; r < 2 * reps; ++r) {
    finish_device_work(device);
    const double t0 = steady_seconds();
    at::Tensor c = at::matmul(a, b);
    finish_device_work(device);
    if (r >= reps) t.push_back(steady_seconds() - t0);
  }
  return 2.0 * static_cast<double>(m * k * n) / median(t) / 1e9;
}

/// One model's H·v on a graph built once, for timing products back to back.
struct HvpBench {
  TransformerModel model;
  Curvature curv;
  ShardedVector v;
  HvpBench(const Preset& p, Communicator& tp, Communicator& dp)
      : model(p.cfg, tp), curv(model, dp, model.select("")) {
    model.init_random(1);
    v = model.values(model.select(""));
    curv.prepare({bench_batch(p)});
  }
  /// Median of n H·v, each closed by a barrier of the model's TP group (the product is done when every rank is).
  double median_hvp(Communicator& tp, int n) {
    std::vector<double> t;
    for (int i = 0; i < n; ++i) {
      const double t0 = steady_seconds();
      curv.hvp(v);
      tp.barrier();
      t.push_back(steady_seconds() - t0);
    }
    return median(t);
  }
};

/// Forwards every collective to `inner` and, while `recording`, keeps a zero tensor of each call's shape and dtype,
/// so that the collectives of one product can be replayed alone: their time is what TP adds to a product that no
/// partitioning of the arithmetic removes (each all-reduce's input comes from the layer the previous one fed, so
/// they run in sequence). Groups split from it are not recorded (the GPT-2 presets split none).
class RecordingCommunicator final : public Communicator {
 public:
  explicit RecordingCommunicator(Communicator& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string_view backend_name() const override { return inner_.backend_name(); }
  std::unique_ptr<Communicator> split(int color, int key) const override { return inner_.split(color, key); }
  std::unique_ptr<Communicator> split_node_local() const override { return inner_.split_node_local(); }
  at::Device scalar_device() const override { return inner_.scalar_device(); }

  bool recording = false;
  /// The recorded calls, in order, on the inner communicator (zero inputs: no denormals, no NaN).
  void replay() {
    for (Call& c : calls_) switch (c.kind) {
        case Kind::kAllReduce: inner_.all_reduce(c.in, c.op); break;
        case Kind::kAllGather: inner_.all_gather(c.in, c.out); break;
        case Kind::kReduceScatter: inner_.reduce_scatter(c.in, c.out, c.op); break;
        case Kind::kBroadcast: inner_.broadcast(c.in, c.root); break;
        case Kind::kBarrier: inner_.barrier(); break;
      }
  }
  std::size_t calls() const { return calls_.size(); }
  std::int64_t bytes() const {
    std::int64_t n = 0;
    for (const Call& c : calls_) n += c.in.defined() ? static_cast<std::int64_t>(c.in.nbytes()) : 0;
    return n;
  }

 private:
  enum class Kind { kAllReduce, kAllGather, kReduceScatter, kBroadcast, kBarrier };
  struct Call {
    Kind kind;
    at::Tensor in, out;
    ReduceOp op = ReduceOp::kSum;
    int root = 0;
  };
  void note(Kind kind, const at::Tensor& in, const at::Tensor& out, ReduceOp op, int root) {
    if (!recording) return;
    calls_.push_back({kind, in.defined() ? at::zeros_like(in) : at::Tensor(),
                      out.defined() ? at::zeros_like(out) : at::Tensor(), op, root});
  }
  void do_all_reduce(at::Tensor& t, ReduceOp op) override {
    note(Kind::kAllReduce, t, {}, op, 0);
    inner_.all_reduce(t, op);
  }
  void do_all_gather(const at::Tensor& in, at::Tensor& out) override {
    note(Kind::kAllGather, in, out, ReduceOp::kSum, 0);
    inner_.all_gather(in, out);
  }
  void do_reduce_scatter(const at::Tensor& in, at::Tensor& out, ReduceOp op) override {
    note(Kind::kReduceScatter, in, out, op, 0);
    inner_.reduce_scatter(in, out, op);
  }
  void do_broadcast(at::Tensor& t, int root) override {
    note(Kind::kBroadcast, t, {}, ReduceOp::kSum, root);
    inner_.broadcast(t, root);
  }
  void do_barrier() override {
    note(Kind::kBarrier, {}, {}, ReduceOp::kSum, 0);
    inner_.barrier();
  }

  Communicator& inner_;
  std::vector<Call> calls_;
};

/// TP = 2 against TP = 1 in paired rounds. Each round times, back to back: the machine's own 2-rank speed-up (one
/// [B·T, d] x [d, 4d] product on rank 0 alone, then its two column halves on the 2 ranks at once), `reps` H·v at
/// TP = 1 on rank 0 (1 thread, rank 1 waiting) and `reps` H·v at TP = 2; the round's fraction is its model speed-up
/// over its machine speed-up. Rounds seconds apart see the same host: measured once each, TP = 2 H·v on 30m read
/// 2.41-2.81 s within 10 minutes, a spread wider than the distance of the fraction from its goal.
/// Each round also replays the collectives of one TP = 2 H·v alone (`collectives`, C) for the fraction's ceiling:
/// that of a TP = 2 product whose whole arithmetic split at the machine's own speed-up S and whose collectives cost
/// what they cost alone, T1 / (T1 / S + C) / S = T1 / (T1 + S·C). Only split work running faster than S predicts
/// (smaller operands fitting a cache) or the host's noise can put a measured fraction above it.
/// `in_collectives_rank0/1` are each rank's time inside collectives per TP = 2 H·v (the closing barrier included):
/// beyond `collectives`, time spent waiting for the other rank.
struct ScalingRound {
  double hvp_tp1 = 0, hvp_tp2 = 0, matmul_speedup = 0, collectives = 0;
  double in_collectives_rank0 = 0, in_collectives_rank1 = 0;
  double fraction() const { return hvp_tp1 / hvp_tp2 / matmul_speedup; }
  double ceiling() const { return hvp_tp1 / (hvp_tp1 + matmul_speedup * collectives); }
};

struct ScalingRun {
  std::vector<ScalingRound> rounds;
  std::size_t collectives_per_hvp = 0;
  std::int64_t collective_bytes_per_hvp = 0;
};

ScalingRun tp_scaling_rounds(const Preset& p, const ProcessGrid& grid, int rounds, int reps) {
  Communicator& world = grid.world();
  const bool serial_rank = grid.world_rank() == 0;
  auto local_tp = make_local_communicator(), local_dp = make_local_communicator();
  std::unique_ptr<HvpBench> serial;
  if (serial_rank) serial = std::make_unique<HvpBench>(p, *local_tp, *local_dp);
  RecordingCommunicator tp(grid.tp());
  HvpBench parallel(p, tp, grid.dp());
  // Untimed products first on both sides (kWarmupReps' reason: a fresh heap runs the first ones slower).
  if (serial_rank) serial->median_hvp(*local_tp, kWarmupReps);
  world.barrier();
  parallel.median_hvp(grid.tp(), kWarmupReps);
  tp.recording = true;
  parallel.curv.hvp(parallel.v);
  tp.recording = false;
  ScalingRun out{std::vector<ScalingRound>(rounds), tp.calls(), tp.bytes()};
  const auto median_replay = [&] {
    std::vector<double> t;
    for (int i = 0; i < 2 * reps; ++i) {  // the first half untimed, as the product's warm-up
      grid.tp().barrier();
      const double t0 = steady_seconds();
      tp.replay();
      grid.tp().barrier();
      if (i >= reps) t.push_back(steady_seconds() - t0);
    }
    return median(t);
  };
  const std::int64_t m = p.batch * p.seq, d = p.cfg.d_model, ff = p.cfg.d_ff;
  for (ScalingRound& r : out.rounds) {
    const double mm1 = serial_rank ? matmul_gflops(m, d, ff, p.cfg.dtype, 10) : 0.0;
    world.barrier();  // both halves at the same time
    const double half = matmul_gflops(m, d, ff / 2, p.cfg.dtype, 10);
    // t1 / t2 for equal total work: t1 = W / mm1, t2 = (W / 2) / (slowest half's rate).
    r.matmul_speedup =
        2.0 * world.all_reduce_scalar(half, ReduceOp::kMin) / world.all_reduce_scalar(mm1, ReduceOp::kMax);
    const double t1 = serial_rank ? serial->median_hvp(*local_tp, reps) : 0.0;
    world.barrier();
    const double c0 = comm_usage().seconds;
    r.hvp_tp2 = parallel.median_hvp(grid.tp(), reps);
    const double mine = (comm_usage().seconds - c0) / reps;
    r.in_collectives_rank0 = world.all_reduce_scalar(grid.world_rank() == 0 ? mine : 0.0, ReduceOp::kSum);
    r.in_collectives_rank1 = world.all_reduce_scalar(grid.world_rank() == 1 ? mine : 0.0, ReduceOp::kSum);
    r.collectives = median_replay();
    r.hvp_tp1 = world.all_reduce_scalar(t1, ReduceOp::kMax);
  }
  return out;
}

/// "[a, b, c]" for a metrics record.
std::string json_list(const std::vector<ScalingRound>& rounds, double ScalingRound::*field) {
  std::ostringstream o;
  o.precision(17);
  o << '[';
  for (std::size_t i = 0; i < rounds.size(); ++i) o << (i ? ", " : "") << rounds[i].*field;
  return o.str() + ']';
}

}  // namespace

int run_model_benchmark(AppContext& ctx, const ModelBenchOptions& opt) {
  const ProcessGrid& grid = ctx.grid;
  Communicator& world = grid.world();
  const at::ScalarType dtype = parse_dtype_name(opt.dtype);
  std::ostringstream table, scaling, fisher;
  table << "| model | params | grad fwd+bwd (s) | H·v (s) | G·v (s) | graph setup (s) | H·v / grad | "
           "grad GFLOP/s | H·v GFLOP/s | matmul GFLOP/s | peak RSS (MiB) |\n"
        << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  fisher << "| model | H·v (s) | Woodbury product m = 8 (s) | / H·v (goal <= 0.05) | m = 64 (s) | / H·v | Gram m = 8 / 64 "
            "(s, once per request) |\n|---|---:|---:|---:|---:|---:|---:|\n";
  scaling << "| model | rounds | H·v TP=1 (s) | H·v TP=2 (s) | model speed-up | matmul speed-up (2 ranks) | "
             "fraction (median, range over rounds) | collectives per TP=2 H·v | their time alone (s) | "
             "ceiling T1 / (T1 + S·C) (median, range) | in collectives during the TP=2 H·v, rank 0 / rank 1 (s) |\n"
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  auto local_tp = make_local_communicator(), local_dp = make_local_communicator();
  for (const std::string& name : opt.sizes) {
    const Preset p = preset(name, dtype, opt.rows, opt.positions, opt.device);
    const double flops = forward_flops(p);
    // Serial (TP = 1) on rank 0 while the others wait: the single-core baseline.
    Timings serial;
    double mm1 = 0;
    if (grid.world_rank() == 0) {
      serial = time_products(p, *local_tp, *local_dp, opt.reps);
      mm1 = matmul_gflops(p.batch * p.seq, p.cfg.d_model, p.cfg.d_ff, dtype, 10, at::Device(opt.device));
    }
    world.barrier();
    const double rss_serial = peak_rss_mib();
    ScalingRun scaling_run;
    const std::vector<ScalingRound>& rounds = scaling_run.rounds;
    if (world.size() == 2 && grid.tp_size() == 2) scaling_run = tp_scaling_rounds(p, grid, opt.tp_rounds, opt.reps);
    if (grid.world_rank() == 0) {
      std::int64_t n = 0;
      {
        TransformerModel m(p.cfg, *local_tp);
        n = m.global_numel();
      }
      char row[512];
      std::snprintf(row, sizeof(row), "| %s (d %lld, L %lld, B %lld x T %lld) | %.2fM | %.4f | %.4f | %.4f | %.4f | %.2f | %.1f | %.1f | %.1f | %.0f |\n",
                    p.name, static_cast<long long>(p.cfg.d_model), static_cast<long long>(p.cfg.n_layers),
                    static_cast<long long>(p.batch), static_cast<long long>(p.seq), n / 1e6, serial.grad, serial.hvp,
                    serial.gvp, serial.setup, serial.hvp / serial.grad, 3 * flops / serial.grad / 1e9,
                    6 * flops / serial.hvp / 1e9, mm1, rss_serial);  // H·v with graph reuse: 6F (docs/scaling.md 1.1)
      table << row;
      std::snprintf(row, sizeof(row), "| %s | %.4f | %.4f | %.3f | %.4f | %.3f | %.4f / %.4f |\n", p.name, serial.hvp,
                    serial.fisher_solve[0], serial.fisher_solve[0] / serial.hvp, serial.fisher_solve[1],
                    serial.fisher_solve[1] / serial.hvp, serial.fisher_gram[0], serial.fisher_gram[1]);
      fisher << row;
      JsonObject record;
      record.add("event", "bench_model")
          .add("model", p.name)
          .add("device", opt.device)
          .add("params", n)
          .add("batch_rows", p.batch)
          .add("batch_positions", p.seq)
          .add("grad_s", serial.grad)
          .add("hvp_s", serial.hvp)
          .add("gvp_s", serial.gvp)
          .add("setup_s", serial.setup)
          .add("fisher_solve_m8_s", serial.fisher_solve[0])
          .add("fisher_solve_m64_s", serial.fisher_solve[1])
          .add("fisher_gram_m8_s", serial.fisher_gram[0])
          .add("fisher_gram_m64_s", serial.fisher_gram[1])
          .add("matmul_gflops", mm1)
          .add("peak_rss_mib", rss_serial);
      if (!rounds.empty()) {
        const auto med = [&](double ScalingRound::*f) {
          std::vector<double> x;
          for (const ScalingRound& r : rounds) x.push_back(r.*f);
          return median(x);
        };
        std::vector<double> fractions, ceilings;
        for (const ScalingRound& r : rounds) fractions.push_back(r.fraction()), ceilings.push_back(r.ceiling());
        const auto [lo, hi] = std::minmax_element(fractions.begin(), fractions.end());
        const auto [clo, chi] = std::minmax_element(ceilings.begin(), ceilings.end());
        const double t1 = med(&ScalingRound::hvp_tp1), t2 = med(&ScalingRound::hvp_tp2);
        std::snprintf(row, sizeof(row),
                      "| %s (B %lld x T %lld) | %zu | %.4f | %.4f | %.2f | %.2f | %.2f (%.2f-%.2f) | %zu (%.2f MiB) | "
                      "%.5f | %.2f (%.2f-%.2f) | %.5f / %.5f |\n",
                      p.name, static_cast<long long>(p.batch), static_cast<long long>(p.seq), rounds.size(), t1, t2,
                      t1 / t2, med(&ScalingRound::matmul_speedup), median(fractions), *lo, *hi,
                      scaling_run.collectives_per_hvp, scaling_run.collective_bytes_per_hvp / 1048576.0,
                      med(&ScalingRound::collectives), median(ceilings), *clo, *chi,
                      med(&ScalingRound::in_collectives_rank0), med(&ScalingRound::in_collectives_rank1));
        scaling << row;
        record.add("tp_rounds", static_cast<std::int64_t>(rounds.size()))
            .add("hvp_tp1_s", t1)
            .add("hvp_tp2_s", t2)
            .add("matmul_speedup_2ranks", med(&ScalingRound::matmul_speedup))
            .add("tp_fraction", median(fractions))
            .add("tp_collectives_per_hvp", static_cast<std::int64_t>(scaling_run.collectives_per_hvp))
            .add("tp_collective_bytes_per_hvp", scaling_run.collective_bytes_per_hvp)
            .add("tp_collectives_alone_s", med(&ScalingRound::collectives))
            .add("tp_fraction_ceiling", median(ceilings))
            .add("tp_in_collectives_rank0_s", med(&ScalingRound::in_collectives_rank0))
            .add("tp_in_collectives_rank1_s", med(&ScalingRound::in_collectives_rank1))
            .add_raw("hvp_tp1_rounds_s", json_list(rounds, &ScalingRound::hvp_tp1))
            .add_raw("hvp_tp2_rounds_s", json_list(rounds, &ScalingRound::hvp_tp2))
            .add_raw("matmul_speedup_rounds", json_list(rounds, &ScalingRound::matmul_speedup))
            .add_raw("tp_collectives_alone_rounds_s", json_list(rounds, &ScalingRound::collectives));
      }
      ctx.metrics.write(record);
      log_info0(std::string("  ") + p.name + ": H·v/grad " + std::to_string(serial.hvp / serial.grad));
    }
  }
  std::string out = table.str() + "\nFisher Removal's inverse product (Woodbury, Gram cached) against one H·v:\n\n" +
                    fisher.str();
  if (world.size() == 2 && grid.tp_size() == 2) out += "\n" + scaling.str();
  if (opt.device != "cpu") out = "On " + opt.device + " (the peak RSS column is host memory):\n\n" + out;
  log_info0(out);
  write_bench_output(ctx, opt.output, out);
  return 0;
}

}  // namespace unlearn
