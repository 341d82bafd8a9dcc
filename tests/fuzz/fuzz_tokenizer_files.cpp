// Fuzz target: GPT-2 tokenizer files as `prepare-data --tokenizer gpt2-bpe` reads them. The input is
// encoder.json, a NUL byte, then vocab.bpe (no NUL: all of it is encoder.json, and vocab.bpe is empty). The same
// bytes also go through the pre-tokeniser, whose pieces must concatenate to the input exactly (every byte,
// invalid UTF-8 included, belongs to one piece). Invariants of an accepted vocabulary: dense ids, all 256 single
// bytes present, every merge's parts and result are tokens whose bytes concatenate.
#include <set>
#include <string>

#include "fuzz_common.h"
#include "unlearn/parse/tokenizer_files.h"
#include "unlearn/parse/unicode.h"

using namespace unlearn;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = fuzz::bytes(data, size);

  std::string joined;
  for (std::string_view piece : gpt2_pretokenize(in)) {
    FUZZ_ASSERT(!piece.empty());
    joined.append(piece);
  }
  FUZZ_ASSERT(joined == in);

  const std::size_t nul = in.find('\0');
  const std::string_view encoder = in.substr(0, nul);
  const std::string_view merges = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);
  BpeVocabulary v;
  if (!fuzz::accepts([&] { v = parse_gpt2_vocabulary(encoder, merges); })) return 0;
  FUZZ_ASSERT(v.tokens.size() >= 256);
  std::set<std::string> bytes(v.tokens.begin(), v.tokens.end());
  FUZZ_ASSERT(bytes.size() == v.tokens.size());  // no two ids share bytes
  for (int b = 0; b < 256; ++b) FUZZ_ASSERT(bytes.count(std::string(1, static_cast<char>(b))));
  const auto n = static_cast<std::int32_t>(v.tokens.size());
  for (const auto& m : v.merges) {
    FUZZ_ASSERT(m.left >= 0 && m.left < n && m.right >= 0 && m.right < n && m.result >= 0 && m.result < n);
    FUZZ_ASSERT(v.tokens[static_cast<std::size_t>(m.left)] + v.tokens[static_cast<std::size_t>(m.right)] ==
                v.tokens[static_cast<std::size_t>(m.result)]);
  }
  return 0;
}
