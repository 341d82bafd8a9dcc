#!/usr/bin/env bash
# Fault injection under mpiexec at 2 ranks (docs/reliability.md), on the real commands rather than the checkpoint
# library alone (tests/io/killed_writer.sh pauses ckpt_tool deterministically; tests/io/disk_full.sh fills a
# tmpfs under ckpt_tool):
#  1. kill -9 of one rank while `unlearn forget` runs Newton-CG: the job ends within seconds, nothing is written;
#  2. kill -9 of one rank while `unlearn train` writes a periodic checkpoint: the earlier checkpoints equal those of
#     an uninterrupted run, the latest loads (`unlearn inspect` verifies it), and --resume ends bit-identical to
#     the uninterrupted run: nothing is lost;
#  3. SIGTERM to every rank mid-solve, as Slurm delivers it at a time limit or scancel (tests/e2e/forget.sh covers
#     --stop-after-iteration, not a real signal): the solver state is saved, and --resume ends bit-identical;
#  4. a full filesystem under `unlearn forget`'s output (a tmpfs in a private mount namespace; skipped without
#     root): one message naming the file, nothing left in the directory, no report.
# Env: UNLEARN_BIN, MPIEXEC.
set -u
bin=${UNLEARN_BIN:?}
mpiexec=${MPIEXEC:-mpiexec}
mpi="$mpiexec -n 2 --oversubscribe --bind-to none"
py=/usr/bin/python3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../common/check.sh"
fortunes_workspace riddles
"$py" -c "import h5py, numpy" 2> /dev/null || { echo "SKIP: /usr/bin/python3 lacks h5py or numpy"; exit 77; }
jobs=$(cd "$here/../../jobs" && pwd)

# rank_pid ROOT RANK: pid of the MPI process of world rank RANK below process ROOT (mpiexec's children).
rank_pid() {
  local p c
  for p in $(pgrep -P "$1"); do
    if tr '\0' '\n' < "/proc/$p/environ" 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
      echo "$p"
      return 0
    fi
    c=$(rank_pid "$p" "$2") && { echo "$c"; return 0; }
  done
  return 1
}
# wait_for FILE REGEX SECONDS: until FILE has a line matching REGEX (polls every 10 ms); 1 on timeout.
wait_for() {
  local n
  for n in $(seq $(($3 * 100))); do
    grep -Eq -- "$2" "$1" 2> /dev/null && return 0
    sleep 0.01
  done
  return 1
}
# same_tensors A1 B1 [A2 B2 ...]: each pair of checkpoints holds bit-identical tensors and non-provenance
# attributes (h5py; one Python start for all pairs). Prints the pairs that differ.
same_tensors() {
  "$py" - "$@" <<'PY'
import sys
import h5py, numpy as np
def content(path):
    with h5py.File(path, "r") as f:
        attrs = {k: str(f.attrs[k]) for k in f.attrs if not k.startswith("provenance.")}
        t = {}
        f.visititems(lambda n, o: t.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return attrs, t
bad = 0
for a_path, b_path in zip(sys.argv[1::2], sys.argv[2::2]):
    (aa, a), (ba, b) = content(a_path), content(b_path)
    if not (aa == ba and sorted(a) == sorted(b) and
            all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)):
        print("differ:", a_path, b_path)
        bad = 1
sys.exit(bad)
PY
}
elapsed() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }
t_start=$(date +%s.%N)
section() { echo "---- $1 (at $(elapsed "$t_start") s)"; }

check "setup: prepare-data" 0 "wrote" -- "$bin" prepare-data --config "$jobs/tiny/prepare-data.ini" \
  --corpus-dir "$tmp/fortunes" --output "$tmp/ds.h5"
check "setup: init" 0 "wrote" -- $mpi "$bin" init --tp 2 --d-model 32 --n-heads 4 --n-layers 1 --d-ff 64 \
  --max-positions 64 --dtype float64 --init-std 0.1 --output "$tmp/init.h5"
[ "$fail" -eq 0 ] || exit 1
ncg=(forget --tp 2 --checkpoint "$tmp/init.h5" --dataset "$tmp/ds.h5" --forget-canaries --retain-sample 8
     --method newton-cg --curvature ggn --damping 0.01 --cg-rtol 1e-14)

# ---- 1. kill -9 of one rank mid-solve ----------------------------------------------------------------------------
section "kill -9 mid-solve"
timeout 120 $mpi "$bin" "${ncg[@]}" --cg-max-iters 1000 --output "$tmp/k.h5" > "$tmp/k.log" 2>&1 &
job=$!
if wait_for "$tmp/k.log" "cg +2 +rel. residual" 60 && victim=$(rank_pid $job 1); then
  kill -9 "$victim"
  t0=$(date +%s.%N)
  wait $job
  rc=$? took=$(elapsed "$t0")
  echo "     kill -9 of rank 1 (pid $victim) at CG iteration 2: exit $rc after ${took} s"
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && awk -v t="$took" 'BEGIN { exit !(t < 20) }' && [ ! -e "$tmp/k.h5" ] &&
     [ ! -e "$tmp/k.h5.report.json" ] && [ -z "$(ls "$tmp" | grep '^k\.h5\.tmp\.')" ]; then
    echo "ok   kill -9 mid-solve: the job ended, nothing written"
  else
    echo "FAIL kill -9 mid-solve (rc $rc, ${took} s):"; tail -5 "$tmp/k.log"; ls "$tmp"; fail=1
  fi
else
  echo "FAIL kill -9 mid-solve: no CG iteration logged"; cat "$tmp/k.log"; kill $job; fail=1
fi

# ---- 2. kill -9 of one rank while `unlearn train` writes a periodic checkpoint -----------------------------------
section "kill -9 mid-checkpoint of unlearn train"
train=(train --tp 2 --dataset "$tmp/ds.h5" --config "$jobs/tiny/train.ini" --d-model 64 --d-ff 256 --n-layers 2
       --steps 6 --checkpoint-every 1)
check "train uninterrupted" 0 "exposure" -- $mpi "$bin" "${train[@]}" --checkpoint-dir "$tmp/ckA" --output "$tmp/a.h5"
timeout 120 $mpi "$bin" "${train[@]}" --checkpoint-dir "$tmp/ckB" --output "$tmp/b.h5" > "$tmp/t.log" 2>&1 &
job=$!
# A temporary file of step 3 or later exists only while that checkpoint is being written: kill then.
temp=
for _ in $(seq 6000); do
  temp=$(ls "$tmp/ckB" 2> /dev/null | grep -E '^step-0000000[3-6].*\.tmp\.' | head -1)
  [ -n "$temp" ] && break
  sleep 0.005
done
victim=$(rank_pid $job 1)
if [ -n "$temp" ] && [ -n "$victim" ]; then
  kill -9 "$victim"
  wait $job
  rc=$?
  final=${temp%%.tmp.*}
  echo "     kill -9 of rank 1 while writing $final: exit $rc; left: $(ls "$tmp/ckB" | tr '\n' ' ')"
  step=0  # the latest complete checkpoint: both files (the model file's rename commits the pair)
  for s in $(seq 6); do
    [ -e "$tmp/ckB/$(printf 'step-%08d.h5' "$s")" ] && [ -e "$tmp/ckB/$(printf 'step-%08d.optim.h5' "$s")" ] && step=$s
  done
  ok=1
  [ $rc -ne 0 ] && [ $rc -ne 124 ] || { echo "FAIL train kill: exit $rc"; ok=0; }
  [ "$step" -ge 2 ] || { echo "FAIL: the checkpoints before the killed write are gone"; ok=0; }
  # Every file under a final name is whole: the same tensors and attributes as the uninterrupted run's. The kill
  # may land after the optimizer file's rename and before the model file's: that file is complete but uncommitted.
  pairs=()
  orphan=
  for f in $(ls "$tmp/ckB" | grep -E '^step-[0-9]{8}(\.optim)?\.h5$'); do
    pairs+=("$tmp/ckA/$f" "$tmp/ckB/$f")
    case $f in *.optim.h5) [ -e "$tmp/ckB/${f%.optim.h5}.h5" ] || orphan=$f ;; esac
  done
  same_tensors "${pairs[@]}" || { echo "FAIL: files under final names differ from the uninterrupted run's"; ok=0; }
  timeout 60 $mpi "$bin" inspect "$tmp/ckB/$(printf 'step-%08d.h5' "$step")" --log-level warn > "$tmp/inspect.out" 2>&1 &&
    grep -q "verified: every checksum and the digest match" "$tmp/inspect.out" ||
    { echo "FAIL: the last complete checkpoint does not verify"; cat "$tmp/inspect.out"; ok=0; }
  check "train resumes after the kill" 0 "resumed from .*step $step of 6" -- $mpi "$bin" "${train[@]}" \
    --checkpoint-dir "$tmp/ckB" --resume --output "$tmp/b.h5"
  if [ -n "$orphan" ]; then
    echo "     the kill left $orphan without its model file"
    grep -q "removed .*$orphan: an interrupted run committed it without its model file" "$tmp/out" ||
      { echo "FAIL: resume did not say it removed $orphan"; ok=0; }
  fi
  same_tensors "$tmp/a.h5" "$tmp/b.h5" || { echo "FAIL: the resumed training differs from the uninterrupted one"; ok=0; }
  [ $ok -eq 1 ] && echo "ok   kill -9 mid-checkpoint: steps 1..$step intact, resume bit-identical" || fail=1
else
  echo "FAIL train kill: never saw a checkpoint being written (temp '$temp', victim '$victim')"
  cat "$tmp/t.log"; kill $job 2> /dev/null; fail=1
fi

# ---- 3. SIGTERM to every rank mid-solve, then --resume -----------------------------------------------------------
section "SIGTERM mid-solve"
# Enough iterations that the signal lands mid-solve: a CG iteration of this model takes ~25 ms, and mpiexec forwards
# the "cg 2" line a few hundred ms after rank 0 writes it (12 iterations were over by then).
iters=60
check "newton-cg uninterrupted" 0 "wrote" -- $mpi "$bin" "${ncg[@]}" --cg-max-iters $iters --output "$tmp/sA.h5"
timeout 120 $mpi "$bin" "${ncg[@]}" --cg-max-iters $iters --state-dir "$tmp/st" --output "$tmp/sB.h5" > "$tmp/s.log" 2>&1 &
job=$!
if wait_for "$tmp/s.log" "cg +2 +rel. residual" 60 && r0=$(rank_pid $job 0) && r1=$(rank_pid $job 1); then
  kill -TERM "$r0" "$r1"
  wait $job
  rc=$?
  it=$(sed -n 's/.*signal 15: stopped at request 1, CG iteration \([0-9]*\) with its state.*/\1/p' "$tmp/s.log")
  if [ $rc -eq 0 ] && [ -n "$it" ] && [ ! -e "$tmp/sB.h5" ] && [ -e "$tmp/st/$(printf 'cg-r000-i%06d.h5' "$it")" ]; then
    echo "ok   SIGTERM stopped both ranks after CG iteration $it with the solver state"
    check "newton-cg resumes after SIGTERM" 0 "cg resumes after iteration $it" -- $mpi "$bin" "${ncg[@]}" \
      --cg-max-iters $iters --state-dir "$tmp/st" --resume --output "$tmp/sB.h5"
    if same_tensors "$tmp/sA.h5" "$tmp/sB.h5"; then
      echo "ok   the resumed solve is bit-identical to the uninterrupted one"
    else
      echo "FAIL: the resumed solve differs"; fail=1
    fi
  else
    echo "FAIL SIGTERM mid-solve: exit $rc, iteration '$it'"; tail -5 "$tmp/s.log"; ls "$tmp/st"; fail=1
  fi
else
  echo "FAIL SIGTERM: no CG iteration logged"; cat "$tmp/s.log"; kill $job; fail=1
fi

# ---- 4. full filesystem under forget's output --------------------------------------------------------------------
section "full filesystem"
if [ "$(id -u)" -eq 0 ] && command -v unshare > /dev/null && unshare -m true 2> /dev/null; then
  mkdir "$tmp/full"
  export tmp bin mpi
  # 96 KiB: the output checkpoint (~0.3 MB in float64) cannot fit.
  unshare -m bash -c '
    mount -t tmpfs -o size=96k tmpfs "$tmp/full" || exit 77
    UNLEARN_IO_FAILURE_TIMEOUT=5 timeout 120 $mpi "$bin" forget --tp 2 --checkpoint "$tmp/init.h5" \
      --dataset "$tmp/ds.h5" --forget-canaries --retain-sample 8 --method fisher-removal \
      --output "$tmp/full/out.h5" > "$tmp/full.log" 2>&1
    echo $? > "$tmp/full.rc"
    ls -A "$tmp/full" > "$tmp/full.left"
  '
  rc=$(cat "$tmp/full.rc" 2> /dev/null || echo 77)
  if [ "$rc" = 77 ]; then
    echo "SKIP full filesystem: could not mount a tmpfs"
  else
    n=$(grep -c "error: writing checkpoint '.*out.h5': .*no space left on the filesystem" "$tmp/full.log")
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$n" -eq 1 ] && [ ! -s "$tmp/full.left" ]; then
      echo "ok   full filesystem: exit $rc, one message, nothing left"
    else
      echo "FAIL full filesystem: exit $rc, $n messages, left: $(cat "$tmp/full.left")"; tail -5 "$tmp/full.log"
      fail=1
    fi
  fi
else
  echo "SKIP full filesystem: needs root and mount namespaces"
fi
section "done"
exit $fail
