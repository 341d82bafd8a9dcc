#!/usr/bin/env bash
# Slurm, one node: slurm/forget-cpu.sbatch submitted with sbatch (srun --mpi=pmix, 2 ranks, TP = 2) removes the
# canaries of the tiny fixture; the output checkpoint and report are complete and bit-identical to the same run under
# mpiexec; then slurm/submit-sweep.sh runs a 2-row sweep (TP 1 x DP 2, TP 2 x DP 1) as a job array whose tasks write
# their reports to their own directories and agree on the update; tools/sweep-report.py turns them into a CSV and a
# plot. Env: UNLEARN_BIN, MPIEXEC.
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
export UNLEARN_SLURM_DIR=$repo/slurm UNLEARN_BIN=$bin

opts=(--checkpoint "$tmp/init.h5" --dataset "$tmp/ds.h5" --forget-canaries --retain-sample 12 --method newton-cg
      --curvature ggn --damping 0.01 --cg-max-iters 5)
t=$(slurm_now)
id=$(UNLEARN_OUTPUT=$tmp/one.h5 slurm_submit -n 2 -t 5 -o "$tmp/one.out" -D "$tmp" "$repo/slurm/forget-cpu.sbatch" \
     --tp 2 "${opts[@]}") || { slurm_dump; exit 1; }
slurm_wait_done "$id" 180 "$t" || { slurm_dump "$tmp/one.out"; exit 1; }
echo "ok   sbatch forget-cpu.sbatch: job $id completed"
grep -Eq "cg +5 +rel. residual" "$tmp/one.out" && grep -q "unlearn-slurm: done: $tmp/one.h5" "$tmp/one.out" \
  || { echo "FAIL: the job log lacks the CG iterations or the done line"; slurm_dump "$tmp/one.out"; fail=1; }
check "same run under mpiexec" 0 "wrote" -- "${MPIEXEC:-mpiexec}" -n 2 --oversubscribe --bind-to none "$bin" forget \
  --tp 2 "${opts[@]}" --output "$tmp/ref.h5"

/usr/bin/python3 - "$tmp" <<'PY' || fail=1
import json, sys
import h5py, numpy as np
tmp = sys.argv[1]
def tensors(path):
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out
one, ref, init = tensors(tmp + "/one.h5"), tensors(tmp + "/ref.h5"), tensors(tmp + "/init.h5")
assert sorted(one) == sorted(ref) == sorted(init) and len(one) > 0, (sorted(one), sorted(init))
assert all(np.isfinite(v).all() for v in one.values() if v.dtype.kind == "f")
assert any(not np.array_equal(one[k], init[k]) for k in one), "the update changed nothing"
same = [k for k in one if np.array_equal(one[k], ref[k])]
assert len(same) == len(one), "srun and mpiexec differ in %s" % sorted(set(one) - set(same))
r = json.load(open(tmp + "/one.h5.report.json"))
assert (r["world_size"], r["tp"], r["dp"]) == (2, 2, 1), r
assert r["placement"] == [{"host": "n1", "tp_rank": 0, "dp_rank": 0}, {"host": "n1", "tp_rank": 1, "dp_rank": 0}], \
    r["placement"]
q = r["request_reports"][0]
assert q["cg"]["iterations"] == 5 and q["forget_loss_after"] > q["forget_loss_before"], q
assert r["resumed_from"] is None and r["output_digest"] == json.load(open(tmp + "/ref.h5.report.json"))["output_digest"]
print("ok   output and report: %d tensors bit-identical to mpiexec, placement n1 x 2, forget loss %.4f -> %.4f"
      % (len(one), q["forget_loss_before"], q["forget_loss_after"]))
PY

# A sweep: two layouts of the same problem, one array of two tasks (same node count and ranks per node).
cat >"$tmp/sweep.txt" <<EOF
# name  tp dp nodes checkpoint       options of the row
tp1dp2  1  2  1     $tmp/init.h5
tp2dp1  2  1  1     $tmp/init.h5     --log-level info
EOF
t=$(slurm_now)
ids=$(cd "$tmp" && UNLEARN_SWEEP_DIR=$tmp/sweep UNLEARN_SBATCH_ARGS="-t 5 -o $tmp/sweep-%A_%a.out" \
      "$repo/slurm/submit-sweep.sh" "$tmp/sweep.txt" --dataset "$tmp/ds.h5" --forget-canaries --retain-sample 12 \
      --method newton-cg --curvature ggn --damping 0.01 --cg-max-iters 5) || { slurm_dump; exit 1; }
[ "$(wc -l <<<"$ids")" -eq 1 ] || { echo "FAIL: expected one array job, got: $ids"; exit 1; }
slurm_wait_array "$ids" 2 240 || { slurm_dump "$tmp"/sweep-*.out; exit 1; }
echo "time sweep of 2 tasks: submit->end $(slurm_secs "$t" "$(slurm_now)") s"
/usr/bin/python3 - "$tmp" <<'PY' || { slurm_dump "$tmp"/sweep-*.out; fail=1; }
import json, sys
tmp = sys.argv[1]
a = json.load(open(tmp + "/sweep/tp1dp2/forget.h5.report.json"))
b = json.load(open(tmp + "/sweep/tp2dp1/forget.h5.report.json"))
assert (a["tp"], a["dp"], b["tp"], b["dp"]) == (1, 2, 2, 1), (a["tp"], a["dp"], b["tp"], b["dp"])
assert [p["dp_rank"] for p in a["placement"]] == [0, 1] and [p["tp_rank"] for p in b["placement"]] == [0, 1]
assert open(tmp + "/sweep/tp2dp1/row").read().split()[:4] == ["tp2dp1", "2", "1", "1"]
# Same problem, other layout (float64): the updates agree to rounding.
assert abs(a["update_norm"] - b["update_norm"]) <= 1e-10 * a["update_norm"], (a["update_norm"], b["update_norm"])
print("ok   sweep: per-task reports tp1dp2 and tp2dp1, update norms %.15g and %.15g"
      % (a["update_norm"], b["update_norm"]))
PY
check "sweep-report CSV and plot" 0 "2 rows" -- /usr/bin/python3 "$repo/tools/sweep-report.py" "$tmp/sweep"
/usr/bin/python3 - "$tmp" <<'PY' || fail=1
import csv, sys
tmp = sys.argv[1]
rows = {r["name"]: r for r in csv.DictReader(open(tmp + "/sweep/sweep.csv"))}
assert sorted(rows) == ["tp1dp2", "tp2dp1"], rows
assert (rows["tp1dp2"]["dp"], rows["tp2dp1"]["tp"], rows["tp2dp1"]["nodes"]) == ("2", "2", "1"), rows
assert all(float(r["cg_iteration_s"]) > 0 and r["cg_iterations"] == "5" for r in rows.values()), rows
assert open(tmp + "/sweep/scaling.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
print("ok   sweep.csv: s per CG iteration tp1dp2 %.3f, tp2dp1 %.3f; scaling.png"
      % (float(rows["tp1dp2"]["cg_iteration_s"]), float(rows["tp2dp1"]["cg_iteration_s"])))
PY
exit $fail
