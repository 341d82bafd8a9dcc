#!/usr/bin/env bash
# The model benchmark of issue 3: gradient, H·v and G·v of the GPT-2 presets of `unlearn bench model`
# (src/app/bench_model.cpp preset(): tiny, 5m, 30m; float32, CPU) for
#   (a) ours, 1 rank, 2 threads:         unlearn bench model --threads 2
#   (b) ours, 2 ranks, TP = 2 vs TP = 1:  mpiexec -n 2 unlearn bench model --tp 2   (OMP_NUM_THREADS=1)
#   (c) the Python peers (tools/peers/hvp_peers.py, naive and optimised), float32, 2 threads, on an exchange file
#       with the same config, batch semantics (one document per row, all positions but the last targets) and weight
#       distribution (weights N(0, 0.02), biases 0, norm gains 1) as the C++ preset
# and combines them into the markdown tables of docs/benchmarks.md (tools/peers/bench_model_table.py).
# (a) and (c) run in ROUNDS_S paired rounds, (a) then (c) each round, so that the ratios ours / peer are taken
# between runs minutes apart: this host's speed drifts 10-20 % over a run (docs/benchmarks.md); the table reports
# the median of the per-round ratios and their range. (b) runs once per size and pairs inside itself: TP_ROUNDS
# (5) rounds, each timing the machine's 2-rank matmul speed-up, H·v at TP = 1 and H·v at TP = 2 back to back.
#
#   tools/bench-model.sh [--sizes tiny,5m,30m] [--out DIR] [--wait-load 1.5] [--wait-max 1800] [--step-wait-max 600]
#
# --wait-load L: before the run, wait (polling every 30 s, at most --wait-max s) until the 1-minute load average is
# below L, and again before each of the 3 x sizes measurement steps (at most --step-wait-max s each); after a wait
# times out the step runs anyway. The load at the start and end of every step is in loads.txt and run.md.
#
# Does not build: it uses $UNLEARN_BUILD_DIR/src/app/unlearn (default build/). Raw outputs go to DIR (default
# out/bench-model): ours1_S.rK.{md,jsonl,log,rss} and peers_S.rK.{json,log} for round K, ours2_S.{md,jsonl,log,
# rss.0,rss.1}, fixtures/gpt2_S.h5, loads.txt, run.md (machine, binary, command, load) and bench-model.md (run.md +
# tables). Rounds per size: ROUNDS_TINY (3), ROUNDS_5M (3), ROUNDS_30M (2).
# Repetitions per size and round (median reported; both sides run two untimed warm-up reps first):
# REPS_TINY (5), REPS_5M (5), REPS_30M (3); the naive peer's H·v and G·v run in NAIVE_REPS_30M (1) reps on 30m
# (its H·v redoes forward and both backwards every time), NAIVE_REPS_TINY/5M default to the size's reps.
# The peers' extra forward-mode G·v variant is timed on tiny and 5m only (FWD_VARIANT_30M=1 adds it on 30m).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${UNLEARN_BUILD_DIR:-$root/build}
bin=$build/src/app/unlearn
py=/usr/bin/python3  # Debian's python3 with python3-torch (1.13), functorch and h5py
out=$root/out/bench-model
sizes=tiny,5m,30m
wait_load=""
wait_max=1800
step_wait_max=600
args=("$@")
while [[ $# -gt 0 ]]; do
  case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --wait-load) wait_load=$2; shift 2 ;;
    --wait-max) wait_max=$2; shift 2 ;;
    --step-wait-max) step_wait_max=$2; shift 2 ;;
    -h|--help) sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-model.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x $bin ]] || { echo "bench-model.sh: $bin not found; build it first (cmake --build build --target unlearn)" >&2; exit 1; }
[[ -x $py ]] || { echo "bench-model.sh: $py not found (Debian python3 with python3-torch)" >&2; exit 1; }
IFS=, read -r -a size_list <<< "$sizes"
for s in "${size_list[@]}"; do
  case $s in tiny|5m|30m) ;; *) echo "bench-model.sh: unknown size '$s' (tiny, 5m, 30m)" >&2; exit 2 ;; esac
done
mkdir -p "$out/fixtures"

rounds_of() { case $1 in tiny) echo "${ROUNDS_TINY:-3}" ;; 5m) echo "${ROUNDS_5M:-3}" ;; 30m) echo "${ROUNDS_30M:-2}" ;; esac; }
reps_of() { case $1 in tiny) echo "${REPS_TINY:-5}" ;; 5m) echo "${REPS_5M:-5}" ;; 30m) echo "${REPS_30M:-3}" ;; esac; }
naive_reps_of() {
  case $1 in tiny) echo "${NAIVE_REPS_TINY:-$(reps_of tiny)}" ;; 5m) echo "${NAIVE_REPS_5M:-$(reps_of 5m)}" ;;
    30m) echo "${NAIVE_REPS_30M:-1}" ;; esac
}
# d_model n_layers n_heads batch seq, exactly bench_model.cpp preset() (vocab 256, d_ff = 4 d, max_positions = seq).
preset_of() { case $1 in tiny) echo "64 2 4 4 64" ;; 5m) echo "256 6 8 8 128" ;; 30m) echo "512 9 8 8 128" ;; esac; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
stamp() { date -u '+%Y-%m-%d %H:%M:%S UTC'; }
note() { echo "[$(stamp)] load $(load): $*" | tee -a "$out/loads.txt"; }

# gate MAX_S: with --wait-load, wait until the 1-minute load is below it (at most MAX_S seconds).
gate() {
  [[ -n $wait_load ]] || return 0
  local waited=0
  while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v w="$wait_load" 'BEGIN { exit !(l >= w) }'; do
    if (( waited >= $1 )); then note "load still >= $wait_load after ${waited}s: running anyway"; return 0; fi
    note "waiting for the 1-minute load to drop below $wait_load (${waited}s so far)"
    sleep 30; waited=$((waited + 30))
  done
}
: > "$out/loads.txt"
gate "$wait_max"

# One binary for the whole run, even if someone relinks the build meanwhile (it links only system libraries).
src_bin=$bin
cp "$src_bin" "$out/unlearn"
bin=$out/unlearn
start_date=$(stamp); start_load=$(load); t_start=$(date +%s)
note "start (sizes $sizes)"
for s in "${size_list[@]}"; do
  read -r d L H B T <<< "$(preset_of "$s")"
  reps=$(reps_of "$s"); nreps=$(naive_reps_of "$s")
  fx=$out/fixtures/gpt2_$s.h5
  if [[ ! -s $fx ]]; then
    "$py" "$root/tests/oracle/make_fixture.py" "$fx" --family gpt2 --seed 1 --vocab 256 --d-model "$d" \
      --n-layers "$L" --n-heads "$H" --d-ff $((4 * d)) --max-positions "$T" --batch "$B" --seq "$T" \
      --init-std 0.02 --bias-std 0 --norm-std 0 --one-doc-per-row
  fi

  fwd=(--no-fwd-variant)
  [[ $s != 30m || ${FWD_VARIANT_30M:-0} == 1 ]] && fwd=()
  rounds=$(rounds_of "$s")
  for ((k = 1; k <= rounds; k++)); do
    o1=$out/ours1_$s.r$k pe=$out/peers_$s.r$k
    gate "$step_wait_max"
    note "$s round $k/$rounds: (a) ours, 1 rank, 2 threads, $reps reps"
    env -u OMP_NUM_THREADS /usr/bin/time -f %M -o "$o1.rss" \
      "$bin" bench model --threads 2 --sizes "$s" --reps "$reps" --output "$o1.md" \
      --metrics "$o1.jsonl.tmp" > "$o1.log" 2>&1
    mv "$o1.jsonl.tmp" "$o1.jsonl"  # --metrics appends; keep one run per file
    note "$s round $k/$rounds: (a) done"

    gate "$step_wait_max"
    note "$s round $k/$rounds: (c) Python peers, float32, 2 threads, $reps reps (naive products: $nreps)"
    env -u OMP_NUM_THREADS "$py" "$root/tools/peers/hvp_peers.py" "$fx" --dtype float32 --threads 2 \
      --reps "$reps" --naive-reps "$nreps" "${fwd[@]}" --json "$pe.json" > "$pe.log" 2>&1 || {
      rc=$?; cat "$pe.log" >&2; echo "bench-model.sh: hvp_peers.py failed ($rc) on $s" >&2; exit "$rc"; }
    note "$s round $k/$rounds: (c) done"
  done

  gate "$step_wait_max"
  note "$s: (b) ours, 2 ranks, TP = 2 vs TP = 1, 1 thread per rank, $reps reps, ${TP_ROUNDS:-5} paired rounds"
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 \
    mpiexec -n 2 --bind-to none sh -c '/usr/bin/time -f %M -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' "$out/ours2_$s.rss" \
    "$bin" bench model --tp 2 --sizes "$s" --reps "$reps" --tp-rounds "${TP_ROUNDS:-5}" --output "$out/ours2_$s.md" \
    --metrics "$out/ours2_$s.jsonl.tmp" > "$out/ours2_$s.log" 2>&1
  mv "$out/ours2_$s.jsonl.tmp" "$out/ours2_$s.jsonl"
  note "$s: (b) done"
done
end_date=$(stamp); end_load=$(load); t_end=$(date +%s)
note "end"

{
  echo "Command: \`tools/bench-model.sh${args[*]:+ ${args[*]}}\` (paired rounds of ours and the peers: tiny" \
    "$(rounds_of tiny), 5m $(rounds_of 5m), 30m $(rounds_of 30m); reps per round: tiny $(reps_of tiny), 5m $(reps_of 5m), 30m" \
    "$(reps_of 30m); naive peer's H·v and G·v: tiny $(naive_reps_of tiny), 5m $(naive_reps_of 5m), 30m $(naive_reps_of 30m))"
  echo
  echo "Run of $start_date to $end_date ($(( (t_end - t_start) / 60 )) min), load average (1, 5, 15 min) at start" \
    "$start_load, at end $end_load; $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1))," \
    "$(free -g | awk '/^Mem:/ {print $2}') GiB; git $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- src include 2>/dev/null || echo ' (working tree: src/include differ from it)');" \
    "binary $(realpath --relative-to="$root" "$src_bin") of $(date -u -r "$src_bin" '+%Y-%m-%d %H:%M UTC'), copied at the start" \
    "(sha256 $(sha256sum "$bin" | cut -c1-12)); $("$py" -c 'import torch; print("torch", torch.__version__)') for the peers;" \
    "$(mpiexec --version 2>/dev/null | head -1)."
  echo
  if [[ -n $wait_load ]]; then gated="each step waits (at most ${step_wait_max} s) while the 1-minute load is >= $wait_load"
  else gated="no waiting for a quiet machine"; fi
  echo "Load average (1, 5, 15 min) at each step ($gated):"
  echo
  echo '```'
  grep -v 'waiting for' "$out/loads.txt" | sed 's/^\[[0-9-]* //; s/ UTC\]/ UTC/'
  echo '```'
} > "$out/run.md"
"$py" "$root/tools/peers/bench_model_table.py" "$out" --sizes "$sizes" --md "$out/tables.md" > /dev/null
cat "$out/run.md" <(echo) "$out/tables.md" > "$out/bench-model.md"
cat "$out/bench-model.md"
echo
echo "bench-model.sh: raw outputs and bench-model.md in $out"
