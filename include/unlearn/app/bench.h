// Benchmarks behind `unlearn bench`: each prints measured ratios and records them; nothing is asserted.
#pragma once

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
  std::string dtype = "float32";
  std::string output;
};
int run_model_benchmark(AppContext& ctx, const ModelBenchOptions& options);

struct CheckpointBenchOptions {
  std::uint64_t bytes = 512u << 20;  // checkpoint size (64 MiB float32 tensors)
  std::string dir = ".";             // directory on the filesystem to measure
  int reps = 3;
  std::string output;
};
/// Checkpoint write/read throughput against dd to the same directory (bench_checkpoint.cpp).
int run_checkpoint_benchmark(AppContext& ctx, const CheckpointBenchOptions& options);

/// Writes `text` to `path` on world rank 0 (no-op for an empty path).
void write_bench_output(const AppContext& ctx, const std::string& path, const std::string& text);

}  // namespace unlearn
