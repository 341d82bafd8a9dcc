#!/usr/bin/env bash
# `unlearn train` end to end on real text (fortunes-min riddles) with planted canaries, 2 ranks: TP = 2 training
# with periodic checkpoints; an interrupted run (--stop-after) resumed with --resume (which removes an optimizer file
# left without its model file) gives a final checkpoint
# bit-identical to the uninterrupted one (tensors and non-provenance attributes, read with h5py); SIGUSR1 (forwarded
# by mpiexec) stops every rank with a checkpoint; the report holds the stationarity ratio and exposure and no canary
# text; the retrain reference (--exclude-canaries) leaves the canary documents out; bad input fails with one
# message and writes nothing.
# Env: UNLEARN_BIN, MPIEXEC.
set -u
bin=${UNLEARN_BIN:?} mpi2="${MPIEXEC:-mpiexec} -n 2 --oversubscribe --bind-to none"
source "$(dirname "${BASH_SOURCE[0]}")/../common/check.sh"
fortunes_workspace riddles
jobs=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../jobs" && pwd)  # the CI fixture configs: jobs/tiny

check "prepare-data" 0 "wrote" -- "$bin" prepare-data --config "$jobs/tiny/prepare-data.ini" \
  --corpus-dir "$tmp/fortunes" --output "$tmp/ds.h5"
model=(--config "$jobs/tiny/train.ini")
train=(train --tp 2 --dataset "$tmp/ds.h5" "${model[@]}" --checkpoint-every 4)
check "train tp2 uninterrupted" 0 "exposure \(bits" -- $mpi2 "$bin" "${train[@]}" --checkpoint-dir "$tmp/ckA" \
  --output "$tmp/a.h5"
grep -Eq "step +12/12 .*tok/s .*ETA" "$tmp/out" || { echo "FAIL: no progress line for step 12"; fail=1; }
ls "$tmp/ckA/step-00000004.h5" "$tmp/ckA/step-00000008.optim.h5" >/dev/null || fail=1
check "train stops after step 6" 0 "stopped after step 6" -- $mpi2 "$bin" "${train[@]}" --checkpoint-dir "$tmp/ckB" \
  --stop-after 6 --output "$tmp/b.h5"
[ ! -e "$tmp/b.h5" ] || { echo "FAIL: a stopped run wrote its final output"; fail=1; }
# SIGUSR1 (mpiexec forwards it to every rank): the run checkpoints after the current step and ends cleanly.
$mpi2 "$bin" "${train[@]}" --steps 5000 --checkpoint-dir "$tmp/ckC" --output "$tmp/c.h5" >"$tmp/sig" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -Eq "step +20/5000" "$tmp/sig" && break; sleep 0.05; done
kill -USR1 $pid
wait $pid; rc=$?
step=$(sed -n 's/.*signal 10: stopped after step \([0-9]*\).*/\1/p' "$tmp/sig")
if [ $rc -eq 0 ] && [ -n "$step" ] && [ -e "$tmp/ckC/$(printf 'step-%08d.optim.h5' "$step")" ] && [ ! -e "$tmp/c.h5" ]; then
  echo "ok   SIGUSR1 stops every rank after step $step with a checkpoint"
else
  echo "FAIL: SIGUSR1 run (rc $rc, step '$step')"; sed 's/^/    /' "$tmp/sig"; fail=1
fi
# A run killed between the two renames of a checkpoint leaves the optimizer file without its model file: resume
# removes it (the pair was never committed) and rewrites that step.
cp "$tmp/ckA/step-00000008.optim.h5" "$tmp/ckB/"
check "resume b" 0 "resumed from .*step 6 of 12" -- $mpi2 "$bin" "${train[@]}" --checkpoint-dir "$tmp/ckB" --resume \
  --output "$tmp/b.h5"
grep -q "removed .*step-00000008.optim.h5: an interrupted run committed it without its model file" "$tmp/out" ||
  { echo "FAIL: resume did not remove the uncommitted optimizer file"; fail=1; }
/usr/bin/python3 - "$tmp" <<'PY' || fail=1
import json, sys
import h5py, numpy as np
tmp = sys.argv[1]
def content(path):
    with h5py.File(path, "r") as f:
        attrs = {k: f.attrs[k] for k in f.attrs if not k.startswith("provenance.")}
        tensors = {}
        f.visititems(lambda n, o: tensors.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return attrs, tensors
a_attrs, a = content(tmp + "/a.h5")
for other in ("b",):
    attrs, t = content(tmp + "/%s.h5" % other)
    assert sorted(t) == sorted(a), other
    for k in a:
        assert a[k].dtype == t[k].dtype and np.array_equal(a[k], t[k]), (other, k)
    assert {k: str(v) for k, v in attrs.items()} == {k: str(v) for k, v in a_attrs.items()}, other
r = json.load(open(tmp + "/a.h5.report.json"))
for key in ("stationarity_ratio", "train_gradient_norm", "exposure_evaluation_mean", "exposure_heldout_mean",
            "config", "output_digest", "canary_documents"):
    assert key in r, key
assert r["resumed_from_step"] == 0 and json.load(open(tmp + "/b.h5.report.json"))["resumed_from_step"] == 6
print("ok   resumed runs are bit-identical to the uninterrupted one (%d tensors); stationarity %.3g, exposure %.2f"
      % (len(a), r["stationarity_ratio"], r["exposure_evaluation_mean"]))
PY
grep -q "my secret number" "$tmp"/*.report.json "$tmp/out" && { echo "FAIL: canary text in a report or log"; fail=1; }
check "retrain reference" 0 "canary documents|excluded" -- $mpi2 "$bin" train --dataset "$tmp/ds.h5" "${model[@]}" \
  --steps 3 --batch-rows 4 --warmup-steps 1 --exclude-canaries --output "$tmp/r.h5"
/usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['excluded_documents'] > 0, r" \
  "$tmp/r.h5.report.json" || fail=1

check "vocabulary larger than the model" 1 "vocabulary \(256.*larger than the model's \(100\)" -- $mpi2 "$bin" train \
  --dataset "$tmp/ds.h5" "${model[@]}" --vocab-size 100 --steps 2 --output "$tmp/x.h5"
expect_one_error
check "missing dataset" 1 "error: .*nope.h5" -- $mpi2 "$bin" train --dataset "$tmp/nope.h5" --output "$tmp/x.h5"
check "existing output" 1 "exists" -- "$bin" train --dataset "$tmp/ds.h5" --output "$tmp/a.h5"
check "resume without a directory" 1 "need --checkpoint-dir" -- "$bin" train --dataset "$tmp/ds.h5" --resume \
  --output "$tmp/x.h5"
check "resume with other options" 1 "cannot resume .*training options" -- $mpi2 "$bin" "${train[@]}" --lr 1e-2 \
  --checkpoint-dir "$tmp/ckB" --resume --output "$tmp/x.h5"
expect_one_error
[ ! -e "$tmp/x.h5" ] || { echo "FAIL: output written despite an error"; fail=1; }
exit $fail
