// Process identity and the check-failure path shared by all check macros.
#include "unlearn/util/error.h"

#include <unistd.h>

namespace unlearn {
namespace {
int g_rank = -1;
std::string& host_storage() {
  static std::string host = [] {
    char buf[256] = {};
    if (gethostname(buf, sizeof(buf) - 1) != 0) return std::string("unknown-host");
    return std::string(buf);
  }();
  return host;
}
}  // namespace

void set_process_identity(int world_rank, const std::string& host) {
  g_rank = world_rank;
  host_storage() = host;
}
int process_rank() { return g_rank; }
const std::string& process_host() { return host_storage(); }

std::string process_tag() {
  std::ostringstream os;
  os << "[r";
  if (g_rank >= 0) {
    os << g_rank;
  } else {
    os << '?';
  }
  os << '/' << host_storage() << ']';
  return os.str();
}

namespace detail {
void throw_check_failure(const char* kind, const char* file, int line, const char* expr,
                         const std::string& message) {
  std::ostringstream os;
  os << message << " (" << kind << " '" << expr << "' failed at " << file << ':' << line << ' '
     << process_tag() << ')';
  throw Error(os.str());
}
}  // namespace detail

}  // namespace unlearn
