// Parsing of user-supplied sizes and lists ("256M", "1,2,4"). parse layer: no LibTorch.
#pragma once

#include <cstdint>
#include <string_view>
#include <string>
#include <vector>

namespace unlearn {

/// "4096", "4K", "64KiB", "256M", "1G" (powers of 1024; a trailing "B"/"iB" is allowed). Throws ConfigError on
/// anything else, on zero-length input, and on overflow. `what` names the option in the message.
std::uint64_t parse_byte_size(std::string_view text, std::string_view what);

/// Human form of a byte count: 4 KiB, 256 MiB, 1.5 GiB.
std::string format_bytes(std::uint64_t bytes);

/// "1,2,4" -> {1, 2, 4}. Positive integers only; throws ConfigError naming `what`.
std::vector<int> parse_int_list(std::string_view text, std::string_view what);

}  // namespace unlearn
