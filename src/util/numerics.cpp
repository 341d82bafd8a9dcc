// The BLAS in use is found at run time (dlsym of sgemm_ in the process's global scope, then dladdr), not from the
// build: Debian selects libblas.so.3 by alternatives, and OpenBLAS picks its kernels by CPU unless told otherwise.
#include "unlearn/util/numerics.h"

#include <dlfcn.h>

#include <cstdlib>
#include <fstream>

extern char** environ;

namespace unlearn {
namespace {

std::string blas_part() {
  void* gemm = dlsym(RTLD_DEFAULT, "sgemm_");
  if (!gemm) return "no Fortran BLAS loaded";
  Dl_info info{};
  std::string where = dladdr(gemm, &info) && info.dli_fname ? info.dli_fname : "an unknown library";
  if (char* real = realpath(where.c_str(), nullptr)) {
    where = real;
    std::free(real);
  }
  using Text = char* (*)();
  const auto config = reinterpret_cast<Text>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  const auto core = reinterpret_cast<Text>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (!config || !core) return "BLAS at " + where + " (not OpenBLAS)";
  return std::string(config()) + " (core " + core() + ") at " + where;
}

/// OPENBLAS_* settings (core type, cache sizes, threads) and OMP_NUM_THREADS, as set.
std::string environment_part() {
  std::string out;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv = *e;
    if (kv.rfind("OPENBLAS_", 0) == 0 || kv.rfind("OMP_NUM_THREADS=", 0) == 0) out += (out.empty() ? "" : " ") + kv;
  }
  return out.empty() ? "no OPENBLAS_* or OMP_NUM_THREADS set" : out;
}

std::string cpu_part() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return "CPU " + (colon == std::string::npos ? line : line.substr(line.find_first_not_of(' ', colon + 1)));
    }
  return "CPU unknown";
}

}  // namespace

const std::string& numerics_description() {
  static const std::string text = blas_part() + "; " + environment_part() + "; " + cpu_part();
  return text;
}

}  // namespace unlearn
