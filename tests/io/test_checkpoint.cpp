// Checkpoints at 1-4 ranks (design section 5): round trips at every TP x DP layout, TP = 4 -> 1, 2, 3 resharding,
// storage dtypes, bit-identical files across layouts, and bad input (missing, truncated, flipped bytes in data and
// metadata, missing tensor, wrong shape, a TP size that does not divide the heads, temporary names), each failing on
// every rank with one message.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <cstring>
#include <functional>
#include <random>

#include "chunk_reader.h"
#include "model_fixtures.h"
#include "unlearn/comm/mpi_communicator.h"
#include "unlearn/comm/process_grid.h"
#include "unlearn/io/checkpoint.h"
#include "unlearn/io/safetensors.h"

namespace unlearn::testing {
namespace {

std::shared_ptr<Communicator> world_comm() {
  static std::shared_ptr<Communicator> w(make_mpi_communicator(MPI_COMM_WORLD));
  return w;
}

/// A directory every rank sees (rank 0 creates it; same node), removed with its files at the end.
class SharedDir {
 public:
  explicit SharedDir(Communicator& w) {
    std::string path;
    if (w.rank() == 0) {
      char tmpl[] = "/tmp/unlearn_ckpt_XXXXXX";
      path = mkdtemp(tmpl);
    }
    long long n = static_cast<long long>(path.size());
    MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
    path.resize(static_cast<std::size_t>(n));
    MPI_Bcast(path.data(), static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD);
    path_ = path;
    rank_ = w.rank();
  }
  ~SharedDir() {
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_ == 0 && std::system(("rm -rf '" + path_ + "'").c_str()) != 0) std::perror("rm -rf");
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
  int rank_ = 0;
};

/// The serial model (every tensor global) with the same seed.
std::unique_ptr<TransformerModel> reference(const ModelConfig& cfg, std::uint64_t seed) {
  static auto local = make_local_communicator();
  auto m = std::make_unique<TransformerModel>(cfg, *local);
  m->init_random(seed, test_init());
  return m;
}

/// Every local shard equals the reference's slice bit for bit.
void expect_equal_to_reference(const TransformerModel& model, const TransformerModel& ref, double tol = 0) {
  for (const Parameter& p : model.parameters()) {
    const at::Tensor expect = model.local_slice(p, ref.parameter(p.name).value.detach()).to(p.value.dtype());
    if (tol == 0) {
      EXPECT_TRUE(at::equal(p.value.detach(), expect)) << p.name;
    } else {
      EXPECT_LE(rel_err(p.value.detach(), expect), tol) << p.name;
    }
  }
}

/// `body` must throw E on every rank, with the same message everywhere, containing each of `parts`.
template <typename E>
void expect_collective_error(Communicator& w, const std::function<void()>& body,
                             const std::vector<std::string>& parts) {
  std::string message;
  bool thrown = false;
  try {
    body();
  } catch (const E& e) {
    thrown = true;
    message = e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected exception type: " << e.what();
  }
  EXPECT_TRUE(thrown) << "no exception";
  for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message << "\nlacks: " << part;
  std::uint64_t h = std::hash<std::string>()(message);
  std::uint64_t lo = 0, hi = 0;
  MPI_Allreduce(&h, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&h, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(lo, hi) << "ranks report different messages; this one: " << message;
  if (w.rank() == 0) std::printf("    expected error: %s\n", message.c_str());
}

class Checkpoint : public ::testing::Test {
 protected:
  Communicator& w() { return *world_comm(); }
  int world_size() { return w().size(); }
  std::shared_ptr<Communicator> world() { return world_comm(); }
};

// ---- round trips ----------------------------------------------------------------------------------------------

class RoundTrip : public Checkpoint, public ::testing::WithParamInterface<std::pair<Family, std::int64_t>> {};

TEST_P(RoundTrip, EveryLayoutWritesAndReadsTheSameGlobalTensors) {
  SharedDir dir(w());
  const ModelConfig cfg = tiny_config(GetParam().first, GetParam().second);
  const auto ref = reference(cfg, 5);
  std::int64_t step = 0;
  for (int tp = 1; tp <= world_size(); ++tp) {
    if (world_size() % tp != 0) continue;
    SCOPED_TRACE("tp " + std::to_string(tp));
    ProcessGrid grid(world(), tp);
    TransformerModel model(cfg, grid.tp());
    model.init_random(5, test_init());
    SaveOptions opts;
    opts.step = ++step;
    opts.seed = 5;
    const std::string path = dir.file(checkpoint_file_name(step));
    const CheckpointInfo saved = save_checkpoint(path, model, grid, opts);
    EXPECT_EQ(saved.step, step);
    EXPECT_EQ(saved.provenance.at("seed"), "5");
    EXPECT_EQ(saved.config.to_map(), cfg.to_map());

    TransformerModel other(cfg, grid.tp());
    other.init_random(99, test_init());
    const CheckpointInfo loaded = load_checkpoint(path, other, grid);
    EXPECT_EQ(loaded.content_digest, saved.content_digest);
    expect_equal_to_reference(other, *ref);

    CheckpointInfo info;
    auto built = load_model(path, grid, &info);
    expect_equal_to_reference(*built, *ref);
    EXPECT_EQ(info.file.tensors.size(), model.parameters().size());
  }
}

INSTANTIATE_TEST_SUITE_P(Families, RoundTrip,
                         ::testing::Values(std::pair{Family::kGpt2, std::int64_t{12}},
                                           std::pair{Family::kLlama, std::int64_t{12}},
                                           std::pair{Family::kLlama, std::int64_t{1}}),
                         [](const auto& info) {
                           return to_string(info.param.first) + "_kv" + std::to_string(info.param.second);
                         });

TEST_F(Checkpoint, WrittenAtFullTpReadsAtEveryOtherTp) {
  // Written at TP = world size (4 at np4), read at every TP the model accepts, including 3 on a 3-rank sub-world.
  SharedDir dir(w());
  for (auto [family, kv] : {std::pair{Family::kGpt2, std::int64_t{12}}, std::pair{Family::kLlama, std::int64_t{1}}}) {
    const ModelConfig cfg = tiny_config(family, kv);
    const auto ref = reference(cfg, 11);
    const std::string path = dir.file(to_string(family) + "-" + checkpoint_file_name(1));
    {
      ProcessGrid grid(world(), world_size());
      TransformerModel model(cfg, grid.tp());
      model.init_random(11, test_init());
      save_checkpoint(path, model, grid);
    }
    for (int sub = 1; sub <= world_size(); ++sub) {
      // The first `sub` ranks form a world of their own; TP takes every size dividing it.
      std::shared_ptr<Communicator> part(w().split(w().rank() < sub ? 0 : -1, w().rank()));
      if (!part) continue;
      for (int tp = 1; tp <= sub; ++tp) {
        if (sub % tp != 0) continue;
        if ((cfg.n_kv_heads % tp) != 0 && (tp % cfg.n_kv_heads) != 0) continue;
        SCOPED_TRACE("world " + std::to_string(sub) + " tp " + std::to_string(tp));
        ProcessGrid grid(part, tp);
        auto model = load_model(path, grid);
        expect_equal_to_reference(*model, *ref);
      }
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

TEST_F(Checkpoint, StorageTypesRoundTripThroughTheirPrecision) {
  SharedDir dir(w());
  const ModelConfig cfg = tiny_config(Family::kLlama, 4);
  ProcessGrid grid(world(), world_size() % 2 == 0 ? 2 : 1);
  TransformerModel model(cfg, grid.tp());
  model.init_random(3, test_init());
  std::int64_t step = 0;
  for (StorageType st : {StorageType::kFloat32, StorageType::kFloat16, StorageType::kBFloat16, StorageType::kFloat64}) {
    SCOPED_TRACE(storage_type_name(st));
    SaveOptions opts;
    opts.step = ++step;
    opts.io.storage = st;
    const std::string path = dir.file(checkpoint_file_name(step));
    const CheckpointInfo info = save_checkpoint(path, model, grid, opts);
    EXPECT_EQ(info.storage, st);
    EXPECT_EQ(info.config.dtype, at::kDouble);  // the compute dtype is recorded apart from the storage dtype
    for (const auto& t : info.file.tensors) {
      EXPECT_EQ(t.storage, st) << t.name;
      EXPECT_TRUE(t.fletcher32) << t.name;
    }
    TransformerModel back(cfg, grid.tp());
    load_checkpoint(path, back, grid);
    for (const Parameter& p : back.parameters()) {
      const at::Tensor want = model.parameter(p.name).value.detach().to(scalar_type_of(st)).to(at::kDouble);
      EXPECT_TRUE(at::equal(p.value.detach(), want)) << p.name;
    }
  }
}

TEST_F(Checkpoint, LayoutsProduceIdenticalTensorsAndAttributes) {
  // "Bit-identical" (design section 5): equal tensor data and equal non-provenance attributes, whatever the layout.
  SharedDir dir(w());
  const ModelConfig cfg = tiny_config(Family::kGpt2);
  std::vector<CheckpointInfo> infos;
  std::vector<std::string> paths;
  for (int tp : {1, world_size()}) {
    ProcessGrid grid(world(), tp);
    TransformerModel model(cfg, grid.tp());
    model.init_random(8, test_init());
    SaveOptions opts;
    opts.step = 4;
    paths.push_back(dir.file("v" + std::to_string(paths.size()) + "-" + checkpoint_file_name(4)));
    infos.push_back(save_checkpoint(paths.back(), model, grid, opts));
  }
  auto stable = [](const Attributes& a) {
    std::map<std::string, std::string> out;
    for (const auto& [k, v] : a)
      if (k.rfind(kProvenancePrefix, 0) != 0) out[k] = attribute_to_string(v);
    return out;
  };
  EXPECT_EQ(stable(infos[0].file.attributes), stable(infos[1].file.attributes));
  EXPECT_EQ(infos[0].content_digest, infos[1].content_digest);
  EXPECT_NE(infos[0].provenance.at("rank_layout"), std::string());
  // Tensor data, element by element, read whole on every rank.
  std::vector<TensorBlock> a, b;
  for (const auto& t : infos[0].file.tensors)
    for (auto* v : {&a, &b}) v->push_back(TensorBlock{t.name, at::empty(t.shape, at::kDouble), t.shape});
  read_tensor_blocks(paths[0], w(), a);
  read_tensor_blocks(paths[1], w(), b);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i].local, b[i].local)) << a[i].name;
}

/// HDF5's Fletcher32 as its definition reads: one word at a time, sums folded every 360 words and at the end.
std::uint32_t fletcher32_by_words(const std::vector<std::uint8_t>& data) {
  std::uint32_t sum1 = 0, sum2 = 0;
  std::size_t words = data.size() / 2, i = 0;
  while (words > 0) {
    std::size_t block = std::min<std::size_t>(words, 360);
    words -= block;
    for (; block > 0; --block, i += 2) {
      sum1 += (std::uint32_t{data[i]} << 8) | data[i + 1];
      sum2 += sum1;
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  if (data.size() % 2 != 0) {
    sum1 += std::uint32_t{data.back()} << 8;
    sum2 += sum1;
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  sum1 = (sum1 & 0xffff) + (sum1 >> 16);
  sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  return (sum2 << 16) | sum1;
}

TEST(Fletcher32, BlockSumsEqualTheWordByWordDefinition) {
  std::mt19937 gen(7);
  for (std::size_t len : {0, 1, 2, 3, 511, 512, 513, 720, 721, 4096, 65537, 1 << 20}) {
    for (int fill : {-1, 0x00, 0xff}) {  // random bytes, all zero, all 0xff (sums that reach 65535)
      std::vector<std::uint8_t> data(len);
      for (auto& b : data) b = static_cast<std::uint8_t>(fill < 0 ? gen() : static_cast<unsigned>(fill));
      const std::uint32_t want = fletcher32_by_words(data), got = detail::fletcher32(data.data(), data.size());
      EXPECT_TRUE(detail::fletcher32_matches(got, want)) << len << " bytes, fill " << fill << ": " << got << " vs "
                                                         << want;
      if (!data.empty()) {  // one flipped bit anywhere is caught
        data[gen() % data.size()] ^= 0x10;
        EXPECT_FALSE(detail::fletcher32_matches(detail::fletcher32(data.data(), data.size()), want)) << len;
      }
    }
  }
}

TEST_F(Checkpoint, ConverterParameterListsMatchTheModel) {
  // convert lists parameters without building the model; the list must be the model's, in order.
  auto local = make_local_communicator();
  for (auto [family, kv] : {std::pair{Family::kGpt2, std::int64_t{12}}, std::pair{Family::kLlama, std::int64_t{4}}}) {
    ModelConfig cfg = tiny_config(family, kv);
    const TransformerModel model(cfg, *local);
    const auto specs = parameter_specs(cfg);
    ASSERT_EQ(specs.size(), model.parameters().size());
    for (std::size_t i = 0; i < specs.size(); ++i) {
      EXPECT_EQ(specs[i].name, model.parameters()[i].name);
      EXPECT_EQ(specs[i].shape, model.parameters()[i].global_shape) << specs[i].name;
    }
    // config.json written by export reads back as the same config (computing in float32).
    cfg.dtype = at::kFloat;
    EXPECT_EQ(config_from_hf_json(hf_config_json(cfg, StorageType::kBFloat16), "config.json").to_map(), cfg.to_map());
  }
}

// ---- bad input ------------------------------------------------------------------------------------------------

/// A good float32 GPT-2 checkpoint written at TP = world size.
std::string write_good(Communicator& w, std::shared_ptr<Communicator> world, const SharedDir& dir,
                       const std::string& name, const ModelConfig& cfg = tiny_config(Family::kGpt2)) {
  ProcessGrid grid(world, w.size());
  ModelConfig c = cfg;
  c.dtype = at::kFloat;
  TransformerModel model(c, grid.tp());
  model.init_random(1, test_init());
  const std::string path = dir.file(name);
  save_checkpoint(path, model, grid);
  return path;
}

/// Rank 0 edits the file, then everyone waits.
void on_rank0(const std::function<void()>& edit) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) edit();
  MPI_Barrier(MPI_COMM_WORLD);
}

void copy_file(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary);
  out << in.rdbuf();
}

void flip_byte(const std::string& path, std::uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

/// File offsets (serial HDF5 inside the test): a chunk of a dataset (-1: the last), and its object header.
struct Offsets {
  std::uint64_t chunk = 0, header = 0;
};
Offsets locate(const std::string& path, const std::string& tensor, long chunk = 0) {
  Offsets o;
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, ("tensors/" + tensor).c_str(), H5P_DEFAULT);
  const hid_t space = H5Dget_space(d);
  hsize_t offset[8] = {};
  unsigned mask = 0;
  haddr_t addr = 0;
  hsize_t size = 0;
  hsize_t chunks = 0;
  EXPECT_GE(H5Dget_num_chunks(d, space, &chunks), 0);
  const hsize_t index = chunk < 0 ? chunks - 1 : static_cast<hsize_t>(chunk);
  EXPECT_GE(H5Dget_chunk_info(d, space, index, offset, &mask, &addr, &size), 0);
  o.chunk = addr;
  H5O_info_t info;
  EXPECT_GE(H5Oget_info2(d, &info, H5O_INFO_BASIC), 0);
  o.header = info.addr;
  H5Sclose(space);
  H5Dclose(d);
  H5Fclose(f);
  return o;
}

TEST_F(Checkpoint, Fletcher32EqualsTheChecksumsHdf5Stored) {
  SharedDir dir(w());
  const std::string path = write_good(w(), world(), dir, "good.h5");
  if (w().rank() != 0) return;
  // Serial HDF5 in the test: every chunk of every tensor, raw (data + the filter's 4 trailing bytes).
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const FileInfo info = read_file_info(path, *make_local_communicator());
  int chunks = 0;
  for (const TensorInfo& t : info.tensors) {
    const hid_t d = H5Dopen2(f, ("tensors/" + t.name).c_str(), H5P_DEFAULT);
    const hid_t space = H5Dget_space(d);
    hsize_t n = 0;
    ASSERT_GE(H5Dget_num_chunks(d, space, &n), 0);
    for (hsize_t i = 0; i < n; ++i) {
      hsize_t offset[8] = {};
      unsigned mask = 0;
      haddr_t addr = 0;
      hsize_t size = 0;
      ASSERT_GE(H5Dget_chunk_info(d, space, i, offset, &mask, &addr, &size), 0);
      std::vector<std::uint8_t> raw(size);
      std::uint32_t filters = 0;
      ASSERT_GE(H5Dread_chunk(d, H5P_DEFAULT, offset, &filters, raw.data()), 0);
      ASSERT_GE(size, 4u);
      std::uint32_t stored = 0;
      std::memcpy(&stored, raw.data() + size - 4, 4);
      EXPECT_TRUE(detail::fletcher32_matches(detail::fletcher32(raw.data(), size - 4), stored)) << t.name << " " << i;
      ++chunks;
    }
    H5Sclose(space);
    H5Dclose(d);
  }
  H5Fclose(f);
  EXPECT_GT(chunks, 0);
}

TEST_F(Checkpoint, DirectChunkReadsEqualHdf5Reads) {
  // Chunks of 256 bytes: many per tensor, edge chunks, chunks across TP shard borders in both dimensions, so every
  // branch of the direct reader (chunk_reader.h: straight into the tensor, through the staging buffer) runs.
  SharedDir dir(w());
  for (auto [family, st] : {std::pair{Family::kGpt2, StorageType::kFloat32}, std::pair{Family::kLlama,
                                                                                     StorageType::kBFloat16}}) {
    SCOPED_TRACE(to_string(family));
    const ModelConfig cfg = tiny_config(family, 12);
    const std::string path = dir.file(to_string(family) + "-" + checkpoint_file_name(1));
    ProcessGrid full(world(), world_size());
    {
      TransformerModel model(cfg, full.tp());
      model.init_random(21, test_init());
      SaveOptions opts;
      opts.io.chunk_bytes = 256;
      opts.io.storage = st;
      save_checkpoint(path, model, full, opts);
    }
    for (int tp = 1; tp <= world_size(); ++tp) {
      if (world_size() % tp != 0) continue;
      SCOPED_TRACE("tp " + std::to_string(tp));
      ProcessGrid grid(world(), tp);
      auto direct = load_model(path, grid);
      setenv("UNLEARN_CHECKPOINT_READ", "hdf5", 1);
      auto through_hdf5 = load_model(path, grid);
      unsetenv("UNLEARN_CHECKPOINT_READ");
      for (const Parameter& p : direct->parameters())
        EXPECT_TRUE(at::equal(p.value.detach(), through_hdf5->parameter(p.name).value.detach())) << p.name;
    }
    const FileInfo info = read_file_info(path, w());
    EXPECT_TRUE(verify_tensor_file(path, w(), info).ok());
    // A flipped byte in the last chunk of a tensor split along dim 1 is caught by the direct reader's own check.
    const std::string bad = dir.file(to_string(family) + "-flipped.h5"), tensor = "layers.0.mlp.down_proj.weight";
    on_rank0([&] {
      copy_file(path, bad);
      flip_byte(bad, locate(bad, tensor, -1).chunk + 3);
    });
    expect_collective_error<IoError>(w(), [&] { load_model(bad, full); }, {tensor, "Fletcher32", "chunk at ["});
  }
}

TEST_F(Checkpoint, MissingFileFailsOnEveryRank) {
  SharedDir dir(w());
  ProcessGrid grid(world(), 1);
  expect_collective_error<IoError>(w(), [&] { load_model(dir.file("nothing-here.h5"), grid); },
                                   {"nothing-here.h5", "No such file"});
}

TEST_F(Checkpoint, TruncatedFileFailsOnEveryRank) {
  SharedDir dir(w());
  const std::string good = write_good(w(), world(), dir, "good.h5");
  const std::string bad = dir.file("truncated.h5");
  on_rank0([&] {
    copy_file(good, bad);
    struct stat st {};
    stat(bad.c_str(), &st);
    ASSERT_EQ(truncate(bad.c_str(), st.st_size / 2), 0);
  });
  ProcessGrid grid(world(), 1);
  expect_collective_error<IoError>(w(), [&] { load_model(bad, grid); }, {"truncated.h5", "truncated file"});
}

TEST_F(Checkpoint, FlippedDataByteFailsOnEveryRankNamingTheTensor) {
  // The chunk lies in one rank's hyperslab at TP = world size; only that rank's checksum fails, yet all ranks report.
  SharedDir dir(w());
  const std::string good = write_good(w(), world(), dir, "good.h5");
  const std::string bad = dir.file("flipped-data.h5");
  const std::string tensor = "layers.1.mlp.up_proj.weight";
  on_rank0([&] {
    copy_file(good, bad);
    flip_byte(bad, locate(bad, tensor).chunk + 17);
  });
  ProcessGrid grid(world(), world_size());
  expect_collective_error<IoError>(w(), [&] { load_model(bad, grid); }, {tensor, "Fletcher32"});
  // The damage is local to one tensor: the file still opens and describes itself.
  EXPECT_NO_THROW(read_checkpoint_info(bad, w()));
}

TEST_F(Checkpoint, FlippedMetadataByteFailsOnEveryRank) {
  SharedDir dir(w());
  const std::string good = write_good(w(), world(), dir, "good.h5");
  const std::string header = dir.file("flipped-header.h5"), super = dir.file("flipped-superblock.h5");
  const std::string tensor = "layers.0.attn.k_proj.weight";
  on_rank0([&] {
    copy_file(good, header);
    flip_byte(header, locate(header, tensor).header + 9);
    copy_file(good, super);
    flip_byte(super, 20);  // inside the V110 superblock (addresses), before its checksum
  });
  ProcessGrid grid(world(), 1);
  expect_collective_error<IoError>(w(), [&] { load_model(header, grid); }, {tensor, "checksum"});
  expect_collective_error<IoError>(w(), [&] { load_model(super, grid); }, {"flipped-superblock.h5"});
}

TEST_F(Checkpoint, MissingOrMisshapenTensorIsNamed) {
  SharedDir dir(w());
  const std::string good = write_good(w(), world(), dir, "good.h5");
  const FileInfo info = read_file_info(good, w());
  ProcessGrid grid(world(), world_size());
  ModelConfig cfg = tiny_config(Family::kGpt2);
  cfg.dtype = at::kFloat;
  TransformerModel model(cfg, grid.tp());
  std::vector<TensorBlock> blocks;
  for (const Parameter& p : model.parameters()) {
    TensorBlock b{p.name, p.value.detach(), p.global_shape, p.shard_dim, p.shard_start, p.layout.counted};
    blocks.push_back(b);
  }
  // Without ln_f.bias.
  std::vector<TensorBlock> missing(blocks.begin(), blocks.end() - 1);
  ASSERT_EQ(blocks.back().name, "ln_f.bias");
  write_tensor_file(dir.file("missing.h5"), w(), info.attributes, missing);
  expect_collective_error<IoError>(w(), [&] { load_model(dir.file("missing.h5"), grid); },
                                   {"ln_f.bias", "no tensor"});
  // ln_f.weight one element longer.
  std::vector<TensorBlock> wrong = blocks;
  auto& lnf = wrong[wrong.size() - 2];
  ASSERT_EQ(lnf.name, "ln_f.weight");
  lnf.global_shape = {cfg.d_model + 1};
  lnf.local = at::zeros({cfg.d_model + 1}, at::kFloat);
  write_tensor_file(dir.file("wrong-shape.h5"), w(), info.attributes, wrong);
  expect_collective_error<IoError>(w(), [&] { load_model(dir.file("wrong-shape.h5"), grid); },
                                   {"ln_f.weight", "[49]", "[48]"});
}

TEST_F(Checkpoint, TpThatDoesNotDivideTheHeadsIsAConfigError) {
  if (world_size() == 1) GTEST_SKIP() << "every head count divides by TP = 1";
  SharedDir dir(w());
  ModelConfig cfg = tiny_config(Family::kGpt2);
  cfg.n_heads = cfg.n_kv_heads = 1;
  while (cfg.d_model % cfg.n_heads != 0 || cfg.n_heads % world_size() == 0 || cfg.n_heads == 1)
    cfg.n_heads = cfg.n_kv_heads = cfg.n_heads + 1;
  // Written at TP = 1 (DP = world), loaded at TP = world.
  const std::string path = [&] {
    ProcessGrid grid(world(), 1);
    ModelConfig c = cfg;
    TransformerModel model(c, grid.tp());
    const std::string p = dir.file("heads.h5");
    save_checkpoint(p, model, grid);
    return p;
  }();
  ProcessGrid grid(world(), world_size());
  expect_collective_error<ConfigError>(
      w(), [&] { load_model(path, grid); },
      {"--tp " + std::to_string(world_size()), std::to_string(cfg.n_heads) + " attention heads", "heads.h5"});
}

TEST_F(Checkpoint, TemporaryNamesAndExistingNamesAreRefused) {
  SharedDir dir(w());
  const std::string good = write_good(w(), world(), dir, checkpoint_file_name(7));
  const std::string temp = good + ".tmp.4711.0123456789abcdef";
  on_rank0([&] { copy_file(good, temp); });
  EXPECT_TRUE(is_temporary_checkpoint_name(temp));
  EXPECT_FALSE(is_temporary_checkpoint_name(good));
  EXPECT_FALSE(is_temporary_checkpoint_name(dir.file("x.tmp.job.0123")));
  ProcessGrid grid(world(), 1);
  expect_collective_error<IoError>(w(), [&] { load_model(temp, grid); }, {"temporary"});
  // Writing: an existing final name, a temporary name, a missing directory. Nothing new appears.
  TransformerModel model(tiny_config(Family::kGpt2), grid.tp());
  expect_collective_error<IoError>(w(), [&] { save_checkpoint(good, model, grid); }, {"already exists"});
  expect_collective_error<IoError>(w(), [&] { save_checkpoint(dir.file("a.h5.tmp.1.0123456789abcdef"), model, grid); },
                                   {"temporary name"});
  expect_collective_error<IoError>(w(), [&] { save_checkpoint(dir.file("no/such/dir.h5"), model, grid); },
                                   {"does not exist"});
  MPI_Barrier(MPI_COMM_WORLD);
  if (w().rank() == 0) {
    int entries = 0;
    for (const auto& name : {checkpoint_file_name(7), checkpoint_file_name(7) + ".tmp.4711.0123456789abcdef"}) {
      struct stat st {};
      entries += stat(dir.file(name).c_str(), &st) == 0;
    }
    EXPECT_EQ(entries, 2);
    EXPECT_EQ(std::system(("test $(ls '" + dir.file("") + "' | wc -l) -eq 2").c_str()), 0) << "stray files";
  }
}

}  // namespace
}  // namespace unlearn::testing
