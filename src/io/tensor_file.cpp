// Files of named global tensors in parallel HDF5: collective hyperslab writes and reads, Fletcher32 chunks, V110
// metadata checksums, the content digest, and the commit protocol of design section 5. io layer.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <future>
#include <memory>
#include <random>
#include <set>
#include <sstream>

#include "chunk_reader.h"
#include "collective.h"
#include "files.h"
#include "h5.h"
#include "unlearn/io/checkpoint.h"
#include "unlearn/util/error.h"

namespace unlearn {

using detail::Collective;
using detail::base_name;
using detail::dir_name;
using detail::fsync_path;
using detail::rename_no_replace;

namespace {

constexpr const char* kTensorGroup = "tensors";
constexpr const char* kDigestAttribute = "content_digest";

// ---- storage types ------------------------------------------------------------------------------------------

std::int64_t element_bytes(StorageType t) {
  return t == StorageType::kFloat64 ? 8 : t == StorageType::kFloat32 ? 4 : 2;
}

/// File type of a storage type (little-endian, as h5py writes them).
h5::Handle file_type(StorageType t) {
  auto copy = [](hid_t base) {
    return h5::Handle(h5::check_id(H5Tcopy(base), "H5Tcopy"), h5::Handle::Kind::kDatatype);
  };
  switch (t) {
    case StorageType::kFloat32: return copy(H5T_IEEE_F32LE);
    case StorageType::kFloat64: return copy(H5T_IEEE_F64LE);
    case StorageType::kFloat16: return h5::half_type();
    case StorageType::kBFloat16: return copy(H5T_STD_U16LE);
  }
  throw IoError("unknown storage type");
}

/// Memory type matching an at::Tensor of scalar_type_of(t) on this (little-endian) host.
h5::Handle memory_type(StorageType t) {
  auto copy = [](hid_t base) {
    return h5::Handle(h5::check_id(H5Tcopy(base), "H5Tcopy"), h5::Handle::Kind::kDatatype);
  };
  switch (t) {
    case StorageType::kFloat32: return copy(H5T_NATIVE_FLOAT);
    case StorageType::kFloat64: return copy(H5T_NATIVE_DOUBLE);
    case StorageType::kFloat16: return h5::half_type();
    case StorageType::kBFloat16: return copy(H5T_NATIVE_UINT16);
  }
  throw IoError("unknown storage type");
}
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "16-bit storage types assume a little-endian host");

/// Storage type of a dataset from its HDF5 type and `dtype` attribute.
StorageType dataset_storage(const h5::Handle& dset, const std::string& name) {
  const h5::Handle type = h5::dataset_type(dset);
  const H5T_class_t cls = H5Tget_class(type.id());
  const std::size_t size = H5Tget_size(type.id());
  std::string attr;
  if (h5::attribute_exists(dset.id(), "dtype")) attr = h5::read_string_attribute(dset.id(), "dtype");
  if (cls == H5T_FLOAT && size == 4) return StorageType::kFloat32;
  if (cls == H5T_FLOAT && size == 8) return StorageType::kFloat64;
  if (cls == H5T_FLOAT && size == 2) {
    std::size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
    h5::check(H5Tget_fields(type.id(), &spos, &epos, &esize, &mpos, &msize), "H5Tget_fields");
    if (spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10) return StorageType::kFloat16;
  }
  if (cls == H5T_INTEGER && size == 2 && H5Tget_sign(type.id()) == H5T_SGN_NONE && attr == "bf16")
    return StorageType::kBFloat16;
  throw IoError("tensor '" + name + "' has an unsupported element type (expected float16/32/64, or uint16 with " +
                "dtype = bf16)");
}

// ---- content digest -----------------------------------------------------------------------------------------

std::uint64_t fnv1a64(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

template <typename Word>
inline std::uint64_t row_digest_of(const Word* w, std::int64_t n, std::uint64_t salt, std::uint64_t g0) {
  std::uint64_t acc = 0;
  for (std::int64_t i = 0; i < n; ++i)
    acc += splitmix64((salt + (g0 + static_cast<std::uint64_t>(i)) * 0x9e3779b97f4a7c15ull) ^
                      static_cast<std::uint64_t>(w[i]));
  return acc;
}
// Digest of one row of n words whose first is global element g0; one clone set per word width.
UNLEARN_CHECKSUM_CLONES std::uint64_t row_digest(const std::uint16_t* w, std::int64_t n, std::uint64_t salt,
                                                 std::uint64_t g0) {
  return row_digest_of(w, n, salt, g0);
}
UNLEARN_CHECKSUM_CLONES std::uint64_t row_digest(const std::uint32_t* w, std::int64_t n, std::uint64_t salt,
                                                 std::uint64_t g0) {
  return row_digest_of(w, n, salt, g0);
}
UNLEARN_CHECKSUM_CLONES std::uint64_t row_digest(const std::uint64_t* w, std::int64_t n, std::uint64_t salt,
                                                 std::uint64_t g0) {
  return row_digest_of(w, n, salt, g0);
}

template <typename Word>
std::uint64_t digest_words(const Word* bits, std::uint64_t salt, std::int64_t rows, std::int64_t row_len,
                           std::int64_t shard_len, std::int64_t global_len, std::int64_t start) {
  // Local row r = (o, s) covers global elements ((o * global_len + start + s) * row_len + i), i < row_len.
  return at::parallel_reduce(
      0, rows, 64, std::uint64_t{0},
      [&](std::int64_t begin, std::int64_t end, std::uint64_t acc) {
        for (std::int64_t r = begin; r < end; ++r) {
          const std::int64_t o = r / shard_len, s = r % shard_len;
          const auto g0 = static_cast<std::uint64_t>((o * global_len + start + s) * row_len);
          acc += row_digest(bits + r * row_len, row_len, salt, g0);
        }
        return acc;
      },
      [](std::uint64_t a, std::uint64_t b) { return a + b; });
}

/// Sum over the block's elements of splitmix64((fnv1a64(name) + g * 0x9e3779b97f4a7c15) ^ bits), mod 2^64, g the
/// element's row-major index in the global tensor and bits its stored word (docs/checkpoint-format.md).
std::uint64_t block_digest(const std::string& name, const at::Tensor& stored, const TensorBlock& b) {
  if (stored.numel() == 0) return 0;
  const std::int64_t ndim = static_cast<std::int64_t>(b.global_shape.size());
  const int k = b.shard_dim < 0 ? 0 : b.shard_dim;
  std::int64_t outer = 1, inner = 1;
  for (std::int64_t d = 0; d < k; ++d) outer *= b.global_shape[static_cast<std::size_t>(d)];
  for (std::int64_t d = k + 1; d < ndim; ++d) inner *= b.global_shape[static_cast<std::size_t>(d)];
  const std::int64_t global_len = b.global_shape[static_cast<std::size_t>(k)];
  const std::int64_t shard_len = b.shard_dim < 0 ? global_len : stored.size(k);
  const std::int64_t start = b.shard_dim < 0 ? 0 : b.shard_start;
  const std::int64_t rows = outer * shard_len;
  const std::uint64_t salt = fnv1a64(name);
  switch (stored.element_size()) {
    case 2: return digest_words(static_cast<const std::uint16_t*>(stored.data_ptr()), salt, rows, inner, shard_len,
                                global_len, start);
    case 4: return digest_words(static_cast<const std::uint32_t*>(stored.data_ptr()), salt, rows, inner, shard_len,
                                global_len, start);
    default: return digest_words(static_cast<const std::uint64_t*>(stored.data_ptr()), salt, rows, inner,
                                 shard_len, global_len, start);
  }
}

/// The content digest summed over blocks on a helper thread, one block in flight, so that it overlaps the I/O of the
/// same or the next tensor. The caller leaves each block's words unchanged until total().
class DigestSum {
 public:
  void add(const TensorBlock& b, const at::Tensor& stored) {
    collect();
    pending_ = std::async(std::launch::async, [b, stored] { return block_digest(b.name, stored, b); });
  }
  std::uint64_t total() {
    collect();
    return sum_;
  }

 private:
  void collect() {
    if (pending_.valid()) sum_ += pending_.get();
  }
  std::future<std::uint64_t> pending_;
  std::uint64_t sum_ = 0;
};

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// ---- shapes and selections ----------------------------------------------------------------------------------

std::string shape_str(const std::vector<std::int64_t>& s) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

std::vector<std::int64_t> local_shape(const TensorBlock& b) { return b.local.sizes().vec(); }

/// The block's local shape implied by its layout: global shape with shard_dim's extent taken from `local`.
void check_block(const TensorBlock& b) {
  if (b.name.empty() || b.name.find('/') != std::string::npos || b.name == "." || b.name == "..")
    throw IoError("invalid tensor name '" + b.name + "' (names are non-empty and contain no '/')");
  if (b.global_shape.empty())
    throw IoError("tensor '" + b.name + "': 0-dimensional tensors are not stored (use an attribute)");
  if (!b.local.defined()) throw IoError("tensor '" + b.name + "': no local tensor");
  const auto local = local_shape(b);
  const std::int64_t ndim = static_cast<std::int64_t>(b.global_shape.size());
  bool ok = static_cast<std::int64_t>(local.size()) == ndim && b.shard_dim < ndim;
  for (std::int64_t d = 0; ok && d < ndim; ++d) {
    const auto du = static_cast<std::size_t>(d);
    if (d == b.shard_dim)
      ok = b.shard_start >= 0 && b.shard_start + local[du] <= b.global_shape[du];
    else
      ok = local[du] == b.global_shape[du];
  }
  if (!ok)
    throw IoError("tensor '" + b.name + "': local block " + shape_str(local) + " at offset " +
                  std::to_string(b.shard_start) + " along dim " + std::to_string(b.shard_dim) +
                  " does not fit the global shape " + shape_str(b.global_shape));
}

std::vector<hsize_t> to_hsize(const std::vector<std::int64_t>& v) { return {v.begin(), v.end()}; }

/// Where a block's hyperslab starts in the file (its extent is the local shape).
std::vector<hsize_t> block_start(const TensorBlock& b) {
  std::vector<hsize_t> start(b.global_shape.size(), 0);
  if (b.shard_dim >= 0) start[static_cast<std::size_t>(b.shard_dim)] = static_cast<hsize_t>(b.shard_start);
  return start;
}

/// Selects the block in the file space (and the whole memory space), or nothing when `take` is false.
void select_block(const h5::Handle& file_space, const h5::Handle& mem_space, const TensorBlock& b, bool take) {
  if (!take || b.local.numel() == 0) {
    h5::check(H5Sselect_none(file_space.id()), "H5Sselect_none");
    h5::check(H5Sselect_none(mem_space.id()), "H5Sselect_none");
    return;
  }
  const std::vector<hsize_t> start = block_start(b);
  const std::vector<hsize_t> count = to_hsize(local_shape(b));
  h5::check(H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
            "H5Sselect_hyperslab");
}

/// Chunk shape of about `target` bytes. Shrinks the shard dimension first (chunks then follow TP shard borders and
/// a rank reads few chunks it does not need), to a power of two so that typical shard sizes are multiples of it.
std::vector<hsize_t> chunk_shape(const std::vector<std::int64_t>& shape, int shard_dim, std::int64_t elem,
                                 std::int64_t target) {
  std::vector<hsize_t> c;
  for (auto x : shape) c.push_back(static_cast<hsize_t>(std::max<std::int64_t>(x, 1)));
  std::vector<std::size_t> order;
  order.push_back(static_cast<std::size_t>(std::max(shard_dim, 0)));
  for (std::size_t d = 0; d < c.size(); ++d)
    if (d != order[0]) order.push_back(d);
  auto bytes = [&] {
    hsize_t n = static_cast<hsize_t>(elem);
    for (auto x : c) n *= x;
    return n;
  };
  const auto limit = static_cast<hsize_t>(std::max<std::int64_t>(target, elem));
  for (std::size_t d : order) {
    if (bytes() <= limit) break;
    const hsize_t other = bytes() / c[d];
    hsize_t n = std::max<hsize_t>(1, limit / other);
    hsize_t pow2 = 1;
    while (pow2 * 2 <= n) pow2 *= 2;
    c[d] = pow2;
  }
  return c;
}

// ---- file access --------------------------------------------------------------------------------------------

h5::Handle file_access(const Collective& coll) {
  h5::Handle fapl = h5::plist(H5P_FILE_ACCESS);
  if (coll.comm() != MPI_COMM_NULL) {
    h5::check(H5Pset_fapl_mpio(fapl.id(), coll.comm(), MPI_INFO_NULL), "H5Pset_fapl_mpio");
    // Metadata is read once by rank 0 and broadcast, and written collectively: no open storm at scale.
    h5::check(H5Pset_all_coll_metadata_ops(fapl.id(), true), "H5Pset_all_coll_metadata_ops");
    h5::check(H5Pset_coll_metadata_write(fapl.id(), true), "H5Pset_coll_metadata_write");
  }
  // V110 object headers, superblock and B-trees carry checksums.
  h5::check(H5Pset_libver_bounds(fapl.id(), H5F_LIBVER_V110, H5F_LIBVER_V110), "H5Pset_libver_bounds");
  return fapl;
}

h5::Handle transfer(const Collective& coll) {
  h5::Handle dxpl = h5::plist(H5P_DATASET_XFER);
  if (coll.comm() != MPI_COMM_NULL)
    h5::check(H5Pset_dxpl_mpio(dxpl.id(), H5FD_MPIO_COLLECTIVE), "H5Pset_dxpl_mpio");
  return dxpl;
}

std::string errno_text(int err) { return std::strerror(err); }

/// The cheap checks made before libhdf5 sees a file (docs/reliability.md: HDF5 files from untrusted sources are out
/// of scope; these only turn the common accidents into clear messages). HDF5 looks for its 8-byte signature at
/// byte 0, 512, 1024, 2048, ... (a user block may precede it); our writers put it at 0. The smallest superblock
/// (version 2 and 3) is 48 bytes.
void check_hdf5_signature(const std::string& path, std::int64_t size) {
  static const char kSignature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  if (size == 0) throw IoError("checkpoint '" + path + "' is empty (0 bytes)");
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw IoError("cannot open checkpoint '" + path + "': " + errno_text(errno));
  bool found = false;
  for (std::int64_t at = 0; !found && at + 8 <= size; at = at == 0 ? 512 : 2 * at) {
    char head[8];
    found = ::pread(fd, head, 8, static_cast<off_t>(at)) == 8 && std::memcmp(head, kSignature, 8) == 0;
  }
  ::close(fd);
  if (!found)
    throw IoError("'" + path + "' is not an HDF5 file (no HDF5 signature; " + std::to_string(size) + " bytes)");
  if (size < 48) throw IoError("checkpoint '" + path + "' is truncated (" + std::to_string(size) + " bytes)");
}

/// Opens an existing file read-only, collectively; the status is agreed.
h5::Handle open_for_read(const std::string& path, const Collective& coll) {
  h5::init_error_handling();
  h5::Handle file;
  coll.run([&] {
    if (is_temporary_checkpoint_name(path))
      throw IoError("'" + path + "' is a temporary file of an unfinished or failed checkpoint write; it is never " +
                    "loaded (remove it, or load the last committed checkpoint)");
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
      throw IoError("cannot open checkpoint '" + path + "': " + errno_text(errno));
    if (!S_ISREG(st.st_mode)) throw IoError("checkpoint '" + path + "' is not a regular file");
    // One rank reads the signature (no open storm at scale); the outcome is agreed like the rest.
    if (coll.rank() == 0) check_hdf5_signature(path, static_cast<std::int64_t>(st.st_size));
  });
  coll.run([&] {
    h5::Handle fapl = file_access(coll);
    const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.id());
    if (id < 0) h5::fail("cannot open checkpoint '" + path + "' as HDF5");
    file = h5::Handle(id, h5::Handle::Kind::kFile);
  });
  return file;
}

TensorInfo describe_dataset(hid_t group, const std::string& name) {
  TensorInfo t;
  t.name = name;
  h5::Handle dset(H5Dopen2(group, name.c_str(), H5P_DEFAULT), h5::Handle::Kind::kDataset);
  if (!dset.valid()) h5::fail("cannot open tensor '" + name + "'");
  for (auto d : h5::extent(h5::dataset_space(dset))) t.shape.push_back(static_cast<std::int64_t>(d));
  t.storage = dataset_storage(dset, name);
  h5::Handle dcpl(h5::check_id(H5Dget_create_plist(dset.id()), "H5Dget_create_plist"), h5::Handle::Kind::kPlist);
  if (H5Pget_layout(dcpl.id()) == H5D_CHUNKED) {
    std::vector<hsize_t> chunk(t.shape.size());
    h5::check(H5Pget_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data()), "H5Pget_chunk");
    t.chunk.assign(chunk.begin(), chunk.end());
  }
  const int nfilters = h5::check(H5Pget_nfilters(dcpl.id()), "H5Pget_nfilters");
  for (int i = 0; i < nfilters; ++i) {
    unsigned flags = 0;
    std::size_t nelem = 0;
    const H5Z_filter_t f = H5Pget_filter2(dcpl.id(), static_cast<unsigned>(i), &flags, &nelem, nullptr, 0, nullptr,
                                          nullptr);
    if (f == H5Z_FILTER_FLETCHER32) t.fletcher32 = true;
  }
  return t;
}

/// Reads the whole metadata of an open file. Every rank makes the same calls (collective metadata reads).
FileInfo read_info(hid_t file, const std::string& path) {
  FileInfo info;
  info.path = path;
  for (const auto& name : h5::attribute_names(file)) {
    switch (h5::attribute_class(file, name)) {
      case h5::AttributeClass::kString: info.attributes[name] = h5::read_string_attribute(file, name); break;
      case h5::AttributeClass::kInteger: info.attributes[name] = h5::read_int_attribute(file, name); break;
      case h5::AttributeClass::kFloat: info.attributes[name] = h5::read_float_attribute(file, name); break;
      case h5::AttributeClass::kOther: info.attributes[name] = std::string("<unsupported attribute type>"); break;
    }
  }
  if (!h5::link_exists(file, kTensorGroup)) throw IoError("'" + path + "' has no '/tensors' group: not a checkpoint");
  h5::Handle group = h5::open_group(file, kTensorGroup);
  for (const auto& name : h5::list_links(group.id())) info.tensors.push_back(describe_dataset(group.id(), name));
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) info.file_bytes = static_cast<std::int64_t>(st.st_size);
  return info;
}

// ---- attributes ---------------------------------------------------------------------------------------------

void write_attributes(hid_t obj, const Attributes& attrs) {
  for (const auto& [key, value] : attrs) {
    if (const auto* s = std::get_if<std::string>(&value)) {
      h5::write_attribute(obj, key, *s);
    } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
      h5::write_attribute(obj, key, *i);
    } else {
      h5::write_attribute(obj, key, std::get<double>(value));
    }
  }
}

// ---- commit -------------------------------------------------------------------------------------------------

std::string job_id() {
  std::string id;
  if (const char* s = std::getenv("SLURM_JOB_ID"); s && *s) id = s;
  else id = "pid" + std::to_string(::getpid());
  for (char& c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') c = '_';
  return id;
}

std::string nonce() {
  std::random_device rd;
  const std::uint64_t v = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  return hex64(v);
}

struct Writer {
  const Collective& coll;
  const std::vector<TensorBlock>& blocks;
  const WriteOptions& options;
  std::vector<StorageType> storage;
  std::vector<std::vector<hsize_t>> chunks;  // must agree on every rank (dataset creation is collective)

  void write_tensor(hid_t group, const h5::Handle& dxpl, std::size_t i, DigestSum& digest) {
    const TensorBlock& b = blocks[i];
    const StorageType st = storage[i];
    h5::Handle space = h5::dataspace(to_hsize(b.global_shape));
    h5::Handle dcpl = h5::plist(H5P_DATASET_CREATE);
    const auto& chunk = chunks[i];
    h5::check(H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data()), "H5Pset_chunk");
    h5::check(H5Pset_fletcher32(dcpl.id()), "H5Pset_fletcher32");
    h5::check(H5Pset_obj_track_times(dcpl.id(), false), "H5Pset_obj_track_times");
    // Every element is written (coverage is checked), so fill values would only cost a pass over the file.
    h5::check(H5Pset_fill_time(dcpl.id(), H5D_FILL_TIME_NEVER), "H5Pset_fill_time");
    h5::Handle ftype = file_type(st);
    h5::Handle dset(H5Dcreate2(group, b.name.c_str(), ftype.id(), space.id(), H5P_DEFAULT, dcpl.id(), H5P_DEFAULT),
                    h5::Handle::Kind::kDataset);
    if (!dset.valid()) h5::fail("cannot create tensor '" + b.name + "'");
    h5::write_attribute(dset.id(), "dtype", storage_type_name(st));

    // Convert on the host to the storage type; bf16 words go out as uint16. Ranks that write nothing skip it.
    at::Tensor stored = b.owner ? b.local.detach().to(at::kCPU).to(scalar_type_of(st)).contiguous()
                                : at::empty({0}, at::TensorOptions().dtype(scalar_type_of(st)));
    h5::Handle mem_space = h5::dataspace(to_hsize(local_shape(b)));
    h5::Handle file_space = h5::dataset_space(dset);
    select_block(file_space, mem_space, b, b.owner);
    h5::Handle mtype = memory_type(st);
    if (b.owner) digest.add(b, stored);
    const std::uint16_t dummy = 0;  // HDF5 wants a buffer even for an empty selection
    const void* data = stored.numel() > 0 ? stored.data_ptr() : &dummy;
    h5::check(H5Dwrite(dset.id(), mtype.id(), mem_space.id(), file_space.id(), dxpl.id(), data),
              "cannot write tensor '" + b.name + "'");
    dset.close("cannot close tensor '" + b.name + "'");
  }
};

}  // namespace

// ---- public -------------------------------------------------------------------------------------------------

StorageType storage_type_of(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return StorageType::kFloat32;
    case at::kDouble: return StorageType::kFloat64;
    case at::kHalf: return StorageType::kFloat16;
    case at::kBFloat16: return StorageType::kBFloat16;
    default: break;
  }
  std::ostringstream os;
  os << "tensors of dtype " << t << " cannot be stored in a checkpoint (floating types only)";
  throw ConfigError(os.str());
}

at::ScalarType scalar_type_of(StorageType t) {
  switch (t) {
    case StorageType::kFloat32: return at::kFloat;
    case StorageType::kFloat64: return at::kDouble;
    case StorageType::kFloat16: return at::kHalf;
    case StorageType::kBFloat16: return at::kBFloat16;
  }
  return at::kFloat;
}

const TensorInfo* FileInfo::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

bool VerifyResult::ok() const {
  for (const auto& e : tensor_errors)
    if (!e.empty()) return false;
  return digest_stored == digest_computed;
}

bool is_temporary_checkpoint_name(const std::string& path) {
  const std::string name = base_name(path);
  const auto pos = name.rfind(".tmp.");
  if (pos == std::string::npos) return false;
  const std::string rest = name.substr(pos + 5);  // <jobid>.<16 hex>
  const auto dot = rest.rfind('.');
  if (dot == std::string::npos || dot == 0 || rest.size() - dot - 1 != 16) return false;
  for (std::size_t i = 0; i < dot; ++i)
    if (!std::isalnum(static_cast<unsigned char>(rest[i])) && rest[i] != '_' && rest[i] != '-') return false;
  for (std::size_t i = dot + 1; i < rest.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(rest[i])) && !(rest[i] >= 'a' && rest[i] <= 'f')) return false;
  return true;
}

std::string write_tensor_file(const std::string& final_path, Communicator& world, const Attributes& attributes,
                              const std::vector<TensorBlock>& blocks, const WriteOptions& options) {
  h5::init_error_handling();
  const Collective coll(world);
  Writer writer{coll, blocks, options, {}, {}};

  // 1. Inputs: valid blocks, the same tensor list on every rank, every element owned exactly once.
  coll.run([&] {
    if (is_temporary_checkpoint_name(final_path))
      throw IoError("refusing to write a checkpoint under the temporary name '" + final_path + "'");
    std::set<std::string> names;
    for (const auto& b : blocks) {
      check_block(b);
      if (!names.insert(b.name).second) throw IoError("tensor '" + b.name + "' is listed twice");
      writer.storage.push_back(options.storage ? *options.storage : storage_type_of(b.local.scalar_type()));
      writer.chunks.push_back(
          chunk_shape(b.global_shape, b.shard_dim, element_bytes(writer.storage.back()), options.chunk_bytes));
    }
  });
  std::uint64_t fingerprint = fnv1a64(std::to_string(blocks.size()));
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    std::vector<std::int64_t> chunk(writer.chunks[i].begin(), writer.chunks[i].end());
    fingerprint = splitmix64(fingerprint ^ fnv1a64(blocks[i].name + shape_str(blocks[i].global_shape) +
                                                   shape_str(chunk)) ^
                             static_cast<std::uint64_t>(writer.storage[i]));
  }
  std::vector<std::int64_t> owned(blocks.size());
  for (std::size_t i = 0; i < blocks.size(); ++i) owned[i] = blocks[i].owner ? blocks[i].local.numel() : 0;
  coll.sum(owned);
  coll.run([&] {
    if (!coll.same_everywhere(fingerprint))
      throw IoError("ranks disagree about the tensors of checkpoint '" + final_path + "'");
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      std::int64_t n = 1;
      for (auto d : blocks[i].global_shape) n *= d;
      if (owned[i] != n)
        throw IoError("tensor '" + blocks[i].name + "': owners hold " + std::to_string(owned[i]) + " of its " +
                      std::to_string(n) + " elements (each element needs exactly one owner)");
    }
  });

  // 2. Rank 0 checks the final name and picks the temporary name in the same directory (rename stays atomic).
  std::string temp;
  coll.run([&] {
    if (coll.rank() != 0) return;
    struct stat st {};
    if (::lstat(final_path.c_str(), &st) == 0)
      throw IoError("checkpoint '" + final_path + "' already exists; checkpoint names are never reused");
    const std::string dir = dir_name(final_path);
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw IoError("cannot write checkpoint '" + final_path + "': directory '" + dir + "' does not exist");
    temp = final_path + ".tmp." + job_id() + "." + nonce();
  });
  temp = coll.broadcast(temp, 0);
  // A rank that has to abort the job (Collective::run) removes the temporary file itself.
  coll.set_abandon_hook([temp] { ::unlink(temp.c_str()); });
  const Attributes attrs = decode_attribute_record(coll.broadcast(encode_attribute_record(attributes), 0));

  // 3. Write. Each step's status is agreed before the next collective, so a failure on one rank never leaves the
  //    others waiting; on failure the file is closed collectively and rank 0 removes it.
  h5::Handle file;
  bool created = false;
  std::uint64_t digest = 0;
  DigestSum digests;
  auto cleanup_and_rethrow = [&] {
    // Every rank agreed on the failure (Collective::run), so the close is collective again. Truncating the file
    // first gives a full filesystem room for the metadata the close flushes; the file is removed anyway.
    if (coll.rank() == 0 && created && file.valid()) {
      [[maybe_unused]] const int rc = ::truncate(temp.c_str(), 0);  // best effort (g++ 13 ignores a void cast)
    }
    coll.barrier();
    file.reset();
    if (coll.rank() == 0 && created) ::unlink(temp.c_str());
    coll.set_abandon_hook({});
    throw;
  };
  // Failures from here on name the checkpoint, and point at a full filesystem (MPI-IO reports only "write failed").
  auto step = [&](const std::function<void()>& body) {
    coll.run([&] {
      try {
        body();
      } catch (const ConfigError&) {
        throw;
      } catch (const std::exception& e) {
        std::string hint;
        struct statvfs fs {};
        if (::statvfs(dir_name(final_path).c_str(), &fs) == 0 &&
            static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize) < (1 << 20))
          hint = " (no space left on the filesystem of '" + dir_name(final_path) + "')";
        throw IoError("writing checkpoint '" + final_path + "': " + e.what() + hint);
      }
    });
  };
  try {
    step([&] {
      h5::Handle fcpl = h5::plist(H5P_FILE_CREATE);
      h5::check(H5Pset_obj_track_times(fcpl.id(), false), "H5Pset_obj_track_times");
      // Root attributes stay in the (checksummed) object header instead of moving to dense storage.
      h5::check(H5Pset_attr_phase_change(fcpl.id(), 65535, 0), "H5Pset_attr_phase_change");
      h5::Handle fapl = file_access(coll);
      const hid_t id = H5Fcreate(temp.c_str(), H5F_ACC_EXCL, fcpl.id(), fapl.id());
      if (id < 0) h5::fail("cannot create '" + temp + "'");
      file = h5::Handle(id, h5::Handle::Kind::kFile);
    });
    created = true;
    h5::Handle group;
    step([&] {
      write_attributes(file.id(), attrs);
      group = h5::create_group(file.id(), kTensorGroup);
    });
    const h5::Handle dxpl = transfer(coll);
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      step([&] { writer.write_tensor(group.id(), dxpl, i, digests); });
      if (options.on_tensor_written) options.on_tensor_written(i, blocks[i].name);
    }
    digest = coll.sum_wrapping(digests.total());
    step([&] {
      group.close("cannot close group '/tensors'");
      h5::write_attribute(file.id(), kDigestAttribute, hex64(digest));
      h5::check(H5Fflush(file.id(), H5F_SCOPE_GLOBAL), "cannot flush '" + temp + "'");
    });
    step([&] { file.close("cannot close '" + temp + "'"); });
    // 4. Durable before visible: rank 0 syncs the file (MPI-IO wrote it from every rank), renames it without
    //    replacing anything, and syncs the directory so the new name survives a crash.
    step([&] {
      if (coll.rank() != 0) return;
      fsync_path(temp, false);
      rename_no_replace(temp, final_path);
      created = false;
      fsync_path(dir_name(final_path), true);
    });
  } catch (...) {
    cleanup_and_rethrow();
  }
  coll.set_abandon_hook({});
  coll.barrier();
  return hex64(digest);
}

FileInfo read_file_info(const std::string& path, Communicator& world) {
  const Collective coll(world);
  h5::Handle file = open_for_read(path, coll);
  FileInfo info;
  coll.run([&] { info = read_info(file.id(), path); });
  coll.run([&] { file.close("cannot close '" + path + "'"); });
  return info;
}

namespace {

/// UNLEARN_CHECKPOINT_READ=hdf5 reads every tensor through H5Dread and HDF5's filter pipeline (A/B and tests).
bool direct_reads_enabled() {
  const char* v = std::getenv("UNLEARN_CHECKPOINT_READ");
  return !(v && std::string(v) == "hdf5");
}

/// Reads the blocks of one file, one tensor at a time; opening a tensor is collective (every rank, same order), so is
/// a read through H5Dread. Tensors with Fletcher32 chunks in the memory layout are read directly (chunk_reader.h):
/// each rank preads its chunks and verifies their checksums.
class BlockReader {
 public:
  BlockReader(hid_t file, hid_t group, const std::string& path, const Collective& coll)
      : group_(group), dxpl_(transfer(coll)) {
    if (!direct_reads_enabled()) return;
    base_ = detail::base_address(file);
    raw_ = std::make_unique<detail::ChunkFile>(path);
  }

  /// Reads a block into a buffer of the storage type: `b.local` itself when it is a contiguous host tensor of that
  /// type (no extra copy), else a new tensor. Returns the buffer.
  at::Tensor read(const TensorBlock& b, const TensorInfo& t) {
    h5::Handle dset(H5Dopen2(group_, b.name.c_str(), H5P_DEFAULT), h5::Handle::Kind::kDataset);
    if (!dset.valid()) h5::fail("cannot open tensor '" + b.name + "'");
    const h5::Handle mtype = memory_type(t.storage);
    const at::ScalarType type = scalar_type_of(t.storage);
    const bool in_place = b.local.is_contiguous() && b.local.device().is_cpu() && b.local.scalar_type() == type;
    at::Tensor buf = in_place ? b.local.detach() : at::empty(local_shape(b), at::TensorOptions().dtype(type));
    if (raw_) {
      if (const auto index = detail::chunk_index(dset.id(), mtype.id(), element_bytes(t.storage), base_)) {
        if (buf.numel() > 0)
          raw_->read(*index, block_start(b), to_hsize(local_shape(b)), element_bytes(t.storage), buf.data_ptr(),
                     b.name);
        return buf;
      }
    }
    h5::Handle mem_space = h5::dataspace(to_hsize(local_shape(b)));
    h5::Handle file_space = h5::dataset_space(dset);
    select_block(file_space, mem_space, b, true);
    std::uint16_t dummy = 0;
    void* data = buf.numel() > 0 ? buf.data_ptr() : &dummy;
    if (H5Dread(dset.id(), mtype.id(), mem_space.id(), file_space.id(), dxpl_.id(), data) < 0)
      h5::fail("tensor '" + b.name + "' is corrupt or unreadable");
    return buf;
  }

 private:
  hid_t group_;
  h5::Handle dxpl_;
  std::uint64_t base_ = 0;
  std::unique_ptr<detail::ChunkFile> raw_;
};

}  // namespace

void read_tensor_blocks(const std::string& path, Communicator& world, std::vector<TensorBlock>& blocks,
                        bool verify_digest) {
  const Collective coll(world);
  h5::Handle file = open_for_read(path, coll);
  try {
    FileInfo info;
    coll.run([&] {
      info = read_info(file.id(), path);
      for (const auto& b : blocks) {
        check_block(b);
        const TensorInfo* t = info.find(b.name);
        if (!t) throw IoError("checkpoint '" + path + "' has no tensor '" + b.name + "'");
        if (t->shape != b.global_shape)
          throw IoError("tensor '" + b.name + "' has shape " + shape_str(t->shape) + " in '" + path +
                        "', expected " + shape_str(b.global_shape));
      }
    });
    h5::Handle group;
    coll.run([&] { group = h5::open_group(file.id(), kTensorGroup); });
    std::unique_ptr<BlockReader> reader;
    coll.run([&] { reader = std::make_unique<BlockReader>(file.id(), group.id(), path, coll); });
    // The status is agreed once, after the last tensor: ranks whose chunks are read independently then never wait
    // for each other in between. A rank that failed keeps making the same HDF5 calls (opening every tensor is
    // collective metadata, and H5Dread collective data) and reports its first error in the agreement.
    DigestSum digests;  // tensor i's digest is computed while tensor i + 1 is read
    std::exception_ptr first_error;
    for (auto& b : blocks) {
      try {
        at::Tensor buf = reader->read(b, *info.find(b.name));
        if (first_error) continue;
        if (verify_digest && b.owner) digests.add(b, buf);
        if (buf.data_ptr() != b.local.data_ptr()) {  // not read in place
          c10::NoGradGuard no_grad;
          b.local.detach().copy_(buf);
        }
      } catch (...) {
        if (!first_error) first_error = std::current_exception();
      }
    }
    coll.run([&] {
      if (first_error) std::rethrow_exception(first_error);
    });
    if (verify_digest) {
      const std::uint64_t digest = coll.sum_wrapping(digests.total());
      coll.run([&] {
        const auto it = info.attributes.find(kDigestAttribute);
        const std::string stored = it == info.attributes.end() ? "" : attribute_to_string(it->second);
        if (stored != hex64(digest))
          throw IoError("checkpoint '" + path + "': content digest " + hex64(digest) + " of the data read differs "
                        "from the stored " + (stored.empty() ? std::string("(none)") : stored));
      });
    }
    reader.reset();
    coll.run([&] { group.close("cannot close group"); });
    coll.run([&] { file.close("cannot close '" + path + "'"); });
  } catch (...) {
    file.reset();
    throw;
  }
}

VerifyResult verify_tensor_file(const std::string& path, Communicator& world, const FileInfo& info) {
  const Collective coll(world);
  h5::Handle file = open_for_read(path, coll);
  VerifyResult result;
  result.tensor_errors.resize(info.tensors.size());
  try {
    h5::Handle group;
    coll.run([&] { group = h5::open_group(file.id(), kTensorGroup); });
    std::unique_ptr<BlockReader> reader;
    coll.run([&] { reader = std::make_unique<BlockReader>(file.id(), group.id(), path, coll); });
    std::uint64_t digest = 0;
    for (std::size_t i = 0; i < info.tensors.size(); ++i) {
      const TensorInfo& t = info.tensors[i];
      if (t.shape.empty()) {
        result.tensor_errors[i] = "0-dimensional dataset";
        continue;
      }
      // Rows of dim 0 split across the ranks: every element is read (and its chunk checksummed) once.
      TensorBlock b;
      b.name = t.name;
      b.global_shape = t.shape;
      b.shard_dim = 0;
      const Range r = split_range(t.shape[0], coll.size(), coll.rank());
      b.shard_start = r.start;
      std::vector<std::int64_t> shape = t.shape;
      shape[0] = r.size;
      b.local = at::empty(shape, at::TensorOptions().dtype(scalar_type_of(t.storage)));
      try {
        coll.run([&] {
          digest += block_digest(b.name, reader->read(b, t), b);
        });
      } catch (const Error& e) {
        result.tensor_errors[i] = e.what();
      }
    }
    result.digest_computed = hex64(coll.sum_wrapping(digest));
    const auto it = info.attributes.find(kDigestAttribute);
    result.digest_stored = it == info.attributes.end() ? "" : attribute_to_string(it->second);
    reader.reset();
    coll.run([&] { group.close("cannot close group"); });
    coll.run([&] { file.close("cannot close '" + path + "'"); });
  } catch (...) {
    file.reset();
    throw;
  }
  return result;
}

}  // namespace unlearn
