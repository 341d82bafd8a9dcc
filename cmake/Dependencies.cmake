# Every external package, found once. Fails with the Debian package to install.

find_package(Torch REQUIRED)   # Debian: libtorch-dev ships TorchConfig.cmake
# TORCH_LIBRARIES carries the imported `torch` target; Debian's flags only set the C++11 ABI.
separate_arguments(_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
add_library(unlearn_torch INTERFACE)
target_link_libraries(unlearn_torch INTERFACE ${TORCH_LIBRARIES})
target_compile_options(unlearn_torch INTERFACE ${_torch_flags})

# Open MPI's deprecated C++ bindings break linking (MPI::Comm::Comm undefined): skip them.
set(MPI_CXX_SKIP_MPICXX ON)
find_package(MPI REQUIRED COMPONENTS C CXX)

# The Fortran BLAS that Debian's LibTorch links (libblas.so.3, OpenBLAS by alternatives): attention's batched
# products call it directly (src/model/attention_kernels.cpp). Without one they fall back to at::matmul.
find_library(UNLEARN_BLAS_LIBRARY NAMES blas libblas.so.3)
add_library(unlearn_blas INTERFACE)
if(UNLEARN_BLAS_LIBRARY)
  target_link_libraries(unlearn_blas INTERFACE ${UNLEARN_BLAS_LIBRARY})
  target_compile_definitions(unlearn_blas INTERFACE UNLEARN_HAVE_BLAS=1)
else()
  message(STATUS "No BLAS library found: attention's batched products use at::matmul")
endif()

# ATen's at::parallel_for is a header template: its `#pragma omp parallel` runs threads only in code compiled with
# OpenMP, so the model's kernels (attention_kernels.cpp, layer_norm.cpp) need -fopenmp to use more than one thread.
# LibTorch's runtime is GCC's libgomp, so only GCC builds turn it on (clang's libomp would be a second runtime in the
# process); elsewhere the kernels run serially, with the same results (each row or matrix is one thread's work).
add_library(unlearn_openmp INTERFACE)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  find_package(OpenMP COMPONENTS CXX)
endif()
if(OpenMP_CXX_FOUND)
  target_link_libraries(unlearn_openmp INTERFACE OpenMP::OpenMP_CXX)
else()
  message(STATUS "No OpenMP for ${CMAKE_CXX_COMPILER_ID}: the model's own kernels run on one thread")
endif()

# Without the hint FindHDF5 picks Debian's serial h5cc.
set(HDF5_PREFER_PARALLEL TRUE)
find_package(HDF5 REQUIRED COMPONENTS C)
if(NOT HDF5_IS_PARALLEL)
  message(FATAL_ERROR "Parallel HDF5 not found (found serial HDF5 at ${HDF5_INCLUDE_DIRS}). "
                      "Install it: apt-get install libhdf5-openmpi-dev")
endif()
add_library(unlearn_hdf5 INTERFACE)   # no HDF5 target exists on the compiler-wrapper path
target_include_directories(unlearn_hdf5 SYSTEM INTERFACE ${HDF5_INCLUDE_DIRS})
target_compile_definitions(unlearn_hdf5 INTERFACE ${HDF5_DEFINITIONS})
target_link_libraries(unlearn_hdf5 INTERFACE ${HDF5_C_LIBRARIES} MPI::MPI_C)

find_package(Boost 1.74 REQUIRED COMPONENTS program_options)

if(UNLEARN_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()

# NCCL backend: ON by default when the CUDA runtime and NCCL are found. It works on raw device pointers, so it
# compiles against Debian's CPU-only LibTorch.
if(NOT DEFINED CUDAToolkit_ROOT AND EXISTS /usr/local/cuda)
  set(CUDAToolkit_ROOT /usr/local/cuda)
endif()
find_package(CUDAToolkit QUIET)
find_package(NCCL QUIET)
if(CUDAToolkit_FOUND AND NCCL_FOUND)
  set(_nccl_default ON)
else()
  set(_nccl_default OFF)
endif()
option(UNLEARN_ENABLE_NCCL "Build the NCCL communicator backend" ${_nccl_default})
if(UNLEARN_ENABLE_NCCL AND NOT (CUDAToolkit_FOUND AND NCCL_FOUND))
  message(FATAL_ERROR "UNLEARN_ENABLE_NCCL=ON but CUDA (${CUDAToolkit_FOUND}) or NCCL (${NCCL_FOUND}) was not found; "
                      "set NCCL_HOME or CUDAToolkit_ROOT")
endif()
