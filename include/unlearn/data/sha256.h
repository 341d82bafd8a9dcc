// SHA-256 (FIPS 180-4) for provenance: corpus sources, tokenizer files and dataset identities.
// data layer; no LibTorch, no external crypto library (only integrity, not secrecy, depends on it).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace unlearn {

class Sha256 {
 public:
  Sha256();
  Sha256& update(std::string_view bytes);
  std::array<std::uint8_t, 32> digest();  // finalises; call once
  std::string hex_digest();               // 64 lowercase hex digits; finalises

 private:
  void block(const std::uint8_t* p);
  std::array<std::uint32_t, 8> h_;
  std::array<std::uint8_t, 64> buf_{};
  std::size_t buf_len_ = 0;
  std::uint64_t total_ = 0;
};

std::string sha256_hex(std::string_view bytes);
/// SHA-256 of a file's bytes; IoError when it cannot be read.
std::string sha256_file_hex(const std::string& path);

}  // namespace unlearn
