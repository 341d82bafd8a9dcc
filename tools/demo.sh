#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run the main job on the embedded default at
# 2 MPI ranks. Idempotent.
#
# Status: the unlearning engine (issues "models", "checkpoints", "corpora", "engine") has not landed yet, so this
# runs the most complete real pipeline that exists today: the 2-rank process grid with its placement table, and the
# communication benchmark of the Communicator every later stage runs on. No step is a placeholder.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${UNLEARN_BUILD_DIR:-$root/build}
out=${UNLEARN_DEMO_OUT:-$root/out/demo}

"$root/tools/install-deps.sh"
export CCACHE_BASEDIR=$root CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-8G}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
cmake -S "$root" -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j 2 --target unlearn

mkdir -p "$out"
mpi=(mpiexec -n 2 --oversubscribe --bind-to none)
echo "== unlearn info: the 2-rank grid (tp 2) =="
"${mpi[@]}" "$build/src/app/unlearn" info --tp 2 --metrics "$out/metrics.jsonl"
echo
echo "== unlearn bench comm: Communicator all-reduce vs raw MPI_Allreduce, 2 ranks =="
"${mpi[@]}" "$build/src/app/unlearn" bench comm --min-bytes 4K --max-bytes 16M --reps 20 \
  --metrics "$out/metrics.jsonl" --output "$out/bench_comm.md" --log-level warn
cat "$out/bench_comm.md"
echo
echo "demo: outputs in $out (bench_comm.md, metrics.jsonl)"
