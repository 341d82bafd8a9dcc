// Deterministic random numbers for data preparation (splits, canaries): SplitMix64 with unbiased bounded draws.
// std::shuffle and std::uniform_int_distribution are implementation-defined, so datasets would differ between
// standard libraries; this generator gives the same dataset for a seed everywhere. data layer.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace unlearn {

class DataRng {
 public:
  /// `stream` separates independent uses of one seed (splits, canary secrets, insertion sites).
  explicit DataRng(std::uint64_t seed, std::uint64_t stream = 0) : state_(seed ^ (stream * 0xD1B54A32D192ED03ull)) {}
  std::uint64_t next() {  // SplitMix64 (Steele, Lea, Flood 2014)
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n), n > 0, by rejection (no modulo bias).
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % n);
    std::uint64_t x;
    do x = next();
    while (x >= limit);
    return x % n;
  }
  /// Fisher-Yates.
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[static_cast<std::size_t>(below(i))]);
  }

 private:
  std::uint64_t state_;
};

}  // namespace unlearn
