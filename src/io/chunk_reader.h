// Direct reads of Fletcher32 chunks: HDF5 finds the chunks (collective metadata reads), each rank preads the ones
// its hyperslab needs and verifies their checksums itself, skipping HDF5's filter pipeline (a byte-at-a-time
// checksum and an extra copy: docs/benchmarks.md "Checkpoints"). io layer, private to src/io.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

// Checksum loops (Fletcher32 here, the content digest in tensor_file.cpp) get an AVX2 clone, chosen at load time
// where the CPU has it, vectorised at -O3: 1.4-1.9x one thread on this machine's AMD EPYC.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define UNLEARN_CHECKSUM_CLONES __attribute__((target_clones("avx2", "default"), optimize("O3")))
#else
#define UNLEARN_CHECKSUM_CLONES
#endif

namespace unlearn::detail {

/// HDF5's Fletcher32 (H5Z_FILTER_FLETCHER32) of `bytes` bytes: big-endian 16-bit words, both sums modulo 65535, an
/// odd last byte taken as the high byte of a word. Returns (sum2 << 16) | sum1 with each sum in [0, 65534]; HDF5's
/// folding may leave 65535 for 0, so compare with fletcher32_matches.
std::uint32_t fletcher32(const void* data, std::size_t bytes);
/// True when `stored` (as HDF5 wrote it) and `computed` are the same checksum modulo 65535 in each half.
bool fletcher32_matches(std::uint32_t computed, std::uint32_t stored);

/// Where a dataset's chunks lie in the file, for a dataset the direct path can take: chunked, Fletcher32 its only
/// filter and applied to every chunk, every chunk written at full size, the file type equal to `memory_type` (no
/// conversion). Every rank must make the same calls (the chunk index is read with collective metadata reads).
struct ChunkIndex {
  std::vector<hsize_t> shape, chunk, grid;  // dataset extent, chunk extent, chunks per dimension
  std::vector<std::uint64_t> file_offset;   // of each chunk, row-major over grid
  std::uint64_t data_bytes = 0;             // one chunk's data; the 4 checksum bytes follow it
};
/// nullopt when the dataset does not qualify (the caller reads it through H5Dread). `base`: the file's base address.
std::optional<ChunkIndex> chunk_index(hid_t dataset, hid_t memory_type, std::int64_t element_bytes,
                                      std::uint64_t base);

/// The file opened once more, read-only, with POSIX I/O, for the chunk reads of one rank.
class ChunkFile {
 public:
  explicit ChunkFile(const std::string& path);  // throws IoError
  ~ChunkFile();
  ChunkFile(const ChunkFile&) = delete;
  ChunkFile& operator=(const ChunkFile&) = delete;

  /// Reads the hyperslab [start, start + count) into `dest` (row-major, `count`'s shape), chunk by chunk, verifying
  /// each chunk's checksum. Chunks whose rows are whole destination rows are read straight into `dest`, the others
  /// through one chunk-sized buffer. Throws IoError naming `tensor` on a checksum mismatch or a short read.
  void read(const ChunkIndex& index, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count,
            std::int64_t element_bytes, void* dest, const std::string& tensor) const;

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

/// Base address of an open file (its user block size): chunk addresses are relative to it.
std::uint64_t base_address(hid_t file);

}  // namespace unlearn::detail
