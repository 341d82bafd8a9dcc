#!/usr/bin/env bash
# The Newton-step benchmark of issue 6: one Newton-CG step (forget gradient, retain graph, K CG iterations on the
# damped exact Hessian) on GPT-2 checkpoints of the bench-model presets (5m, 30m; float32, CPU) for
#   (a) ours, 1 rank, 2 threads:   unlearn bench newton --threads 2
#   (b) ours, 2 ranks, TP = 2:     mpiexec -n 2 unlearn bench newton --tp 2 (1 thread per rank)
#   (c) the Python peers (tools/peers/newton_peers.py: naive hvp-per-product and optimised graph reuse), 2 threads
# on the same weights (the checkpoint `unlearn init` wrote) and the same formula batches, then prints the markdown
# of docs/benchmarks.md "Newton step" (tools/peers/newton_table.py).
#
#   tools/bench-newton.sh [--sizes 5m,30m] [--cg-iters 10] [--damping 100] [--out DIR]
#
# Does not build: uses $UNLEARN_BUILD_DIR/src/app/unlearn (default build/). Raw outputs in DIR (default
# out/bench-newton): S.h5 (checkpoint), ours1_S.jsonl, ours2_S.jsonl, peers_S.json, *.log, run.txt.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${UNLEARN_BUILD_DIR:-$root/build}/src/app/unlearn
py=/usr/bin/python3
out=$root/out/bench-newton sizes=5m,30m iters=10 damping=100
while [[ $# -gt 0 ]]; do
  case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --cg-iters) iters=$2; shift 2 ;;
    --damping) damping=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-newton.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x $bin ]] || { echo "bench-newton.sh: $bin not found; build it first" >&2; exit 1; }
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi="${MPIEXEC:-mpiexec} -n 2 --oversubscribe --bind-to none"
{ date -u +"start %F %T UTC"; echo "load $(cut -d' ' -f1-3 /proc/loadavg)"; echo "git $(git -C "$root" rev-parse --short HEAD)";
  echo "command: tools/bench-newton.sh --sizes $sizes --cg-iters $iters --damping $damping"; } > "$out/run.txt"
# d_model n_layers n_heads: bench_model.cpp's presets (d_ff = 4 d, vocab 256, 128 positions).
preset_of() { case $1 in tiny) echo "64 2 4" ;; 5m) echo "256 6 8" ;; 30m) echo "512 9 8" ;;
  *) echo "bench-newton.sh: unknown size '$1'" >&2; exit 2 ;; esac; }
IFS=, read -r -a size_list <<< "$sizes"
for s in "${size_list[@]}"; do
  read -r d L H <<< "$(preset_of "$s")"
  [[ -e $out/$s.h5 ]] || "$bin" init --d-model "$d" --n-layers "$L" --n-heads "$H" --d-ff $((4 * d)) \
    --max-positions 128 --output "$out/$s.h5" > "$out/init_$s.log" 2>&1
  common=(bench newton --checkpoint "$out/$s.h5" --cg-iters "$iters" --damping "$damping")
  echo "$s: ours, 1 rank, 2 threads"
  rm -f "$out/ours1_$s.jsonl" "$out/ours2_$s.jsonl"
  OMP_NUM_THREADS=2 "$bin" "${common[@]}" --threads 2 --metrics "$out/ours1_$s.jsonl" > "$out/ours1_$s.log" 2>&1
  echo "$s: ours, 2 ranks, TP = 2"
  OMP_NUM_THREADS=1 $mpi "$bin" "${common[@]}" --tp 2 --threads 1 --metrics "$out/ours2_$s.jsonl" > "$out/ours2_$s.log" 2>&1
  echo "$s: Python peers, 2 threads"
  "$py" "$root/tools/peers/newton_peers.py" "$out/$s.h5" --cg-iters "$iters" --damping "$damping" --threads 2 \
    --json "$out/peers_$s.json" > "$out/peers_$s.log" 2>&1
done
{ date -u +"end %F %T UTC"; echo "load $(cut -d' ' -f1-3 /proc/loadavg)"; } >> "$out/run.txt"
"$py" "$root/tools/peers/newton_table.py" "$out" "${size_list[@]}"
