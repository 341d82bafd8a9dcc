// Fuzz target: a whole safetensors file as `unlearn convert` reads it (8-byte length, JSON header, data section),
// and the same bytes as a shard index (model.safetensors.index.json). Invariants: an accepted header describes
// in-file, non-overlapping, gap-free tensors whose byte counts match dtype x shape, and re-encoding its entries
// (encode_safetensors_header, used by export) gives a header that decodes to the same entries.
#include <string>

#include "fuzz_common.h"
#include "unlearn/parse/safetensors.h"

using namespace unlearn;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view file = fuzz::bytes(data, size);
  fuzz::accepts([&] { parse_safetensors_index(file, "index"); });

  std::uint64_t n = 0;
  if (!fuzz::accepts([&] { n = safetensors_header_length(file.substr(0, 8), file.size(), "file"); })) return 0;
  FUZZ_ASSERT(n > 0 && n <= file.size() - 8);
  SafetensorsHeader h;
  if (!fuzz::accepts([&] { h = parse_safetensors_header(file.substr(8, n), file.size(), "file"); })) return 0;

  FUZZ_ASSERT(h.data_offset == 8 + n);
  const std::uint64_t data_size = file.size() - h.data_offset;
  std::uint64_t pos = 0;
  for (const auto& e : h.tensors) {
    FUZZ_ASSERT(e.begin == pos && e.begin <= e.end && e.end <= data_size);
    std::uint64_t bytes = safetensors_dtype_size(e.dtype, "dtype");
    for (auto d : e.shape) bytes *= d;  // cannot overflow: the parser checked
    FUZZ_ASSERT(e.end - e.begin == bytes);
    FUZZ_ASSERT(h.find(e.name) != nullptr);
    pos = e.end;
  }
  FUZZ_ASSERT(pos == data_size);

  // Round trip through the encoder: same names, dtypes, shapes and offsets (the encoder lays tensors out in the
  // given order, which is the decoder's offset order), same metadata.
  std::vector<SafetensorsEntry> entries = h.tensors;
  const std::string block = encode_safetensors_header(entries, h.metadata);
  const std::uint64_t m = safetensors_header_length(block.substr(0, 8), block.size() + data_size, "re-encoded");
  const SafetensorsHeader back = parse_safetensors_header(std::string_view(block).substr(8, m),
                                                          block.size() + data_size, "re-encoded");
  FUZZ_ASSERT(back.tensors.size() == h.tensors.size() && back.metadata == h.metadata);
  for (std::size_t i = 0; i < h.tensors.size(); ++i) {
    const auto &a = h.tensors[i], &b = back.tensors[i];
    // Empty tensors share an offset, so their order among themselves may change; compare through find().
    const SafetensorsEntry* same = back.find(a.name);
    FUZZ_ASSERT(same && same->dtype == a.dtype && same->shape == a.shape && same->begin == a.begin &&
                same->end == a.end);
    FUZZ_ASSERT(b.begin == a.begin && b.end == a.end);
  }
  return 0;
}
