#!/usr/bin/env bash
# Slurm preemption: a Newton-CG forget job (slurm/forget-cpu.sbatch, 2 ranks, a solver state every iteration) is
# stopped twice mid-CG: first by SIGTERM to its batch shell (what --signal=B:TERM@N sends before the time limit; the
# job requeues itself), then by `scontrol requeue` (preemption). Each time the ranks stop with their solver state, the
# job is started again at once (StartTime=now instead of Slurm's 121 s), finds the state and resumes. Checks:
# Restarts >= 2, the report's resumed_from iteration > 0, and the output checkpoint bit-identical to an uninterrupted
# job's (every dataset and attribute; the reports agree except for timings and paths). Env: UNLEARN_BIN.
set -u
bin=${UNLEARN_BIN:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/common/check.sh
source "$repo/tests/common/check.sh"
# shellcheck source=tests/slurm/cluster.sh
source "$here/cluster.sh"
fortunes_workspace riddles
slurm_cluster_start 1
slurm_fixture
export UNLEARN_SLURM_DIR=$repo/slurm UNLEARN_BIN=$bin UNLEARN_STATE_EVERY=1

# Enough iterations that the requeue lands mid-CG (rtol 1e-30: CG never stops early).
opts=(--tp 2 --checkpoint "$tmp/init.h5" --dataset "$tmp/ds.h5" --forget-canaries --retain-sample 12
      --method newton-cg --curvature ggn --damping 0.01 --cg-max-iters 12 --cg-rtol 1e-30)
submit() {  # submit NAME: the template with the options above, output $tmp/NAME.h5, log $tmp/NAME.out
  UNLEARN_OUTPUT=$tmp/$1.h5 slurm_submit -n 2 -t 5 -o "$tmp/$1.out" -D "$tmp" "$repo/slurm/forget-cpu.sbatch" \
    "${opts[@]}"
}

t=$(slurm_now)
ref=$(submit ref) || { slurm_dump; exit 1; }
slurm_wait_done "$ref" 240 "$t" || { slurm_dump "$tmp/ref.out"; exit 1; }
echo "ok   uninterrupted job $ref completed"

# cg_lines: CG iteration lines in the job log so far (all runs of the job append to it).
cg_lines() { cat "$tmp/pre.out" 2>/dev/null | grep -Ec "cg +[0-9]+ +rel. residual"; }
last_cg() { grep -E "cg +[0-9]+ +rel. residual" "$tmp/pre.out" | tail -n 1; }
# wait_cg_lines N: until the log holds more than N CG iteration lines.
wait_cg_lines() {
  local t0=$SECONDS
  until [ "$(cg_lines)" -gt "$1" ]; do
    [ $((SECONDS - t0)) -lt 180 ] || { echo "FAIL: no new CG line after 180 s"; slurm_dump "$tmp/pre.out"; exit 1; }
    sleep 0.1
  done
}
# restart_now: the requeued job waits for its BeginTime (now + 121 s); once it is pending again, start it at once.
# Not in the same second: slurmd revokes the old run's credential with 1 s resolution and refuses a run whose
# credential is not younger ("Killing non-startable batch job: Job credential revoked", the job fails). Slurm's own
# 121 s delay hides this; here the node must be idle again and 2 s must pass.
restart_now() {
  local t0=$SECONDS
  slurm_wait_state "$id" PENDING 90 || { slurm_dump "$tmp/pre.out"; exit 1; }
  until [ "$(sinfo -h -n n1 -o %T)" = idle ]; do
    [ $((SECONDS - t0)) -lt 90 ] || { echo "FAIL: n1 not idle after the requeue"; slurm_dump "$tmp/pre.out"; exit 1; }
    sleep 0.2
  done
  sleep 2
  scontrol update JobId="$id" StartTime=now || { echo "FAIL: scontrol update StartTime=now"; exit 1; }
}

t=$(slurm_now)
id=$(submit pre) || { slurm_dump; exit 1; }
# 1. The time-limit path: SIGTERM to the batch shell only, as --signal=B:TERM@120 sends it. slurm/lib.sh forwards it
#    to the step, the ranks stop with their state, and the job requeues itself.
wait_cg_lines 0
scancel --batch --signal=TERM "$id" || { echo "FAIL: scancel --batch"; exit 1; }
echo "ok   SIGTERM to the batch shell of job $id after:$(last_cg)"
restart_now
# 2. The preemption path: once the resumed run has done a CG iteration of its own, `scontrol requeue` (Slurm
#    signals every process of the job, then puts it back in the queue).
n=$(cg_lines)
t1=$SECONDS
until grep -q "cg resumes after iteration" "$tmp/pre.out"; do
  [ $((SECONDS - t1)) -lt 180 ] || { echo "FAIL: no resume after the first stop"; slurm_dump "$tmp/pre.out"; exit 1; }
  sleep 0.1
done
wait_cg_lines "$n"
scontrol requeue "$id" || { echo "FAIL: scontrol requeue $id"; slurm_dump "$tmp/pre.out"; exit 1; }
echo "ok   scontrol requeue $id after:$(last_cg)"
restart_now
slurm_wait_done "$id" 240 || { slurm_dump "$tmp/pre.out"; exit 1; }
echo "time job $id: submit->end $(slurm_secs "$t" "$(slurm_now)") s with two stops"
restarts=$(slurm_job_field "$id" Restarts)
[ "${restarts:-0}" -ge 2 ] || { echo "FAIL: Restarts=$restarts, expected >= 2"; fail=1; }
[ "$(grep -c "stopped at request 1, CG iteration [0-9]* with its state" "$tmp/pre.out")" -eq 2 ] \
  && [ "$(grep -c "unlearn-slurm: resuming from the solver state" "$tmp/pre.out")" -eq 2 ] \
  && grep -q "unlearn-slurm: got SIGTERM; forwarding it to the tasks" "$tmp/pre.out" \
  || { echo "FAIL: the log does not show two stops with a state and two resumes"; slurm_dump "$tmp/pre.out"; fail=1; }
echo "ok   Restarts=$restarts; the protocol in the job log:"
grep -E "unlearn-slurm|stopped at|resum" "$tmp/pre.out" | sed 's/^/    /'

/usr/bin/python3 - "$tmp" <<'PY' || fail=1
import json, sys
import h5py, numpy as np
tmp = sys.argv[1]
def content(path):
    with h5py.File(path, "r") as f:
        attrs = {k: str(f.attrs[k]) for k in f.attrs if not k.startswith("provenance.")}
        tensors, tattrs = {}, {}
        def visit(n, o):
            if isinstance(o, h5py.Dataset):
                tensors[n] = o[()]
                tattrs[n] = {k: str(o.attrs[k]) for k in o.attrs}
        f.visititems(visit)
    return attrs, tensors, tattrs
a_attrs, a, a_t = content(tmp + "/ref.h5")
b_attrs, b, b_t = content(tmp + "/pre.h5")
assert sorted(a) == sorted(b) and len(a) > 0, (sorted(a), sorted(b))
diff = [k for k in a if a[k].dtype != b[k].dtype or not np.array_equal(a[k], b[k])]
assert not diff, "resumed job differs in %s" % diff
assert a_attrs == b_attrs and a_t == b_t, "attributes differ"
ra = json.load(open(tmp + "/ref.h5.report.json"))
rb = json.load(open(tmp + "/pre.h5.report.json"))
assert ra["resumed_from"] is None and rb["resumed_from"]["request"] == 1, (ra["resumed_from"], rb["resumed_from"])
it = rb["resumed_from"]["iteration"]
assert 0 < it < 12, it
# Everything but timings (phases, resources, CG seconds, the measured rate in the estimate), paths and the resume record.
def strip(r):
    r = dict(r)
    for k in ("phases", "resources", "config", "output_checkpoint", "resumed_from", "estimate"):
        r.pop(k)
    for q in r["request_reports"]:
        q.pop("phases")
        for h in q["cg"]["history"]:
            h.pop("seconds")
    return r
assert strip(ra) == strip(rb), "reports differ beyond timings"
assert len(rb["request_reports"][0]["cg"]["history"]) == 12
print("ok   resumed after CG iteration %d of 12; %d tensors and the report bit-identical to the uninterrupted job"
      % (it, len(a)))
PY
exit $fail
