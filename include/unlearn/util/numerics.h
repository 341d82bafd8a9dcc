// What decides the rounding of this process's matrix products besides its inputs: the BLAS library and the kernel
// set it chose, and the environment variables that steer it. Recorded in every output: bit-identity holds per seed,
// rank layout and kernel set (docs/training.md).
#pragma once

#include <string>

namespace unlearn {

/// One line, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ... (core Haswell) at /usr/lib/.../libblas.so.3;
/// OPENBLAS_CORETYPE=Haswell; CPU <model name>". Computed once per process.
const std::string& numerics_description();

}  // namespace unlearn
