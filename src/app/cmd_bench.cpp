// `unlearn bench comm`: all-reduce through the Communicator against a raw MPI_Allreduce loop on the same
// MPI communicator, sizes doubling from --min-bytes to --max-bytes. Ratios only: both sides run in the same process,
// interleaved, so machine noise hits them alike. Results are printed and recorded, never asserted.
// Also the `unlearn bench` command, which dispatches to the comm and model benchmarks.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <tuple>
#include <utility>

#include "unlearn/app/bench.h"
#include "unlearn/app/subcommands.h"
#include "unlearn/comm/mpi_communicator.h"
#include "unlearn/parse/units.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

struct Stats {
  double median, p25, p75;
};

Stats stats_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto q = [&](double f) {
    const double pos = f * static_cast<double>(v.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const auto hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
  };
  return {q(0.5), q(0.25), q(0.75)};
}

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "float64") return at::kDouble;
  UNLEARN_THROW(ConfigError, "--dtype must be float32 or float64, got '" << name << "'");
}

}  // namespace

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  UNLEARN_CHECK(!v.empty(), "median of no timings");
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void write_bench_output(const AppContext& ctx, const std::string& path, const std::string& text) {
  if (path.empty() || ctx.grid.world_rank() != 0) return;
  std::ofstream out(path);
  out << text;
  if (!out) UNLEARN_THROW(IoError, "cannot write benchmark table to '" << path << "'");
}

int run_comm_benchmark(AppContext& ctx, const CommBenchOptions& opt) {
  Communicator& comm = ctx.grid.world();
  MPI_Comm raw = native_mpi_comm(comm);
  const at::ScalarType dtype = parse_dtype(opt.dtype);
  const MPI_Datatype mpi_type = to_mpi_type(dtype, true);
  const std::uint64_t elem = static_cast<std::uint64_t>(at::elementSize(dtype));
  const int n = comm.size();

  std::ostringstream table;
  table << "| size | Communicator median (us) | IQR (us) | raw MPI median (us) | IQR (us) | ratio raw/ours | bus bw (GB/s) |\n"
        << "|---:|---:|---:|---:|---:|---:|---:|\n";
  log_info0("bench comm: " + std::to_string(n) + " ranks, " + opt.dtype + ", " + std::to_string(opt.reps) +
            " reps per size and side, interleaved");
  for (std::uint64_t bytes = opt.min_bytes; bytes <= opt.max_bytes;
       bytes *= 2) {
    const auto count = static_cast<std::int64_t>(bytes / elem);
    // Zeros: the sum stays finite however many times it is reduced in place.
    at::Tensor t = at::zeros({count}, at::TensorOptions().dtype(dtype));
    auto ours = [&] { comm.all_reduce(t, ReduceOp::kSum); };
    auto theirs = [&] {
      UNLEARN_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(count), mpi_type, MPI_SUM, raw));
    };
    for (int i = 0; i < opt.warmup; ++i) {
      ours();
      theirs();
    }
    std::vector<double> t_ours, t_raw;
    for (int i = 0; i < opt.reps; ++i) {
      // Alternate which side goes first so neither always inherits the other's cache state.
      for (int side = 0; side < 2; ++side) {
        const bool mine = (side == 0) == (i % 2 == 0);
        UNLEARN_CHECK_MPI(MPI_Barrier(raw));
        const double t0 = MPI_Wtime();
        if (mine) {
          ours();
        } else {
          theirs();
        }
        double dt = MPI_Wtime() - t0;
        // The slowest rank defines the collective's time.
        UNLEARN_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, raw));
        (mine ? t_ours : t_raw).push_back(dt);
      }
    }
    const Stats a = stats_of(t_ours), b = stats_of(t_raw);
    const double ratio = b.median / a.median;
    const double busbw = n > 1 ? 2.0 * (n - 1) / n * static_cast<double>(bytes) / a.median / 1e9 : 0.0;
    char row[256];
    std::snprintf(row, sizeof(row), "| %s | %.1f | %.1f | %.1f | %.1f | %.3f | %.2f |\n", format_bytes(bytes).c_str(),
                  a.median * 1e6, (a.p75 - a.p25) * 1e6, b.median * 1e6, (b.p75 - b.p25) * 1e6, ratio, busbw);
    table << row;
    log_info0(std::string("  ") + format_bytes(bytes) + ": ratio " + std::to_string(ratio));
    ctx.metrics.write(JsonObject()
                          .add("event", "bench_comm")
                          .add("bytes", static_cast<std::int64_t>(bytes))
                          .add("ranks", n)
                          .add("ours_median_s", a.median)
                          .add("ours_iqr_s", a.p75 - a.p25)
                          .add("raw_median_s", b.median)
                          .add("raw_iqr_s", b.p75 - b.p25)
                          .add("ratio_raw_over_ours", ratio));
    if (bytes > std::numeric_limits<std::uint64_t>::max() / 2) break;
  }
  log_info0(table.str());
  write_bench_output(ctx, opt.output, table.str());
  return 0;
}

namespace {

class BenchCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "bench"; }
  std::string_view summary() const override {
    return "benchmarks that print measured ratios: comm (Communicator vs raw MPI), model (gradient, H·v, G·v), "
           "newton (one Newton-CG step on a checkpoint), checkpoint (HDF5 vs dd)";
  }
  std::string_view usage() const override { return "comm|model|newton|checkpoint"; }

  void add_options(po::options_description& desc, po::positional_options_description& pos) override {
    desc.add_options()
        ("what", po::value<std::string>(&what_)->default_value("comm"),
         "benchmark to run: comm | model | newton | checkpoint")
        ("min-bytes", po::value<std::string>(&min_bytes_)->default_value("4K"), "comm: smallest message (K, M, G)")
        ("max-bytes", po::value<std::string>(&max_bytes_)->default_value("256M"), "comm: largest message; sizes double")
        ("reps", po::value<int>(&reps_), "timed repetitions per measurement (default comm 50, model 3; median reported)")
        ("warmup", po::value<int>(&comm_.warmup)->default_value(5), "comm: untimed repetitions per size and side")
        ("dtype", po::value<std::string>(&dtype_)->default_value("float32"), "float32 | float64")
        ("sizes", po::value<std::string>(&sizes_)->default_value("tiny,5m,30m"),
         "model: comma-separated GPT-2 presets: tiny (0.1M), 5m (4.8M), 30m (28.6M); run at 2 ranks with --tp 2 "
         "to add the TP = 2 vs TP = 1 scaling table")
        ("batch-shape", po::value<std::string>(&batch_shape_),
         "model: ROWSxPOSITIONS, the batch of every size instead of the presets' (tiny 4x64, 5m and 30m 8x128), "
         "e.g. 16x256 to see how the TP scaling of a small model grows with the tokens per product")
        ("device", po::value<std::string>(&device_)->default_value("cpu"),
         "model: cpu | cuda | cuda:N, where the model, its products and the matmul rate run (cuda needs a LibTorch "
         "built with CUDA, and one rank)")
        ("tp-rounds", po::value<int>(&tp_rounds_)->default_value(5),
         "model, 2 ranks with --tp 2: paired rounds of the scaling table; each times the machine's 2-rank "
         "matmul speed-up, --reps H·v at TP = 1 and --reps at TP = 2 back to back (median and range reported), "
         "then replays that product's collectives alone for the fraction's ceiling T1 / (T1 + S·C); each rank's "
         "time inside collectives during the TP = 2 products shows the waiting for the slower rank")
        ("checkpoint", po::value<std::string>(&newton_.checkpoint), "newton: the model (e.g. from unlearn init)")
        ("cg-iters", po::value<int>(&newton_.cg_iters)->default_value(10), "newton: CG iterations (a fixed count)")
        ("retain-rows", po::value<std::int64_t>(&newton_.retain_rows)->default_value(8),
         "newton: rows of max_positions tokens whose curvature is used")
        ("forget-rows", po::value<std::int64_t>(&newton_.forget_rows)->default_value(2),
         "newton: rows whose gradient is the right-hand side")
        ("damping", po::value<double>(&newton_.damping)->default_value(100.0),
         "newton: λ; the exact Hessian of an initialised model has curvature below -10 along CG's directions, and "
         "CG stops at negative curvature, so a large λ keeps every iteration (the time does not depend on it)")
        ("curvature", po::value<std::string>(&newton_.curvature)->default_value("hessian"), "newton: hessian | ggn")
        ("ckpt-bytes", po::value<std::string>(&ckpt_bytes_)->default_value("512M"), "checkpoint: size written")
        ("dir", po::value<std::string>(&dir_)->default_value("."), "checkpoint: directory (filesystem) to measure")
        ("output", po::value<std::string>(&output_), "also write the markdown table to this file (rank 0)");
    pos.add("what", 1);
  }

  void validate(const po::variables_map& vm, const CommonOptions&, int world_size) const override {
    if (what_ != "comm" && what_ != "model" && what_ != "newton" && what_ != "checkpoint")
      UNLEARN_THROW(ConfigError, "unknown benchmark '" << what_ << "' (available: comm, model, newton, checkpoint)");
    if (dtype_ != "float32" && dtype_ != "float64")
      UNLEARN_THROW(ConfigError, "--dtype must be float32 or float64, got '" << dtype_ << "'");
    if (vm.count("reps") && reps_ < 1) UNLEARN_THROW(ConfigError, "--reps must be >= 1");
    if (comm_.warmup < 0) UNLEARN_THROW(ConfigError, "--warmup must be >= 0");
    if (tp_rounds_ < 1) UNLEARN_THROW(ConfigError, "--tp-rounds must be >= 1");
    if (what_ == "comm") {
      const auto lo = parse_byte_size(min_bytes_, "--min-bytes");
      const auto hi = parse_byte_size(max_bytes_, "--max-bytes");
      const auto elem = static_cast<std::uint64_t>(at::elementSize(parse_dtype(dtype_)));
      if (lo < elem || lo > hi)
        UNLEARN_THROW(ConfigError, "--min-bytes (" << lo << ") must be at least one element and <= --max-bytes ("
                                                   << hi << ")");
    } else if (what_ == "newton") {
      if (newton_.checkpoint.empty()) throw ConfigError("bench newton needs --checkpoint");
      if (newton_.cg_iters < 1 || newton_.retain_rows < 1 || newton_.forget_rows < 1)
        throw ConfigError("--cg-iters, --retain-rows and --forget-rows must be >= 1");
      if (!(newton_.damping >= 0)) throw ConfigError("--damping must be >= 0");
      if (newton_.curvature != "hessian" && newton_.curvature != "ggn")
        throw ConfigError("--curvature must be hessian or ggn, got '" + newton_.curvature + "'");
    } else {
      for (const auto& s : split_sizes()) preset_check(s);
      if (!batch_shape_.empty()) parse_batch_shape();
      if (device_ != "cpu") {
        if (device_.rfind("cuda", 0) != 0)
          UNLEARN_THROW(ConfigError, "--device must be cpu, cuda or cuda:N, got '" << device_ << "'");
        if (!at::hasCUDA())
          throw ConfigError("--device " + device_ + ": LibTorch sees no CUDA device (Debian's LibTorch is CPU-only: "
                            "build against a CUDA one, on a machine with a GPU)");
        if (world_size != 1)
          throw ConfigError("--device " + device_ + " times one rank's products: run it on 1 rank (the TP scaling "
                            "table is a CPU measurement)");
      }
    }
  }

  int run(AppContext& ctx) override {
    const bool reps_given = ctx.options.count("reps") && !ctx.options["reps"].defaulted();
    if (what_ == "comm") {
      CommBenchOptions o = comm_;
      o.min_bytes = parse_byte_size(min_bytes_, "--min-bytes");
      o.max_bytes = parse_byte_size(max_bytes_, "--max-bytes");
      if (reps_given) o.reps = reps_;
      o.dtype = dtype_;
      o.output = output_;
      return run_comm_benchmark(ctx, o);
    }
    if (what_ == "newton") {
      NewtonBenchOptions o = newton_;
      if (reps_given) o.reps = reps_;
      o.output = output_;
      return run_newton_benchmark(ctx, o);
    }
    if (what_ == "checkpoint") {
      CheckpointBenchOptions o;
      o.bytes = parse_byte_size(ckpt_bytes_, "--ckpt-bytes");
      o.dir = dir_;
      if (reps_given) o.reps = reps_;
      o.output = output_;
      return run_checkpoint_benchmark(ctx, o);
    }
    ModelBenchOptions o;
    o.sizes = split_sizes();
    if (reps_given) o.reps = reps_;
    o.tp_rounds = tp_rounds_;
    if (!batch_shape_.empty()) std::tie(o.rows, o.positions) = parse_batch_shape();
    o.dtype = dtype_;
    o.device = device_;
    o.output = output_;
    return run_model_benchmark(ctx, o);
  }

 private:
  std::vector<std::string> split_sizes() const {
    std::vector<std::string> out;
    std::string item;
    std::istringstream in(sizes_);
    while (std::getline(in, item, ',')) out.push_back(item);
    return out;
  }
  /// "16x256" -> {16, 256}: two positive integers joined by 'x'.
  std::pair<std::int64_t, std::int64_t> parse_batch_shape() const {
    const auto bad = [&] {
      return ConfigError("--batch-shape: expected ROWSxPOSITIONS with positive integers (e.g. 16x256), got '" +
                         batch_shape_ + "'");
    };
    const auto x = batch_shape_.find('x');
    if (x == std::string::npos) throw bad();
    const auto positive = [&](const std::string& t) {
      if (t.empty() || t.size() > 9 || t.find_first_not_of("0123456789") != std::string::npos) throw bad();
      const std::int64_t v = std::stoll(t);
      if (v < 1) throw bad();
      return v;
    };
    return {positive(batch_shape_.substr(0, x)), positive(batch_shape_.substr(x + 1))};
  }

  static void preset_check(const std::string& s) {
    if (s != "tiny" && s != "5m" && s != "30m")
      UNLEARN_THROW(ConfigError, "--sizes: unknown model size '" << s << "' (tiny, 5m, 30m)");
  }

  std::string what_, min_bytes_, max_bytes_, dtype_, output_, sizes_, ckpt_bytes_, dir_, batch_shape_, device_;
  int reps_ = 0;
  int tp_rounds_ = 5;
  CommBenchOptions comm_;
  NewtonBenchOptions newton_;
};

}  // namespace

std::unique_ptr<Subcommand> make_bench_command() { return std::make_unique<BenchCommand>(); }

}  // namespace unlearn
