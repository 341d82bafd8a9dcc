#!/usr/bin/env bash
# A scaling sweep on this machine through a real (private) Slurm: two slurmd "nodes" on this host (tests/slurm/
# cluster.sh), GPT-2-shaped float32 models of two sizes made with `unlearn init`, a table of TP x DP x node layouts
# submitted with slurm/submit-sweep.sh one row at a time (UNLEARN_SWEEP_SERIAL=1: timings on shared cores), then
# tools/sweep-report.py writes the CSV and the plots to docs/scaling/ (or $UNLEARN_SWEEP_OUT).
# Usage: tools/sweep-local.sh [--cg-max-iters N]   (needs a built tree: build/src/app/unlearn, or UNLEARN_BIN).
# Timings only mean what this machine allows: 2 cores, so rows of 4 ranks run 2 ranks per core, and every row's
# collectives go over TCP on loopback.
set -u
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export UNLEARN_BIN=${UNLEARN_BIN:-$repo/build/src/app/unlearn}
out=${UNLEARN_SWEEP_OUT:-$repo/docs/scaling}
iters=8
[ "${1:-}" = --cg-max-iters ] && iters=${2:?--cg-max-iters N}
[ -x "$UNLEARN_BIN" ] || { echo "sweep-local: no $UNLEARN_BIN (build first: tools/test.sh or cmake --build build)"; exit 1; }
# shellcheck source=tests/common/check.sh
source "$repo/tests/common/check.sh"
# shellcheck source=tests/slurm/cluster.sh
source "$repo/tests/slurm/cluster.sh"
# shellcheck source=slurm/lib.sh
source "$repo/slurm/lib.sh"
fortunes_workspace riddles literature
slurm_cluster_start 2

"$UNLEARN_BIN" prepare-data --corpus fortunes --corpus-dir "$tmp/fortunes" --seed 3 --canaries 4 --canary-tuning 1 \
  --canary-repeats 4 --canary-references 50 --output "$tmp/ds.h5" >"$tmp/prep.log" 2>&1 ||
  { cat "$tmp/prep.log"; exit 1; }
# Two widths, 4 layers each: the larger has about 4x the parameters (weak scaling: d256 on 4 ranks ~ d128 on 1).
for d in 128 256; do
  "$UNLEARN_BIN" init --d-model $d --n-heads 4 --n-layers 4 --d-ff $((4 * d)) --max-positions 128 --dtype float32 \
    --output "$tmp/d$d.h5" >>"$tmp/prep.log" 2>&1 || { cat "$tmp/prep.log"; exit 1; }
done
{
  echo "# name        tp dp nodes checkpoint"
  for d in 128 256; do
    echo "d$d-tp1-dp1    1  1  1  $tmp/d$d.h5"
    echo "d$d-tp2-dp1    2  1  1  $tmp/d$d.h5"
    echo "d$d-tp1-dp2    1  2  1  $tmp/d$d.h5"
    echo "d$d-tp1-dp2-2n 1  2  2  $tmp/d$d.h5"
    echo "d$d-tp2-dp2-2n 2  2  2  $tmp/d$d.h5"
  done
} >"$tmp/table.txt"
# Both "nodes" are this host: Open MPI's shared-memory transport crashes between two slurmd (docs/slurm.md), so
# every row, one node or two, talks TCP over loopback: the same transport, comparable communication times.
export OMPI_MCA_btl=self,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
t=$(slurm_now)
ids=$(cd "$tmp" && UNLEARN_SWEEP_DIR=$tmp/sweep UNLEARN_SWEEP_SERIAL=1 \
      UNLEARN_SBATCH_ARGS="-t 10 -o $tmp/sweep-%A_%a.out" "$repo/slurm/submit-sweep.sh" "$tmp/table.txt" \
      --dataset "$tmp/ds.h5" --forget-canaries --retain-sample 32 --method newton-cg --curvature ggn \
      --damping 0.01 --cg-max-iters "$iters" --threads 1) || { slurm_dump; exit 1; }
rows=$(unlearn_sweep_rows "$tmp/table.txt" | wc -l)
for _ in $(seq 1800); do
  [ -z "$(squeue -h -r -o %i 2>/dev/null)" ] && break
  sleep 1
done
done_rows=$(ls "$tmp"/sweep/*/forget.h5.report.json 2>/dev/null | wc -l)
[ "$done_rows" -eq "$rows" ] || { echo "sweep-local: $done_rows of $rows rows reported ($ids)"; slurm_dump "$tmp"/sweep-*.out; exit 1; }
echo "sweep-local: $rows rows in $(slurm_secs "$t" "$(slurm_now)") s, load $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$out"
cp "$tmp/table.txt" "$out/sweep-table.txt"
sed -i "s|$tmp/||g" "$out/sweep-table.txt"
/usr/bin/python3 "$repo/tools/sweep-report.py" "$tmp/sweep" --out "$out" || exit 1
slurm_cluster_stop
