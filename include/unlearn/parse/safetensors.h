// The safetensors container (Hugging Face): an 8-byte little-endian header length, a JSON header of tensor entries
// {dtype, shape, data_offsets}, then the data. Decoding and encoding of headers and of the sharded
// `model.safetensors.index.json`; every malformed input is an IoError. parse layer: no LibTorch.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace unlearn {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;                 // F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL ...
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0, end = 0;  // byte range relative to the data section
};

struct SafetensorsHeader {
  std::uint64_t data_offset = 0;     // 8 + header length: where the data section starts in the file
  std::vector<SafetensorsEntry> tensors;  // sorted by begin
  std::map<std::string, std::string> metadata;  // "__metadata__"
  const SafetensorsEntry* find(std::string_view name) const;
};

/// Bytes per element of a safetensors dtype; IoError for an unknown one.
std::uint64_t safetensors_dtype_size(std::string_view dtype, std::string_view what);

/// Largest header accepted (the format's reference implementation uses the same 100 MB limit).
inline constexpr std::uint64_t kSafetensorsMaxHeader = 100'000'000;

/// Header length from the first 8 bytes of a file of `file_size` bytes; IoError if it cannot fit.
std::uint64_t safetensors_header_length(std::string_view first8, std::uint64_t file_size, std::string_view what);

/// Decodes the JSON header (`json` = the header bytes) of a file of `file_size` bytes. Checks: entries are objects
/// with a known dtype, a shape of non-negative integers and offsets [begin, end] with end - begin = elements * size;
/// no two entries overlap; every entry lies inside the file; the data section has no gaps.
SafetensorsHeader parse_safetensors_header(std::string_view json, std::uint64_t file_size, std::string_view what);

/// The complete header block for `entries` (offsets assigned in order, contiguously): 8-byte length, JSON padded with
/// spaces to a multiple of 8. Entries get their begin/end filled in.
std::string encode_safetensors_header(std::vector<SafetensorsEntry>& entries,
                                      const std::map<std::string, std::string>& metadata);

/// `model.safetensors.index.json`: tensor name -> shard file name (a plain file name, no directories).
std::map<std::string, std::string> parse_safetensors_index(std::string_view json, std::string_view what);

}  // namespace unlearn
