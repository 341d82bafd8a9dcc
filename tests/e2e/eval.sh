#!/usr/bin/env bash
# `unlearn eval` end to end on real text (fortunes-min) with a tiny GPT-2 unlearned by Fisher Removal: the report's
# keys; its forget perplexity equals exp(forget loss after) of the forget report (two code paths: token scoring
# vs the solver's loss); TP = 2 equals TP = 1 and DP = 2; a rerun is bit-identical apart from timings; the
# markdown table; no canary text; bad input fails with one message. Env: UNLEARN_BIN, MPIEXEC.
set -u
bin=${UNLEARN_BIN:?} mpi2="${MPIEXEC:-mpiexec} -n 2 --oversubscribe --bind-to none"
source "$(dirname "${BASH_SOURCE[0]}")/../common/check.sh"
fortunes_workspace riddles

check "prepare-data" 0 "wrote" -- "$bin" prepare-data --corpus fortunes --corpus-dir "$tmp/fortunes" --seed 3 \
  --canaries 3 --canary-tuning 1 --canary-repeats 4 --canary-references 60 --output "$tmp/ds.h5"
check "init" 0 "wrote" -- $mpi2 "$bin" init --tp 2 --d-model 32 --n-heads 4 --n-layers 2 --d-ff 64 \
  --max-positions 64 --dtype float64 --init-std 0.1 --output "$tmp/init.h5"
check "forget" 0 "wrote" -- $mpi2 "$bin" forget --tp 2 --checkpoint "$tmp/init.h5" --dataset "$tmp/ds.h5" \
  --forget-canaries --retain-sample 12 --damping 0.01 --method fisher-removal --output "$tmp/fr.h5"
common=(--checkpoint "$tmp/fr.h5" --original "$tmp/init.h5" --dataset "$tmp/ds.h5" --forget-report "$tmp/fr.h5.report.json"
        --bootstrap 200)
check "eval np2 tp2" 0 "membership inference AUC" -- $mpi2 "$bin" eval --tp 2 "${common[@]}" --output "$tmp/e2.json" \
  --table "$tmp/e2.md"
check "eval np2 dp2" 0 "wrote" -- $mpi2 "$bin" eval "${common[@]}" --output "$tmp/d2.json"
check "eval np1" 0 "wrote" -- "$bin" eval "${common[@]}" --output "$tmp/e1.json"
check "eval np2 tp2 again" 0 "wrote" -- $mpi2 "$bin" eval --tp 2 "${common[@]}" --output "$tmp/e2b.json"
check "eval of the original, canary documents" 0 "wrote" -- "$bin" eval --checkpoint "$tmp/init.h5" \
  --dataset "$tmp/ds.h5" --forget-canaries --bootstrap 200 --output "$tmp/orig.json"
/usr/bin/python3 - "$tmp" <<'PY' || fail=1
import json, math, sys
tmp = sys.argv[1]
ld = lambda n: json.load(open(tmp + "/" + n))
e2, d2, e1, e2b, orig, fr = (ld(n) for n in ("e2.json", "d2.json", "e1.json", "e2b.json", "orig.json", "fr.h5.report.json"))
for key in ("config", "checkpoint_digest", "perplexity", "membership_inference", "exposure", "retain_kl_per_token",
            "update_norm"):
    assert key in e2, key
assert "BLAS" in e2["numerics"] and e2["numerics"] == fr["numerics"], (e2["numerics"], fr["numerics"])
for s in ("validation", "test", "forget", "retain"):
    assert e2["perplexity"][s]["tokens"] > 0, s
for a in ("loss", "min_k", "zlib"):
    m = e2["membership_inference"][a]
    assert 0 <= m["lower"] <= m["value"] <= m["upper"] <= 1, (a, m)
ex = e2["exposure"]
for k in ("evaluation_rank_mean", "evaluation_extrapolated_mean", "heldout_rank_mean"):
    assert ex[k]["lower"] <= ex[k]["value"] <= ex[k]["upper"], k
# Two code paths for one number: eval's token scores and the forget command's loss on the same windows.
q = fr["request_reports"][0]
want = math.exp(q["forget_loss_after"])
got = e2["perplexity"]["forget"]["perplexity"]
assert abs(got - want) <= 1e-9 * want, (got, want)
assert e2["perplexity"]["forget"]["documents"] == q["forget_documents"]
# The update norm is the forget report's (the whole update of one request).
assert abs(e2["update_norm"] - fr["update_norm"]) <= 1e-9 * fr["update_norm"], (e2["update_norm"], fr["update_norm"])
# Layouts agree (float64); a rerun is bit-identical apart from timings.
def flat(d, p=""):
    if isinstance(d, dict):
        for k, v in d.items():
            if k in ("config", "scoring_s", "total_s", "seconds", "world_size", "tp", "dp"):
                continue
            yield from flat(v, p + "/" + k)
    else:
        yield p, d
a, b, c = dict(flat(e2)), dict(flat(e1)), dict(flat(d2))
for k, v in a.items():
    for other in (b, c):
        w = other[k]
        if "/extrapolated" in k and k.split("/")[-1] in ("location", "scale", "shape"):
            continue  # ill-conditioned; the likelihood and the exposures are compared
        # The fit is iterative: scores 1e-13 apart can stop it 1e-8 apart.
        tol = 1e-6 if "extrapolated" in k else 1e-9
        for x, y in zip(v, w) if isinstance(v, list) else [(v, w)]:
            if isinstance(x, float):
                assert abs(x - y) <= tol * max(1.0, abs(x)), (k, x, y)
            else:
                assert x == y, (k, x, y)
        if isinstance(v, list) or isinstance(v, float):
            continue
        else:
            assert v == w, (k, v, w)
assert dict(flat(e2b)) == a, "rerun differs"
# Unlearning raised the forget perplexity over the original's.
assert got > orig["perplexity"]["forget"]["perplexity"]
print("ok   eval reports: forget perplexity %.4f = exp(forget loss after) %.4f; layouts and rerun agree" % (got, want))
PY
grep -q "| validation |" "$tmp/e2.md" && grep -q "membership-inference AUC" "$tmp/e2.md" || { echo "FAIL: table"; fail=1; }
grep -q "my secret number" "$tmp"/*.json "$tmp"/*.md && { echo "FAIL: canary text in an eval output"; fail=1; }

# Bad input: one message, no report.
check "two forget sets" 1 "at most one of" -- "$bin" eval --checkpoint "$tmp/fr.h5" --dataset "$tmp/ds.h5" \
  --forget-canaries --forget-ids 1 --output "$tmp/x.json"
check "not a forget report" 1 "not an .unlearn forget. report" -- $mpi2 "$bin" eval --checkpoint "$tmp/fr.h5" \
  --dataset "$tmp/ds.h5" --forget-report "$tmp/e1.json" --output "$tmp/x.json"
expect_one_error
check "unknown id" 1 "no document with id 999999" -- $mpi2 "$bin" eval --checkpoint "$tmp/fr.h5" \
  --dataset "$tmp/ds.h5" --forget-ids 999999 --output "$tmp/x.json"
expect_one_error
check "small init" 0 "wrote" -- $mpi2 "$bin" init --d-model 16 --n-heads 4 --n-layers 1 \
  --d-ff 32 --max-positions 64 --output "$tmp/small.h5"
check "other architecture" 1 "another architecture" -- $mpi2 "$bin" eval --checkpoint "$tmp/fr.h5" \
  --original "$tmp/small.h5" --dataset "$tmp/ds.h5" --output "$tmp/x.json"
expect_one_error
[ ! -e "$tmp/x.json" ] || { echo "FAIL: a report was written despite an error"; fail=1; }
exit $fail
