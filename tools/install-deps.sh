#!/usr/bin/env bash
# Installs every Debian package unlearn and its tests need; skips what is present, names what fails.
# Idempotent. Run as root (or with sudo available). Used by tools/demo.sh and tools/test.sh.
set -euo pipefail

packages=(
  # build
  cmake ninja-build ccache g++ pkg-config git ca-certificates
  clang-14 libclang-rt-14-dev
  # libraries
  libtorch-dev libopenblas0-openmp
  libopenmpi-dev openmpi-bin
  libhdf5-openmpi-dev hdf5-tools
  libboost-program-options-dev libboost-math-dev zlib1g-dev
  libgtest-dev
  # oracles and charts
  python3 python3-torch python3-h5py python3-numpy python3-scipy python3-matplotlib
  # cluster
  slurm-wlm slurmctld slurmd slurm-client munge
  # node (npm added below only when missing)
  nodejs
  # real text for the data tests (56 KB)
  fortunes-min
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: not root and no sudo" >&2; exit 1; }
  SUDO=sudo
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The machine's Node.js (nodesource) ships npm and conflicts with Debian's npm package.
command -v npm >/dev/null || missing+=(npm)

# LibTorch calls BLAS through libblas.so.3 and parallelises with OpenMP, so the BLAS must be OpenBLAS's OpenMP
# flavour (Debian's reference BLAS is ~10x slower). python3-scipy pulls in the pthread flavour too, whose
# higher alternatives priority would win on a fresh machine (found by tools/check-fresh.sh): select OpenMP's.
select_openblas_openmp() {
  local lib target
  for lib in libblas.so.3 liblapack.so.3; do
    target=/usr/lib/x86_64-linux-gnu/openblas-openmp/$lib
    [ -e "$target" ] || continue
    if [ "$(readlink -f "/usr/lib/x86_64-linux-gnu/$lib")" != "$(readlink -f "$target")" ]; then
      $SUDO update-alternatives --quiet --set "$lib-x86_64-linux-gnu" "$target"
      echo "install-deps: $lib -> OpenBLAS (OpenMP flavour)"
    fi
  done
}

install_missing() {
  echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Daemons (slurm, munge) must not start at install time; tests start private instances.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get update -qq || echo "install-deps: apt-get update failed; trying the cached lists" >&2
  if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
    # Find the culprit one by one so the message names it.
    local p
    for p in "${missing[@]}"; do
      $SUDO apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 \
        || { echo "install-deps: FAILED to install Debian package '$p'" >&2; exit 1; }
    done
  fi
  echo "install-deps: done"
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  install_missing
fi
select_openblas_openmp
