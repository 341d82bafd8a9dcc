// Shared by the fuzz targets. A target feeds its bytes to one of our decoders and lets only the errors the decoder
// documents (IoError, ConfigError) pass: any other exception, a crash, a sanitizer report or a broken invariant
// (FUZZ_ASSERT) is a finding. The same harnesses replay the committed corpus and regressions in every build
// (replay_main.cpp), so a fixed finding stays fixed without libFuzzer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "unlearn/util/error.h"

/// An invariant of the decoder under test; on failure print it and abort (libFuzzer saves the input).
#define FUZZ_ASSERT(cond)                                                                   \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "fuzz invariant violated: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

namespace unlearn::fuzz {

inline std::string_view bytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// Runs `body`; the decoders' documented rejections are expected outcomes, everything else propagates.
template <typename F>
bool accepts(F&& body) {
  try {
    body();
    return true;
  } catch (const IoError&) {
    return false;
  } catch (const ConfigError&) {
    return false;
  }
}

}  // namespace unlearn::fuzz
