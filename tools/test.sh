#!/usr/bin/env bash
# The README's second command: install what is missing, configure, build and run the whole test suite.
# Idempotent; CI (.ci/run) calls exactly this. Env: UNLEARN_BUILD_DIR (default build/), CTEST_ARGS (extra args).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${UNLEARN_BUILD_DIR:-$root/build}

"$root/tools/install-deps.sh"

# A fresh clone at a new path still hits the cache (the launcher sets these too; ccache reads them here as well).
export CCACHE_BASEDIR=$root CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-8G}
# Root runs mpiexec in CI containers.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

start=$(date +%s)
cmake -S "$root" -B "$build" -G Ninja -DUNLEARN_WARNINGS_AS_ERRORS=ON
cmake --build "$build" -j 2
built=$(date +%s)
echo "test.sh: build took $((built - start)) s"

cd "$build"
# -j2 on 2 cores: multi-rank tests declare PROCESSORS so CTest never oversubscribes beyond that.
# shellcheck disable=SC2086
ctest --output-on-failure -j 2 --timeout 1800 ${CTEST_ARGS:-}
echo "test.sh: build $((built - start)) s, tests $(($(date +%s) - built)) s"
