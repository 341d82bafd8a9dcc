// unlearn: thin entry point; everything lives in the app library.
#include <malloc.h>

#include <cstdlib>

#include "unlearn/app/cli.h"

namespace {

/// glibc hands freed memory back to the kernel eagerly (heap trimmed above 128 KiB free, large blocks mmapped and
/// unmapped), and every curvature product allocates and frees hundreds of 0.25-32 MiB temporaries, which are then
/// page-faulted in again. Keeping them mapped cut a CG iteration on the demo model from 2.79 to 2.06 s at the same
/// peak RSS (docs/benchmarks.md, "Allocator"). A user's own MALLOC_* environment settings win, and
/// UNLEARN_MALLOC_DEFAULTS=1 keeps glibc's defaults (for comparison).
void keep_freed_memory_mapped() {
  for (const char* v : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "UNLEARN_MALLOC_DEFAULTS"})
    if (std::getenv(v)) return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest: blocks below it come from the heap and are reused
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 256 << 20);
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory_mapped();
  return unlearn::unlearn_main(argc, argv);
}
