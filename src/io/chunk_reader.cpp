// Direct reads of Fletcher32 chunks (chunk_reader.h). io layer.
#include "chunk_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>

#include "h5.h"
#include "unlearn/util/error.h"

namespace unlearn::detail {

namespace {

constexpr std::uint32_t kMod = 65535;
constexpr std::size_t kBlockWords = 256;  // Σ (n - j) w_j over a block stays below 2^32

/// One block of kBlockWords big-endian words: a = Σ w_j, b = Σ (n - j) w_j (a fixed count, vectorised).
UNLEARN_CHECKSUM_CLONES void block_sums(const std::uint8_t* p, std::uint32_t* a,
                                                                   std::uint32_t* b) {
  std::uint32_t sa = 0, sb = 0;
  for (std::size_t j = 0; j < kBlockWords; ++j) {
    std::uint16_t word;
    std::memcpy(&word, p + 2 * j, 2);
    const std::uint32_t w = __builtin_bswap16(word);  // big-endian word on this little-endian host
    sa += w;
    sb += static_cast<std::uint32_t>(kBlockWords - j) * w;
  }
  *a = sa;
  *b = sb;
}

inline void tail_sums(const std::uint8_t* p, std::size_t n, std::uint32_t& a, std::uint32_t& b) {
  a = b = 0;
  for (std::size_t j = 0; j < n; ++j) {
    const std::uint32_t w = (std::uint32_t{p[2 * j]} << 8) | p[2 * j + 1];
    a += w;
    b += static_cast<std::uint32_t>(n - j) * w;
  }
}

std::string errno_text() { return std::strerror(errno); }

/// Calls fn(linear index, chunk origin) for every chunk meeting the hyperslab [start, start + count), row-major.
void for_each_chunk(const ChunkIndex& index, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count,
                    const std::function<void(std::uint64_t, const std::vector<hsize_t>&)>& fn) {
  const std::size_t n = count.size();
  for (auto c : count)
    if (c == 0) return;
  std::vector<hsize_t> first(n), last(n);
  for (std::size_t d = 0; d < n; ++d) {
    first[d] = start[d] / index.chunk[d];
    last[d] = (start[d] + count[d] - 1) / index.chunk[d];
  }
  std::vector<hsize_t> c = first, origin(n);
  while (true) {
    std::uint64_t linear = 0;
    for (std::size_t d = 0; d < n; ++d) {
      linear = linear * index.grid[d] + c[d];
      origin[d] = c[d] * index.chunk[d];
    }
    fn(linear, origin);
    std::size_t d = n;
    while (d > 0 && c[d - 1] == last[d - 1]) {
      c[d - 1] = first[d - 1];
      --d;
    }
    if (d == 0) return;
    ++c[d - 1];
  }
}

std::uint64_t row_major_offset(const std::vector<hsize_t>& at, const std::vector<hsize_t>& origin,
                               const std::vector<hsize_t>& extent) {
  std::uint64_t off = 0;
  for (std::size_t d = 0; d < extent.size(); ++d) off = off * extent[d] + (at[d] - origin[d]);
  return off;
}

}  // namespace

std::uint32_t fletcher32(const void* data, std::size_t bytes) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  // HDF5 adds each word to sum1 and then sum1 to sum2. Over a block of n words from sums (s1, s2) that is
  // s1 += Σ w_j, s2 += n s1 + Σ (n - j) w_j: the same sums modulo 65535, one block at a time.
  std::uint64_t s1 = 0, s2 = 0;
  std::size_t words = bytes / 2;
  while (words > 0) {
    const std::size_t n = std::min(words, kBlockWords);
    std::uint32_t a = 0, b = 0;
    if (n == kBlockWords) block_sums(p, &a, &b);
    else tail_sums(p, n, a, b);
    s2 = (s2 + n * s1 + b) % kMod;
    s1 = (s1 + a) % kMod;
    p += 2 * n;
    words -= n;
  }
  if (bytes % 2 != 0) {
    s1 = (s1 + (std::uint32_t{*p} << 8)) % kMod;
    s2 = (s2 + s1) % kMod;
  }
  return static_cast<std::uint32_t>(s2 << 16 | s1);
}

bool fletcher32_matches(std::uint32_t computed, std::uint32_t stored) {
  return (computed & 0xffffu) % kMod == (stored & 0xffffu) % kMod && (computed >> 16) % kMod == (stored >> 16) % kMod;
}

std::optional<ChunkIndex> chunk_index(hid_t dataset, hid_t memory_type, std::int64_t element_bytes,
                                      std::uint64_t base) {
  h5::Handle dcpl(h5::check_id(H5Dget_create_plist(dataset), "H5Dget_create_plist"), h5::Handle::Kind::kPlist);
  if (H5Pget_layout(dcpl.id()) != H5D_CHUNKED) return std::nullopt;
  if (h5::check(H5Pget_nfilters(dcpl.id()), "H5Pget_nfilters") != 1) return std::nullopt;
  unsigned flags = 0;
  std::size_t nelem = 0;
  if (H5Pget_filter2(dcpl.id(), 0, &flags, &nelem, nullptr, 0, nullptr, nullptr) != H5Z_FILTER_FLETCHER32)
    return std::nullopt;
  h5::Handle type(h5::check_id(H5Dget_type(dataset), "H5Dget_type"), h5::Handle::Kind::kDatatype);
  if (H5Tequal(type.id(), memory_type) <= 0) return std::nullopt;

  ChunkIndex index;
  h5::Handle space(h5::check_id(H5Dget_space(dataset), "H5Dget_space"), h5::Handle::Kind::kDataspace);
  index.shape = h5::extent(space);
  const std::size_t n = index.shape.size();
  if (n == 0) return std::nullopt;
  index.chunk.resize(n);
  h5::check(H5Pget_chunk(dcpl.id(), static_cast<int>(n), index.chunk.data()), "H5Pget_chunk");
  index.data_bytes = static_cast<std::uint64_t>(element_bytes);
  std::uint64_t chunks = 1;
  for (std::size_t d = 0; d < n; ++d) {
    index.grid.push_back((index.shape[d] + index.chunk[d] - 1) / index.chunk[d]);
    chunks *= index.grid.back();
    index.data_bytes *= index.chunk[d];
  }
  // Every chunk must exist with the filter applied at full size (edge chunks included: filtered chunks are).
  index.file_offset.reserve(chunks);
  bool complete = true;
  const std::vector<hsize_t> zero(n, 0);
  for_each_chunk(index, zero, index.shape, [&](std::uint64_t, const std::vector<hsize_t>& origin) {
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    h5::check(H5Dget_chunk_info_by_coord(dataset, origin.data(), &mask, &addr, &size), "H5Dget_chunk_info_by_coord");
    complete = complete && mask == 0 && size == index.data_bytes + 4 && addr != HADDR_UNDEF;
    index.file_offset.push_back(base + static_cast<std::uint64_t>(addr));
  });
  if (!complete) return std::nullopt;
  return index;
}

std::uint64_t base_address(hid_t file) {
  h5::Handle fcpl(h5::check_id(H5Fget_create_plist(file), "H5Fget_create_plist"), h5::Handle::Kind::kPlist);
  hsize_t userblock = 0;
  h5::check(H5Pget_userblock(fcpl.id(), &userblock), "H5Pget_userblock");
  return userblock;
}

ChunkFile::ChunkFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw IoError("cannot open checkpoint '" + path + "': " + errno_text());
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const std::string why = errno_text();
    ::close(fd_);
    throw IoError("cannot stat checkpoint '" + path + "': " + why);
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);  // a hint: larger read-ahead
}

ChunkFile::~ChunkFile() {
  if (fd_ >= 0) ::close(fd_);
}

void ChunkFile::read(const ChunkIndex& index, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count,
                     std::int64_t element_bytes, void* dest, const std::string& tensor) const {
  const std::size_t n = count.size();
  const auto elem = static_cast<std::uint64_t>(element_bytes);
  auto* out = static_cast<char*>(dest);
  std::vector<char> staging;
  const std::string what = "tensor '" + tensor + "' is corrupt or unreadable: ";
  auto read_at = [&](char* buf, std::uint64_t bytes, std::uint64_t at) {
    while (bytes > 0) {
      const ssize_t got = ::pread(fd_, buf, bytes, static_cast<off_t>(at));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw IoError(what + "read of '" + path_ + "' failed: " + errno_text());
      if (got == 0) throw IoError(what + "unexpected end of '" + path_ + "' (truncated file)");
      buf += got;
      at += static_cast<std::uint64_t>(got);
      bytes -= static_cast<std::uint64_t>(got);
    }
  };
  for_each_chunk(index, start, count, [&](std::uint64_t linear, const std::vector<hsize_t>& origin) {
    const std::uint64_t at = index.file_offset[linear];
    if (at + index.data_bytes + 4 > size_)
      throw IoError(what + "its chunk at byte " + std::to_string(at) + " ends past the end of '" + path_ + "' (" +
                    std::to_string(size_) + " bytes: truncated file)");
    // Rows of whole destination rows that lie inside the hyperslab go straight to `dest`.
    std::vector<hsize_t> lo(n), hi(n);
    bool direct = true;
    for (std::size_t d = 0; d < n; ++d) {
      lo[d] = std::max(origin[d], start[d]);
      hi[d] = std::min(origin[d] + index.chunk[d], start[d] + count[d]);
      if (lo[d] != origin[d] || hi[d] != origin[d] + index.chunk[d] || (d > 0 && index.chunk[d] != count[d]))
        direct = false;
    }
    char* data = nullptr;
    std::uint32_t stored = 0;
    if (direct) {
      data = out + row_major_offset(origin, start, count) * elem;
      read_at(data, index.data_bytes, at);
      read_at(reinterpret_cast<char*>(&stored), 4, at + index.data_bytes);
    } else {
      staging.resize(index.data_bytes + 4);
      data = staging.data();
      read_at(data, index.data_bytes + 4, at);
      std::memcpy(&stored, data + index.data_bytes, 4);
    }
    if (!fletcher32_matches(fletcher32(data, index.data_bytes), stored)) {
      std::string where;
      for (auto o : origin) where += (where.empty() ? "" : ", ") + std::to_string(o);
      throw IoError(what + "data error detected by Fletcher32 checksum (chunk at [" + where + "], byte " +
                    std::to_string(at) + " of the file)");
    }
    if (direct) return;
    // Copy the part of the chunk inside the hyperslab, one run of the last dimension at a time.
    const std::uint64_t run = (hi[n - 1] - lo[n - 1]) * elem;
    std::vector<hsize_t> q = lo;
    while (true) {
      std::memcpy(out + row_major_offset(q, start, count) * elem,
                  data + row_major_offset(q, origin, index.chunk) * elem, run);
      std::size_t d = n - 1;
      while (d > 0 && q[d - 1] + 1 == hi[d - 1]) {
        q[d - 1] = lo[d - 1];
        --d;
      }
      if (d == 0) return;
      ++q[d - 1];
    }
  });
}

}  // namespace unlearn::detail
