#!/usr/bin/env bash
# `unlearn forget` end to end on real text (fortunes-min) with a tiny initialised GPT-2: prepare a dataset with
# planted canaries, init a checkpoint, remove the canary documents with fisher-removal and newton-cg at 1 and 2
# ranks (TP = 2); the output checkpoints and reports exist, the report names documents by id only, the forget loss
# rises; gradient ascent, backtracking, sequential requests, --dry-run and the memory refusal work; a Newton-CG
# stopped after a CG iteration resumes bit-identically from its solver state (TP = 2, and DP = 2 with the solver
# vectors in DP chunks, which give the update of whole ones); bad input
# (unknown id, existing output) fails with one message. Env: UNLEARN_BIN, MPIEXEC.
set -u
bin=${UNLEARN_BIN:?} mpi2="${MPIEXEC:-mpiexec} -n 2 --oversubscribe --bind-to none"
source "$(dirname "${BASH_SOURCE[0]}")/../common/check.sh"
fortunes_workspace riddles

check "prepare-data" 0 "wrote" -- "$bin" prepare-data --corpus fortunes --corpus-dir "$tmp/fortunes" --seed 3 \
  --canaries 3 --canary-tuning 1 --canary-repeats 4 --canary-references 50 --output "$tmp/ds.h5"
check "init" 0 "wrote" -- $mpi2 "$bin" init --tp 2 --d-model 32 --n-heads 4 --n-layers 2 --d-ff 64 \
  --max-positions 64 --dtype float64 --init-std 0.1 --output "$tmp/init.h5"
common=(--checkpoint "$tmp/init.h5" --dataset "$tmp/ds.h5" --forget-canaries --retain-sample 12 --damping 0.01)
check "fisher-removal np1" 0 "wrote .*fr1.h5" -- "$bin" forget "${common[@]}" --method fisher-removal --output "$tmp/fr1.h5"
check "fisher-removal np2 tp2" 0 "wrote .*fr2.h5" -- $mpi2 "$bin" forget --tp 2 "${common[@]}" --method fisher-removal \
  --output "$tmp/fr2.h5"
check "newton-cg ggn np2 dp2" 0 "cg +[0-9]+ +rel. residual" -- $mpi2 "$bin" forget "${common[@]}" --method newton-cg \
  --curvature ggn --cg-max-iters 5 --output "$tmp/ncg.h5"
check "newton-cg ggn np2 dp2, solver vectors whole" 0 "wrote" -- $mpi2 "$bin" forget "${common[@]}" \
  --method newton-cg --curvature ggn --cg-max-iters 5 --solver-sharding none --output "$tmp/ncg-whole.h5"
check "fisher-forgetting np2 dp2" 0 "wrote" -- $mpi2 "$bin" forget "${common[@]}" --method fisher-forgetting \
  --noise 1e-8 --output "$tmp/ff-dp.h5"
check "newton-cg ggn, Jacobi-preconditioned, np2 dp2" 0 "cg +3 +rel. residual" -- $mpi2 "$bin" forget "${common[@]}" \
  --method newton-cg --curvature ggn --preconditioner diagonal --cg-max-iters 3 --output "$tmp/pcg.h5"
check "preconditioner without CG" 1 "preconditions CG: use it with newton-cg or --fisher-by-cg" -- $mpi2 "$bin" \
  forget "${common[@]}" --method fisher-removal --preconditioner diagonal --output "$tmp/x.h5"
expect_one_error
check "fisher-forgetting np2" 0 "wrote" -- $mpi2 "$bin" forget --tp 2 "${common[@]}" --method fisher-forgetting \
  --noise 1e-8 --output "$tmp/ff.h5"
check "fisher-forgetting diagonal noise np2" 0 "wrote" -- $mpi2 "$bin" forget --tp 2 "${common[@]}" \
  --method fisher-forgetting --noise-form diagonal --noise 1e-8 --output "$tmp/ffd.h5"
check "unknown noise form" 1 "unknown noise form 'golatkar' \(quartic-root or diagonal\)" -- $mpi2 "$bin" forget \
  "${common[@]}" --method fisher-forgetting --noise-form golatkar --output "$tmp/x.h5"
expect_one_error
/usr/bin/python3 - "$tmp" <<'PY' || fail=1
import json, sys
tmp = sys.argv[1]
r1 = json.load(open(tmp + "/fr1.h5.report.json"))
r2 = json.load(open(tmp + "/fr2.h5.report.json"))
ff = json.load(open(tmp + "/ff.h5.report.json"))
for key in ("method", "request_reports", "update_norm_per_tensor", "phases", "estimate", "input_digest",
            "output_digest", "config", "exposure_before", "exposure_after"):
    assert key in r1, key
for key in ("n_forget", "n_retain", "cg", "forget_document_ids", "stationarity_ratio", "retain_gradient_norm_after"):
    assert key in r1["request_reports"][0], key
q1 = r1["request_reports"][0]
assert q1["n_forget"] > 0 and q1["n_retain"] > q1["n_forget"], (q1["n_forget"], q1["n_retain"])
assert all(isinstance(i, int) for i in q1["forget_document_ids"])
assert q1["forget_loss_after"] > q1["forget_loss_before"], "removal must raise the forget loss"
# The same update at TP = 1 and TP = 2 (float64): layouts agree.
assert abs(r1["update_norm"] - r2["update_norm"]) <= 1e-9 * r1["update_norm"], (r1["update_norm"], r2["update_norm"])
# Resources: the communication of the requests and the peak memory of every rank (1 rank: only scalar reductions).
for r, ranks in ((r1, 1), (r2, 2)):
    u = r["resources"]
    for k in ("comm_seconds", "comm_fraction", "peak_rss_bytes"):
        assert 0 <= u[k]["min"] <= u[k]["mean"] <= u[k]["max"], (k, u[k])
    assert u["comm_fraction"]["max"] <= 1 and u["peak_rss_bytes"]["min"] > 10 * 2**20, u
    assert u["comm_calls"] > 0 and u["wall_s"] > 0, u
assert r2["resources"]["comm_bytes"] > r1["resources"]["comm_bytes"], (r1["resources"], r2["resources"])
f1 = ff["request_reports"][0]
# Design 3.4: solver vectors and Fisher rows in DP chunks give the update of whole ones and of TP = 2 (float64).
ncg, whole, ffdp = (json.load(open(tmp + n)) for n in ("/ncg.h5.report.json", "/ncg-whole.h5.report.json",
                                                       "/ff-dp.h5.report.json"))
assert (ncg["config"]["solver-sharding"], whole["config"]["solver-sharding"]) == ("dp", "none")
assert ncg["estimate"]["chunked_vectors"] > 0 and whole["estimate"]["chunked_vectors"] == 0
assert ncg["estimate"]["vectors_bytes"] < whole["estimate"]["vectors_bytes"]
assert abs(ncg["update_norm"] - whole["update_norm"]) <= 1e-10 * whole["update_norm"], (ncg["update_norm"], whole["update_norm"])
fd1 = ffdp["request_reports"][0]
for k in ("step_norm", "noise_norm", "noise_norm_inside_span_u"):
    assert abs(fd1[k] - f1[k]) <= 1e-10 * f1[k], (k, fd1[k], f1[k])
assert ffdp["estimate"]["fisher_bytes"] < ff["estimate"]["fisher_bytes"], (ffdp["estimate"], ff["estimate"])
# Jacobi-preconditioned CG (its correctness is SolverDense.JacobiPreconditionedCgEqualsDenseSolve): the option
# reaches the solve, whose residuals differ from the unpreconditioned run's (same options otherwise, DP 2).
pcg = json.load(open(tmp + "/pcg.h5.report.json"))
h_pc = [h["relative_residual"] for h in pcg["request_reports"][0]["cg"]["history"]]
h_no = [h["relative_residual"] for h in ncg["request_reports"][0]["cg"]["history"]][:3]
assert pcg["config"]["preconditioner"] == "diagonal" and len(h_pc) == 3 and h_pc != h_no, (h_pc, h_no)
assert f1["noise_norm"] > 0 and f1["noise_norm_outside_span_u"] > f1["noise_norm_inside_span_u"]
ffd = json.load(open(tmp + "/ffd.h5.report.json"))
d1 = ffd["request_reports"][0]
assert (ff["noise_form"], ffd["noise_form"], ffd["noise_scale"]) == ("quartic-root", "diagonal", 1e-8)
# Same removal step, different noise: the forms differ only in the noise term.
assert abs(d1["step_norm"] - f1["step_norm"]) <= 1e-12 * f1["step_norm"], (d1["step_norm"], f1["step_norm"])
assert d1["noise_norm"] > 0 and abs(d1["noise_norm"] - f1["noise_norm"]) > 1e-6 * f1["noise_norm"]
print("ok   reports: forget loss %.4f -> %.4f, update norm tp1 %.12g tp2 %.12g"
      % (q1["forget_loss_before"], q1["forget_loss_after"], r1["update_norm"], r2["update_norm"]))
PY
grep -q "my secret number" "$tmp"/*.report.json && { echo "FAIL: a report holds canary text"; fail=1; }
check "unknown forget id" 1 "no document with id 999999" -- $mpi2 "$bin" forget --checkpoint "$tmp/init.h5" \
  --dataset "$tmp/ds.h5" --forget-ids 999999 --output "$tmp/x.h5"
expect_one_error
[ ! -e "$tmp/x.h5" ] || { echo "FAIL: output written despite the error"; fail=1; }
# Gradient ascent, backtracking, sequential requests, dry run and the memory refusal.
check "gradient-ascent np2" 0 "wrote" -- $mpi2 "$bin" forget --tp 2 "${common[@]}" --method gradient-ascent \
  --ga-lr 0.05 --ga-steps 3 --output "$tmp/ga.h5"
check "backtrack np2" 0 "backtrack: eta .* accepted" -- $mpi2 "$bin" forget --checkpoint "$tmp/init.h5" \
  --dataset "$tmp/ds.h5" --forget-canaries --retain-sample 12 --method fisher-removal --damping 1e-6 --step-policy backtrack --loss-budget 0.02 --backtrack-max 30 --output "$tmp/bt.h5"
check "two sequential requests np2" 0 "request 2/2" -- $mpi2 "$bin" forget --tp 2 "${common[@]}" \
  --canary-requests 2 --method fisher-removal --output "$tmp/seq.h5"
check "dry run" 0 "estimate per rank .*" -- $mpi2 "$bin" forget --tp 2 "${common[@]}" --method newton-cg --dry-run
[ ! -e "$tmp/dry.h5" ] && ! grep -q "forget set:" "$tmp/out" || { echo "FAIL: --dry-run loaded or wrote"; fail=1; }
check "memory limit refuses before loading" 1 "needs .* per rank, more than the 1 KiB available" -- $mpi2 "$bin" \
  forget "${common[@]}" --method fisher-removal --memory-limit 1K --output "$tmp/big.h5"
expect_one_error
[ ! -e "$tmp/big.h5" ] || { echo "FAIL: output written despite the refusal"; fail=1; }
/usr/bin/python3 - "$tmp" <<'PY' || fail=1
import json, sys
tmp = sys.argv[1]
ga = json.load(open(tmp + "/ga.h5.report.json"))["request_reports"][0]
assert ga["forget_loss_after"] > ga["forget_loss_before"], "gradient ascent must raise the forget loss"
bt = json.load(open(tmp + "/bt.h5.report.json"))["request_reports"][0]
tries = bt["step_policy_tries"]
assert len(tries) > 1 and tries[-1]["accepted"] and not tries[0]["accepted"], tries
assert all(t2["eta"] == t1["eta"] / 2 for t1, t2 in zip(tries, tries[1:]))
assert bt["retain_loss_after"] <= bt["retain_loss_before"] * 1.02 + 1e-12, bt
seq = json.load(open(tmp + "/seq.h5.report.json"))
r1, r2 = seq["request_reports"]
assert seq["requests"] == 2 and not set(r1["forget_document_ids"]) & set(r2["forget_document_ids"])
assert r2["n_retain"] < r1["n_retain"] + r1["n_forget"], "request 2's retain set must not hold request 1's documents"
print("ok   reports: gradient ascent forget loss %.3f -> %.3f; backtrack %d tries to eta %g; 2 requests"
      % (ga["forget_loss_before"], ga["forget_loss_after"], len(tries), bt["eta"]))
PY
# Solver state: stop after CG iteration 3 with its state, resume, and end bit-identical to an uninterrupted run;
# at TP = 2 and at DP = 2 (CG vectors in DP chunks, gathered into the state file).
for tp in 2 1; do
ncg=(--tp $tp --checkpoint "$tmp/init.h5" --dataset "$tmp/ds.h5" --forget-canaries --retain-sample 12
     --method newton-cg --curvature ggn --damping 0.01 --cg-max-iters 6 --cg-rtol 1e-12)
check "newton-cg tp $tp uninterrupted" 0 "wrote" -- $mpi2 "$bin" forget "${ncg[@]}" --output "$tmp/ncgA$tp.h5"
check "newton-cg tp $tp stops after iteration 3" 0 "stopped at request 1, CG iteration 3 with its state" -- $mpi2 \
  "$bin" forget "${ncg[@]}" --state-dir "$tmp/st$tp" --state-every 2 --stop-after-iteration 3 --output "$tmp/ncgB$tp.h5"
[ ! -e "$tmp/ncgB$tp.h5" ] && [ -e "$tmp/st$tp/cg-r000-i000002.h5" ] && [ -e "$tmp/st$tp/cg-r000-i000003.h5" ] \
  || { echo "FAIL: expected states at iterations 2 and 3 and no output"; ls "$tmp/st$tp"; fail=1; }
check "newton-cg tp $tp resumes" 0 "cg resumes after iteration 3" -- $mpi2 "$bin" forget "${ncg[@]}" \
  --state-dir "$tmp/st$tp" --state-every 2 --resume --output "$tmp/ncgB$tp.h5"
done
check "resume with other options" 1 "cannot resume from .*other unlearning options" -- $mpi2 "$bin" forget \
  "${ncg[@]}" --seed 99 --state-dir "$tmp/st1" --resume --output "$tmp/ncgC.h5"
expect_one_error
/usr/bin/python3 - "$tmp" <<'PY' || fail=1
import json, sys
import h5py, numpy as np
tmp = sys.argv[1]
def content(path):
    with h5py.File(path, "r") as f:
        attrs = {k: str(f.attrs[k]) for k in f.attrs if not k.startswith("provenance.")}
        tensors = {}
        f.visititems(lambda n, o: tensors.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return attrs, tensors
for tp in (2, 1):
    a_attrs, a = content(tmp + "/ncgA%d.h5" % tp)
    b_attrs, b = content(tmp + "/ncgB%d.h5" % tp)
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a), "resumed CG differs at tp %d" % tp
    assert a_attrs == b_attrs
    rb = json.load(open(tmp + "/ncgB%d.h5.report.json" % tp))
    assert rb["resumed_from"] == {"request": 1, "iteration": 3}, rb["resumed_from"]
    assert len(rb["request_reports"][0]["cg"]["history"]) == 6
    print("ok   resumed Newton-CG at tp %d is bit-identical to the uninterrupted run (%d tensors)" % (tp, len(a)))
PY
check "an id in two requests" 1 "is in more than one request" -- "$bin" forget --checkpoint "$tmp/init.h5" \
  --dataset "$tmp/ds.h5" --forget-ids "1,2;2,3" --output "$tmp/z.h5"
check "no forget set" 1 "no forget set" -- "$bin" forget --checkpoint "$tmp/init.h5" --dataset "$tmp/ds.h5" --output "$tmp/y.h5"
check "existing output refused" 1 "exist" -- "$bin" forget "${common[@]}" --output "$tmp/fr1.h5"
exit $fail
