// Token windows and a tiny float64 GPT-2 for the training tests.
#pragma once

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <vector>

#include "unlearn/model/batching.h"

namespace unlearn::testing {

/// `n` windows of 3 .. max_len tokens from a small repetitive language over `vocab` ids: each window repeats a
/// seeded pattern, so a model can learn it and the loss falls.
inline std::vector<TokenRow> pattern_windows(std::uint64_t seed, int n, int max_len, std::int64_t vocab) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<TokenRow> out;
  for (int i = 0; i < n; ++i) {
    const auto len = at::randint(3, max_len + 1, {1}, gen, at::TensorOptions().dtype(at::kLong)).item<std::int64_t>();
    const auto start = at::randint(vocab, {1}, gen, at::TensorOptions().dtype(at::kLong)).item<std::int64_t>();
    TokenRow w;
    for (std::int64_t t = 0; t < len; ++t) w.push_back((start + 3 * t) % vocab);
    out.push_back(w);
  }
  return out;
}

}  // namespace unlearn::testing
