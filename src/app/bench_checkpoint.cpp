// `unlearn bench checkpoint`: write and read throughput of a parallel HDF5 checkpoint (the full path: Fletcher32,
// digest, commit protocol with fsync; reads verify checksums and digest) against dd to the same directory, in the
// same run, interleaved. Reads are cold for both: each file's pages are dropped (posix_fadvise) before it is read.
// Ours is read twice: by the direct chunk reads (the default) and through HDF5's filter pipeline.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "unlearn/app/bench.h"
#include "unlearn/io/checkpoint.h"
#include "unlearn/parse/units.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

/// Drops the file's cached pages (after an fsync they are clean, so this evicts them): the next read is cold.
void drop_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

double timed_system(const std::string& cmd) {
  const double t0 = MPI_Wtime();
  if (std::system(cmd.c_str()) != 0) UNLEARN_THROW(IoError, "bench checkpoint: `" << cmd << "` failed");
  return MPI_Wtime() - t0;
}

}  // namespace

int run_checkpoint_benchmark(AppContext& ctx, const CheckpointBenchOptions& opt) {
  Communicator& world = ctx.grid.world();
  const int rank = world.rank(), size = world.size();
  // Tensors of [rows, 4096] float32, 64 MiB each, split by rows across the ranks as TP shards would be.
  constexpr std::int64_t kCols = 4096, kTensorBytes = 64ll << 20;
  const std::int64_t rows = kTensorBytes / (kCols * 4);
  const std::int64_t count = std::max<std::int64_t>(1, static_cast<std::int64_t>(opt.bytes) / kTensorBytes);
  const std::int64_t total = count * kTensorBytes;
  const Range mine = split_range(rows, size, rank);
  std::vector<TensorBlock> blocks, back;
  for (std::int64_t i = 0; i < count; ++i) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(1234 + static_cast<std::uint64_t>(i * size + rank));
    const std::string name = "bench." + std::to_string(i) + ".weight";
    blocks.push_back(TensorBlock{name, at::randn({mine.size, kCols}, gen), {rows, kCols}, 0, mine.start, true});
    back.push_back(TensorBlock{name, at::empty({mine.size, kCols}), {rows, kCols}, 0, mine.start, true});
  }
  // File names from rank 0's pid, the same on every rank.
  const std::string tag = std::to_string(world.all_reduce_scalar(
      static_cast<std::int64_t>(rank == 0 ? ::getpid() : 0), ReduceOp::kMax));
  const std::string dd_file = opt.dir + "/bench-dd.tmp." + tag;
  const int dd_blocks = static_cast<int>(total >> 22);  // 4 MiB blocks
  log_info0("bench checkpoint: " + format_bytes(static_cast<std::uint64_t>(total)) + " in " + std::to_string(count) +
            " tensors, " + std::to_string(size) + " rank(s), directory " + opt.dir + ", " + std::to_string(opt.reps) +
            " repetitions; dd: one stream, 4 MiB blocks, conv=fsync");

  std::vector<double> ours_w, ours_r, ours_r_hdf5, dd_w, dd_r;
  // A cold read through one read path (UNLEARN_CHECKPOINT_READ: the direct chunk reads, or HDF5's pipeline).
  auto timed_read = [&](const std::string& path, const char* mode) {
    if (rank == 0) drop_cache(path);
    ::setenv("UNLEARN_CHECKPOINT_READ", mode, 1);
    world.barrier();
    const double t0 = MPI_Wtime();
    read_tensor_blocks(path, world, back, /*verify_digest=*/true);
    const double t = world.all_reduce_scalar(MPI_Wtime() - t0, ReduceOp::kMax);
    ::unsetenv("UNLEARN_CHECKPOINT_READ");
    return t;
  };
  for (int rep = 0; rep < opt.reps; ++rep) {
    const std::string path = opt.dir + "/bench-" + tag + "-" + std::to_string(rep) + ".h5";
    auto ours = [&] {
      world.barrier();
      double t0 = MPI_Wtime();
      write_tensor_file(path, world, {{"format", std::string("bench")}}, blocks);
      ours_w.push_back(MPI_Wtime() - t0);
      ours_r.push_back(timed_read(path, "direct"));
      ours_r_hdf5.push_back(timed_read(path, "hdf5"));
      if (rank == 0) ::unlink(path.c_str());
    };
    auto dd = [&] {
      world.barrier();
      if (rank == 0) {
        dd_w.push_back(timed_system("dd if=/dev/zero of=" + dd_file + " bs=4M count=" + std::to_string(dd_blocks) +
                                    " conv=fsync status=none"));
        drop_cache(dd_file);
        dd_r.push_back(timed_system("dd if=" + dd_file + " of=/dev/null bs=4M status=none"));
        ::unlink(dd_file.c_str());
      }
      world.barrier();
    };
    // Alternate who goes first, so neither side always meets the other's leftovers (dirty pages, cache state).
    if (rep % 2 == 0) {
      ours();
      dd();
    } else {
      dd();
      ours();
    }
    log_info0("  rep " + std::to_string(rep) + ": write " + std::to_string(ours_w.back()) + " s (dd " +
              (rank == 0 ? std::to_string(dd_w.back()) : std::string("?")) + " s), read " +
              std::to_string(ours_r.back()) + " s (through HDF5's pipeline " + std::to_string(ours_r_hdf5.back()) +
              " s)");
  }
  for (auto& t : ours_w) t = world.all_reduce_scalar(t, ReduceOp::kMax);

  auto mbps = [&](double s) { return static_cast<double>(total) / s / 1e6; };
  double row[5] = {0, 0, 0, 0, 0};
  if (rank == 0) row[0] = median(dd_w), row[1] = median(dd_r);
  row[0] = world.all_reduce_scalar(row[0], ReduceOp::kMax);
  row[1] = world.all_reduce_scalar(row[1], ReduceOp::kMax);
  row[2] = median(ours_w);
  row[3] = median(ours_r);
  row[4] = median(ours_r_hdf5);
  std::ostringstream table;
  char line[400];
  table << "| ranks | size | write MB/s (ours) | write MB/s (dd) | write ratio | read MB/s (ours) | read MB/s (dd) | "
           "read ratio | read MB/s (HDF5 pipeline) | its ratio |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  std::snprintf(line, sizeof(line), "| %d | %s | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f | %.0f | %.2f |\n", size,
                format_bytes(static_cast<std::uint64_t>(total)).c_str(), mbps(row[2]), mbps(row[0]),
                row[0] / row[2], mbps(row[3]), mbps(row[1]), row[1] / row[3], mbps(row[4]), row[1] / row[4]);
  table << line;
  log_info0(table.str());
  ctx.metrics.write(JsonObject()
                        .add("event", "bench_checkpoint")
                        .add("ranks", size)
                        .add("bytes", total)
                        .add("write_s", row[2])
                        .add("dd_write_s", row[0])
                        .add("read_s", row[3])
                        .add("read_hdf5_pipeline_s", row[4])
                        .add("dd_read_s", row[1]));
  write_bench_output(ctx, opt.output, table.str());
  return 0;
}

}  // namespace unlearn
