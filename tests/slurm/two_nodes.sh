#!/usr/bin/env bash
# Slurm, two nodes on this machine (two slurmd, setup-notes section 6): slurm/forget-gpu.sbatch submitted with
# `-N 2 --ntasks-per-node=2` (no GPUs here: --gpus-per-node=0, MPI over TCP as between real nodes) runs TP = 2 inside
# a node and DP = 2 across the nodes. Checks the placement the report records (ranks 0,1 on n1 and 2,3 on n2,
# tp_rank = rank % 2, dp_rank = rank / 2), the node-local groups the grid found, and that the result equals a
# one-node `mpiexec -n 4` run of the same TP x DP: float64, norm-wise relative difference <= 1e-12 per tensor and per
# report number, everything else in the report identical. Env: UNLEARN_BIN, MPIEXEC.
set -u
bin=${UNLEARN_BIN:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/common/check.sh
source "$repo/tests/common/check.sh"
# shellcheck source=tests/slurm/cluster.sh
source "$here/cluster.sh"
fortunes_workspace riddles
slurm_cluster_start 2
slurm_fixture
export UNLEARN_SLURM_DIR=$repo/slurm UNLEARN_BIN=$bin UNLEARN_BACKEND=mpi

opts=(--checkpoint "$tmp/init.h5" --dataset "$tmp/ds.h5" --forget-canaries --retain-sample 12 --method newton-cg
      --curvature ggn --damping 0.01 --cg-max-iters 5)
# The two "nodes" share this host: Open MPI's shared-memory transport between them crashed (setup-notes section 6),
# so the job talks TCP on loopback, as real nodes would over their network.
t=$(slurm_now)
id=$(UNLEARN_OUTPUT=$tmp/two.h5 OMPI_MCA_btl=self,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo \
     slurm_submit -N 2 --ntasks-per-node=2 --gpus-per-node=0 --cpus-per-task=1 -t 5 -o "$tmp/two.out" -D "$tmp" \
     "$repo/slurm/forget-gpu.sbatch" "${opts[@]}") || { slurm_dump; exit 1; }
slurm_wait_done "$id" 240 "$t" || { slurm_dump "$tmp/two.out"; exit 1; }
echo "ok   sbatch -N 2 forget-gpu.sbatch: job $id completed on $(slurm_job_field "$id" NodeList)"
grep -q "grid: world 4 = dp 2 x tp 2, .*2 rank(s) on this node" "$tmp/two.out" \
  || { echo "FAIL: the grid did not find 2 ranks per node"; slurm_dump "$tmp/two.out"; fail=1; }
check "one node: mpiexec -n 4, TP 2 x DP 2" 0 "wrote" -- "${MPIEXEC:-mpiexec}" -n 4 --oversubscribe --bind-to none \
  "$bin" forget --tp 2 "${opts[@]}" --output "$tmp/one.h5"

/usr/bin/python3 - "$tmp" <<'PY' || fail=1
import json, sys
import h5py, numpy as np
tmp = sys.argv[1]
two = json.load(open(tmp + "/two.h5.report.json"))
one = json.load(open(tmp + "/one.h5.report.json"))
want = [{"host": h, "tp_rank": r % 2, "dp_rank": r // 2} for r, h in enumerate(["n1", "n1", "n2", "n2"])]
assert two["placement"] == want, two["placement"]
assert (two["world_size"], two["tp"], two["dp"]) == (4, 2, 2)
assert len({p["host"] for p in one["placement"]}) == 1, one["placement"]

def tensors(path):
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out
a, b = tensors(tmp + "/two.h5"), tensors(tmp + "/one.h5")
assert sorted(a) == sorted(b) and len(a) > 0
worst, same = 0.0, 0
for k in a:
    assert a[k].dtype == b[k].dtype == np.float64, (k, a[k].dtype)
    d = np.linalg.norm(a[k] - b[k]) / max(np.linalg.norm(b[k]), 1e-300)
    assert d <= 1e-12, (k, d)
    worst, same = max(worst, d), same + np.array_equal(a[k], b[k])

# Reports: numbers within 1e-12 (relative), everything else identical; timings, paths and placement left out.
skip = {"phases", "resources", "config", "output_checkpoint", "placement", "estimate", "output_digest", "seconds"}
stats = {"equal": 0, "close": 0}
def compare(x, y, where):
    if isinstance(x, dict):
        assert isinstance(y, dict) and set(x) == set(y), where
        for k in x:
            if k not in skip:
                compare(x[k], y[k], where + "." + k)
    elif isinstance(x, list):
        assert isinstance(y, list) and len(x) == len(y), where
        for i, (u, v) in enumerate(zip(x, y)):
            compare(u, v, "%s[%d]" % (where, i))
    elif isinstance(x, float) and not isinstance(x, bool):
        assert abs(x - y) <= 1e-12 * max(abs(x), abs(y), 1e-300), (where, x, y)
        stats["equal" if x == y else "close"] += 1
    else:
        assert x == y, (where, x, y)
        stats["equal"] += 1
compare(two, one, "report")
ident = two["output_digest"] == one["output_digest"]
print("ok   placement n1:(tp 0,1 dp 0) n2:(tp 0,1 dp 1); %d/%d tensors bit-identical to the one-node run, worst "
      "relative difference %.2e; report: %d values identical, %d within 1e-12; checkpoint digest %s"
      % (same, len(a), worst, stats["equal"], stats["close"], "identical" if ident else "differs"))
PY
exit $fail
