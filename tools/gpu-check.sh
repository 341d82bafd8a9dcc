#!/usr/bin/env bash
# GPU checks, run on a machine with an NVIDIA GPU, CUDA's toolkit and a CUDA PyTorch in `python3` but none of
# Open MPI, parallel HDF5, Boost or GoogleTest and no network (this workplace's device machine). It installs
# Debian 12's packages from .gpu-deps/ (tools/gpu-deps.sh), builds unlearn against PyTorch's LibTorch and NCCL,
# runs the GPU tests (NCCL conformance; model and solver on the GPU against the CPU at 1 and 2 ranks), the
# CPU layout tests under this LibTorch, and `unlearn bench model --device cuda`.
# Usage: tools/gpu-check.sh [RESULTS_DIR]   (default $OUT, else ./gpu-check-out)
set -uo pipefail
cd "$(dirname "$0")/.."
results=${1:-${OUT:-$PWD/gpu-check-out}}
mkdir -p "$results"
exec > >(tee "$results/gpu-check.log") 2>&1
step() { echo "== [$(date +%T)] $*"; }
t_start=$(date +%s)

step "machine"
nvidia-smi -L; nvcc --version | tail -2; g++ --version | head -1; cmake --version | head -1; nproc
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'

step "Debian packages from .gpu-deps"
[[ -d .gpu-deps/system ]] || { echo "no .gpu-deps/: run tools/gpu-deps.sh here and carry .gpu-deps"; exit 2; }
sysroot=/tmp/gpu-deps-system prefix=/opt/gpu-deps
rm -rf "$sysroot" && mkdir -p "$sysroot" "$prefix"
for d in .gpu-deps/system/*.deb; do dpkg-deb -x "$d" "$sysroot"; done
for d in .gpu-deps/prefix/*.deb; do dpkg-deb -x "$d" "$prefix"; done
# A merged-/usr image has /lib as a link: move Debian's /lib files under usr/ first. Nothing the image has is
# replaced (cp -n): Open MPI and HDF5 hard-code their /usr paths, so they go into the system itself.
for d in lib lib64 bin sbin; do
  if [[ -d $sysroot/$d && -L /$d ]]; then cp -an "$sysroot/$d/." "$sysroot/usr/$d/" && rm -rf "${sysroot:?}/$d"; fi
done
cp -an "$sysroot/." / 2>&1 | grep -v -e "behavior of -n" -e "dangling symlink" || true  # docs links only
for tool in mpicc mpicxx mpiexec mpirun; do [[ -e /usr/bin/$tool ]] || ln -s "$tool.openmpi" "/usr/bin/$tool"; done
[[ -e /usr/bin/h5pcc ]] || ln -s h5pcc.openmpi /usr/bin/h5pcc
echo "$prefix/usr/lib/x86_64-linux-gnu" > /etc/ld.so.conf.d/gpu-deps.conf
ldconfig
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mca_base_component_show_load_errors=0
mpiexec.openmpi --version | head -1
mpiexec.openmpi -n 2 --oversubscribe hostname || { echo "Open MPI does not start"; exit 3; }

step "configure against PyTorch's LibTorch"
torch_cmake=$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
nccl_dir=$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2> /dev/null || true)
nccl_h=$(find "$nccl_dir" /usr/local/cuda/ /usr/include -name nccl.h 2> /dev/null | head -1)
nccl_so=$(find "$nccl_dir" /usr/local/cuda/ /usr/lib -name 'libnccl.so*' 2> /dev/null | head -1)
echo "LibTorch: $torch_cmake; nccl.h: $nccl_h; libnccl: $nccl_so"
export TORCH_CUDA_ARCH_LIST=9.0
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_cmake;$prefix/usr" \
  -DMPI_C_COMPILER=mpicc.openmpi -DMPI_CXX_COMPILER=mpicxx.openmpi -DMPIEXEC_EXECUTABLE=/usr/bin/mpiexec.openmpi \
  -DHDF5_C_COMPILER_EXECUTABLE=/usr/bin/h5pcc.openmpi -DCUDAToolkit_ROOT=/usr/local/cuda \
  -DNCCL_INCLUDE_DIR="$(dirname "$nccl_h")" -DNCCL_LIBRARY="$nccl_so" -DUNLEARN_ENABLE_NCCL=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 2>&1 | tail -40
[[ -f build-gpu/build.ninja ]] || { echo "configure failed"; cp build-gpu/CMakeFiles/CMakeError.log "$results/" 2>/dev/null; exit 4; }

step "build (keeps going past errors: every failing file is in the log)"
targets=(unlearn test_cuda_model test_nccl test_model_tp test_solver_tp)
cmake --build build-gpu -j "$(nproc)" --target "${targets[@]}" -- -k 0 > "$results/build.log" 2>&1
rc=$?
grep -E "error|FAILED" "$results/build.log" | head -60
echo "build rc $rc after $(($(date +%s) - t_start)) s"

step "tests: GPU (NCCL, model and solver on cuda at 1 and 2 ranks), CPU layouts at 1-2 ranks under this LibTorch"
ctest --test-dir build-gpu -R "nccl_np1|cuda_model_np|model_tp_np[12]|solver_tp_np[12]" --output-on-failure \
  --timeout 300 2>&1 | tee "$results/ctest.log" | tail -60

step "bench model on the GPU (float32; the 30m model on a larger batch; float64), then on this machine's CPU"
bin=build-gpu/src/app/unlearn
if [[ -x $bin ]]; then
  timeout 240 "$bin" bench model --device cuda --sizes tiny,5m,30m \
    --metrics "$results/bench-cuda.jsonl" 2>&1 | tail -30
  timeout 120 "$bin" bench model --device cuda --sizes 30m --batch-shape 32x512 --reps 5 \
    --metrics "$results/bench-cuda-32x512.jsonl" 2>&1 | tail -12
  timeout 120 "$bin" bench model --device cuda --sizes 30m --dtype float64 \
    --metrics "$results/bench-cuda-f64.jsonl" 2>&1 | tail -12
  # The same presets on the host's cores, for the GPU / CPU ratio on one machine.
  timeout 150 "$bin" bench model --sizes 5m,30m --threads "$(nproc)" \
    --metrics "$results/bench-cpu.jsonl" 2>&1 | tail -12
fi
step "done after $(($(date +%s) - t_start)) s"
