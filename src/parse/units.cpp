// Size and list parsing for command-line options.
#include "unlearn/parse/units.h"

#include <cctype>
#include <cstdio>
#include <limits>
#include <string>

#include "unlearn/util/error.h"

namespace unlearn {

std::uint64_t parse_byte_size(std::string_view text, std::string_view what) {
  std::size_t i = 0;
  std::uint64_t value = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    const std::uint64_t digit = static_cast<std::uint64_t>(text[i] - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10)
      UNLEARN_THROW(ConfigError, what << ": size '" << text << "' is too large");
    value = value * 10 + digit;
    ++i;
  }
  if (i == 0) UNLEARN_THROW(ConfigError, what << ": expected a size like 4096, 64K or 256M, got '" << text << "'");
  std::string_view suffix = text.substr(i);
  int shift = 0;
  if (!suffix.empty()) {
    switch (std::toupper(static_cast<unsigned char>(suffix[0]))) {
      case 'K': shift = 10; break;
      case 'M': shift = 20; break;
      case 'G': shift = 30; break;
      case 'T': shift = 40; break;
      case 'B': shift = -1; break;
      default: UNLEARN_THROW(ConfigError, what << ": unknown size suffix in '" << text << "' (use K, M, G or T)");
    }
    suffix.remove_prefix(1);
    if (shift < 0) {
      shift = 0;
      if (!suffix.empty()) UNLEARN_THROW(ConfigError, what << ": malformed size '" << text << "'");
    } else if (!(suffix.empty() || suffix == "B" || suffix == "iB" || suffix == "b")) {
      UNLEARN_THROW(ConfigError, what << ": malformed size '" << text << "'");
    }
  }
  if (shift > 0 && value > (std::numeric_limits<std::uint64_t>::max() >> shift))
    UNLEARN_THROW(ConfigError, what << ": size '" << text << "' is too large");
  return value << shift;
}

std::string format_bytes(std::uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  if (v == static_cast<double>(static_cast<std::uint64_t>(v))) {
    std::snprintf(buf, sizeof(buf), "%.0f %s", v, kUnits[u]);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f %s", v, kUnits[u]);
  }
  return buf;
}

std::vector<int> parse_int_list(std::string_view text, std::string_view what) {
  std::vector<int> out;
  std::size_t pos = 0;
  while (true) {
    const std::size_t comma = text.find(',', pos);
    const std::string_view item = text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    long long v = 0;
    if (item.empty() || item.size() > 9)
      UNLEARN_THROW(ConfigError, what << ": expected a comma-separated list of positive integers, got '" << text << "'");
    for (char c : item) {
      if (!std::isdigit(static_cast<unsigned char>(c)))
        UNLEARN_THROW(ConfigError, what << ": '" << item << "' is not a positive integer");
      v = v * 10 + (c - '0');
    }
    if (v <= 0) UNLEARN_THROW(ConfigError, what << ": '" << item << "' is not a positive integer");
    out.push_back(static_cast<int>(v));
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return out;
}

}  // namespace unlearn
