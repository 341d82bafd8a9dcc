// Test driver for the bash checkpoint tests: writes the tiny float32 GPT-2 (seed = step) at TP = world size, can
// pause one rank mid-write so a script can kill it, dumps the serial reference tensors for the h5py reader test,
// and checks a checkpoint against that reference.
//   ckpt_tool write DIR STEP [--storage T] [--pause-rank R --pause-after K] [--dump PREFIX]
//   ckpt_tool check DIR STEP          exit 0 iff the checkpoint loads at TP = world size and equals the reference
#include <ATen/ATen.h>
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "model_fixtures.h"
#include "unlearn/comm/mpi_communicator.h"
#include "unlearn/io/checkpoint.h"

namespace {

using namespace unlearn;

ModelConfig tool_config() {
  ModelConfig c = unlearn::testing::tiny_config(Family::kGpt2);
  c.dtype = at::kFloat;
  return c;
}

std::unique_ptr<TransformerModel> reference(std::uint64_t seed) {
  static auto local = make_local_communicator();
  auto m = std::make_unique<TransformerModel>(tool_config(), *local);
  m->init_random(seed, unlearn::testing::test_init());
  return m;
}

/// PREFIX.idx: "name ndim d0 d1 ... offset" per tensor; PREFIX.bin: the float32 values, little-endian, row-major.
void dump(const TransformerModel& ref, const std::string& prefix) {
  std::ofstream idx(prefix + ".idx"), bin(prefix + ".bin", std::ios::binary);
  std::int64_t offset = 0;
  for (const Parameter& p : ref.parameters()) {
    const at::Tensor v = p.value.detach().contiguous();
    idx << p.name << ' ' << v.dim();
    for (auto d : v.sizes()) idx << ' ' << d;
    idx << ' ' << offset << '\n';
    bin.write(static_cast<const char*>(v.data_ptr()), static_cast<std::streamsize>(v.numel() * 4));
    offset += v.numel();
  }
}

int run(int argc, char** argv, int rank) {
  if (argc < 4) throw ConfigError("usage: ckpt_tool write|check DIR STEP [options]");
  const std::string mode = argv[1], dir = argv[2];
  const std::int64_t step = std::stoll(argv[3]);
  int pause_rank = -1, pause_after = -1;
  std::string storage, dump_prefix;
  for (int i = 4; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--pause-rank") pause_rank = std::stoi(value);
    else if (key == "--pause-after") pause_after = std::stoi(value);
    else if (key == "--storage") storage = value;
    else if (key == "--dump") dump_prefix = value;
    else throw ConfigError("unknown option " + key);
  }
  auto world = std::shared_ptr<Communicator>(make_mpi_communicator(MPI_COMM_WORLD));
  ProcessGrid grid(world, world->size());
  const std::string path = dir + "/" + checkpoint_file_name(step);
  const auto ref = reference(static_cast<std::uint64_t>(step));

  if (mode == "write") {
    TransformerModel model(tool_config(), grid.tp());
    model.init_random(static_cast<std::uint64_t>(step), unlearn::testing::test_init());
    SaveOptions opts;
    opts.step = step;
    opts.seed = static_cast<std::uint64_t>(step);
    opts.tokenizer = "bytes";
    if (!storage.empty()) opts.io.storage = parse_storage_type(storage);
    opts.io.on_tensor_written = [&](std::size_t index, const std::string&) {
      if (rank != pause_rank || static_cast<int>(index) != pause_after) return;
      // Tell the script who to kill (written whole, then renamed), then wait for SIGKILL mid-write.
      const std::string note = dir + "/paused";
      std::ofstream(note + ".part") << ::getpid() << '\n';
      std::rename((note + ".part").c_str(), note.c_str());
      std::this_thread::sleep_for(std::chrono::seconds(120));
    };
    const CheckpointInfo info = save_checkpoint(path, model, grid, opts);
    if (rank == 0 && !dump_prefix.empty()) dump(*ref, dump_prefix);
    if (rank == 0) std::printf("wrote %s (digest %s)\n", path.c_str(), info.content_digest.c_str());
    return 0;
  }
  if (mode == "check") {
    auto model = load_model(path, grid);
    int bad = 0;
    for (const Parameter& p : model->parameters())
      if (!at::equal(p.value.detach(), model->local_slice(p, ref->parameter(p.name).value.detach()))) {
        std::fprintf(stderr, "rank %d: tensor %s differs from the reference\n", rank, p.name.c_str());
        ++bad;
      }
    const std::int64_t total = world->all_reduce_scalar(static_cast<std::int64_t>(bad));
    if (rank == 0) std::printf("%s: %s\n", path.c_str(), total == 0 ? "equal to the reference" : "DIFFERS");
    return total == 0 ? 0 : 1;
  }
  throw ConfigError("unknown mode " + mode);
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  set_process_identity(rank, "test");
  int rc = 0;
  try {
    rc = run(argc, argv, rank);
  } catch (const std::exception& e) {
    // Checkpoint errors are collective: every rank gets here with the same message.
    if (rank == 0) std::fprintf(stderr, "ckpt_tool: error: %s\n", e.what());
    rc = 1;
  }
  MPI_Finalize();
  return rc;
}
