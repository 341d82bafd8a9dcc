// Provenance strings. Kept in its own small translation unit: the git revision arrives as a compile definition
// that changes with every commit, and only this file recompiles then.
#include "provenance.h"

#include <ctime>
#include <fstream>
#include <iterator>

#ifndef UNLEARN_GIT_REVISION
#define UNLEARN_GIT_REVISION "unknown"
#endif

namespace unlearn::detail {

std::string build_git_revision() { return UNLEARN_GIT_REVISION; }

std::string process_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string out, arg;
  auto flush = [&] {
    const bool quote = arg.empty() || arg.find_first_of(" \t\n'\"\\$") != std::string::npos;
    if (!out.empty()) out += ' ';
    if (!quote) {
      out += arg;
    } else {
      out += '\'';
      for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
    arg.clear();
  };
  for (char c : raw) {
    if (c == '\0') {
      flush();
    } else {
      arg += c;
    }
  }
  if (!arg.empty()) flush();
  // Attributes live in the object header (64 KiB per message): keep the record bounded.
  constexpr std::size_t kMax = 16384;
  if (out.size() > kMax) out = out.substr(0, kMax) + " ...";
  return out;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace unlearn::detail
