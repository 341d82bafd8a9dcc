// Benchmarks behind `unlearn bench`: each prints measured ratios and records them; nothing is asserted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "unlearn/app/cli.h"

namespace unlearn {

struct CommBenchOptions {
  std::uint64_t min_bytes = 4096, max_bytes = 256u << 20;
  int reps = 50, warmup = 5;
  std::string dtype = "float32";
  std::string output;
};
int run_comm_benchmark(AppContext& ctx, const CommBenchOptions& options);

struct ModelBenchOptions {
  std::vector<std::string> sizes{"tiny", "5m", "30m"};
  int reps = 3;
  int tp_rounds = 5;  // paired rounds of the TP = 2 vs TP = 1 measurement (2 ranks, --tp 2)
  std::int64_t rows = 0, positions = 0;  // the batch of every size; 0: each preset's own (tiny 4 x 64, else 8 x 128)
  std::string dtype = "float32";
  std::string device = "cpu";  // cpu | cuda[:N]: the model, its products and the matmul rate (one rank on a GPU)
  std::string output;
};
int run_model_benchmark(AppContext& ctx, const ModelBenchOptions& options);

struct CheckpointBenchOptions {
  std::uint64_t bytes = 512u << 20;  // checkpoint size (64 MiB float32 tensors)
  std::string dir = ".";             // directory on the filesystem to measure
  int reps = 3;
  std::string output;
};
/// One Newton-CG step (design 3.1-3.3) on a checkpoint: the forget gradient, the retain sample's graph, then a fixed
/// number of CG iterations on (C + λI) x = Δ; time per step and per iteration split into products, the rest of CG
/// (vector operations and dot products) and communication (bench_newton.cpp). Batches come from a formula that
/// tools/peers/newton_peers.py reproduces, so the Python peers solve the same problem on the same weights.
struct NewtonBenchOptions {
  std::string checkpoint;
  int cg_iters = 10, reps = 1;
  std::int64_t retain_rows = 8, forget_rows = 2;
  double damping = 100.0;
  std::string curvature = "hessian";
  std::string output;
};
int run_newton_benchmark(AppContext& ctx, const NewtonBenchOptions& options);

/// Checkpoint write/read throughput against dd to the same directory (bench_checkpoint.cpp).
int run_checkpoint_benchmark(AppContext& ctx, const CheckpointBenchOptions& options);

/// Seconds on the steady clock (differences time a step).
double steady_seconds();
/// Median of timings (mean of the middle two for an even count).
double median(std::vector<double> v);

/// Writes `text` to `path` on world rank 0 (no-op for an empty path).
void write_bench_output(const AppContext& ctx, const std::string& path, const std::string& text);

}  // namespace unlearn
