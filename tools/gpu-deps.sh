#!/usr/bin/env bash
# Fetches the Debian 12 packages that tools/gpu-check.sh needs on a GPU machine whose image has CUDA and a CUDA
# PyTorch but no Open MPI, parallel HDF5, Boost or GoogleTest, and no network (the device machine): the packages
# and the shared libraries they load, minus what any glibc-based image has. Into .gpu-deps/ (git-ignored),
# which travels with the run (carry .gpu-deps). Idempotent: packages already fetched are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.gpu-deps
mkdir -p "$dest"
# Open MPI, parallel HDF5 and their link-time libraries (h5pcc links -lcrypto -lcurl -lsz -lz), with the closure of
# their runtime libraries as `ldd` sees it on Debian 12 (computed once; glibc, libstdc++, zlib, OpenSSL left out).
system_packages=(
  openmpi-bin openmpi-common libopenmpi3 libopenmpi-dev libpmix2 libhdf5-openmpi-103-1 libhdf5-openmpi-dev
  libssl-dev libcurl4-openssl-dev libcurl4 libaec-dev libaec0 libsz2 zlib1g-dev
  ibverbs-providers libatomic1 libbrotli1 libcom-err2 libevent-core-2.1-7 libevent-pthreads-2.1-7 libfabric1
  libgmp10 libgnutls30 libgssapi-krb5-2 libhogweed6 libhwloc15 libibverbs1 libidn2-0 libk5crypto3 libkeyutils1
  libkrb5-3 libkrb5support0 libldap-2.5-0 libmunge2 libnettle8 libnghttp2-14 libnl-3-200 libnl-route-3-200
  libnuma1 libp11-kit0 libpsl5 libpsm-infinipath1 libpsm2-2 librdmacm1 librtmp1 libsasl2-2 libssh2-1
  libtasn1-6 libucx0 libunistring2 libuuid1
)
# Header-and-library packages whose CMake configs are relocatable: unpacked beside the system, not into it.
prefix_packages=(libboost1.74-dev libboost-program-options1.74-dev libboost-program-options1.74.0 libgtest-dev)
mkdir -p "$dest/system" "$dest/prefix"
fetch() {
  local dir=$1
  shift
  local missing=()
  for p in "$@"; do compgen -G "$dir/${p}_*.deb" > /dev/null || missing+=("$p"); done
  if ((${#missing[@]})); then (cd "$dir" && apt-get download "${missing[@]}"); fi
}
fetch "$dest/system" "${system_packages[@]}"
fetch "$dest/prefix" "${prefix_packages[@]}"
echo "gpu-deps: $(ls "$dest"/*/*.deb | wc -l) packages, $(du -sh "$dest" | cut -f1) in $dest"
