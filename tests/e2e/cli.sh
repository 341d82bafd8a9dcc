#!/usr/bin/env bash
# The executable as a user meets it: --help lists the commands, each command has --help, and bad input gives
# one clear message and exit code 1 on every rank (2 ranks).
set -u
bin=${UNLEARN_BIN:?} mpi="${MPIEXEC:-mpiexec} -n 2 --oversubscribe --bind-to none"
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

source "$(dirname "${BASH_SOURCE[0]}")/../common/check.sh"
count_errors() { grep -c "error:" "$tmp/out"; }

check help 0 "Commands:" -- "$bin" --help
cp "$tmp/out" "$tmp/help"
for c in info bench; do
  grep -q "^  $c " "$tmp/help" || { echo "FAIL: --help does not list $c"; fail=1; }
  check "$c --help" 0 "Usage: unlearn $c" -- "$bin" "$c" --help
done
check version 0 "LibTorch" -- "$bin" --version
check "no command" 1 "no command given" -- "$bin"
check "unknown command" 1 "unknown command 'frobnicate'" -- $mpi "$bin" frobnicate
[ "$(count_errors)" -eq 1 ] || { echo "FAIL: expected one error line from 2 ranks"; cat "$tmp/out"; fail=1; }
check "tp does not divide" 1 "--tp 3 does not divide the world size 2" -- $mpi "$bin" info --tp 3
[ "$(count_errors)" -eq 1 ] || { echo "FAIL: expected one error line from 2 ranks"; cat "$tmp/out"; fail=1; }
check "unknown option" 1 "unrecognised option|unrecognized option" -- $mpi "$bin" info --bogus
check "missing config" 1 "cannot open config file '/nonexistent.ini'" -- $mpi "$bin" info --config /nonexistent.ini
check "unwritable metrics file" 1 "cannot open metrics file '/nonexistent/m.jsonl'" -- $mpi "$bin" info \
  --metrics /nonexistent/m.jsonl
expect_one_error
check "bad size" 1 "--max-bytes: unknown size suffix" -- $mpi "$bin" bench comm --max-bytes 4X
check "bad log level" 1 "unknown log level 'loud'" -- "$bin" info --log-level loud

printf 'tp = 2\nfrobnicate = 1\n' >"$tmp/bad.ini"
check "config file with unknown key" 1 "frobnicate" -- "$bin" info --config "$tmp/bad.ini"
printf 'tp = 2\nthreads = 1\n' >"$tmp/good.ini"
check "config file read" 0 "tp += 2" -- $mpi "$bin" info --config "$tmp/good.ini"
check "command line overrides config" 0 "tp += 1" -- $mpi "$bin" info --config "$tmp/good.ini" --tp 1
check "info placement table" 0 "rank +tp_rank +dp_rank" -- $mpi "$bin" info --tp 2
check "metrics file" 0 "grid: world 2" -- $mpi "$bin" info --metrics "$tmp/m.jsonl"
grep -q '"event": "start"' "$tmp/m.jsonl" && grep -q '"config": {' "$tmp/m.jsonl" && grep -q '"event": "end"' "$tmp/m.jsonl" \
  || { echo "FAIL: metrics file lacks start/config/end records"; cat "$tmp/m.jsonl"; fail=1; }
# The numerics that decide bit-identity (BLAS library, kernel set, its environment) are in every output.
grep -q '"numerics": "[^"]*BLAS' "$tmp/m.jsonl" || { echo "FAIL: the start record lacks numerics"; fail=1; }
check "bench comm small" 0 "ratio raw/ours" -- $mpi "$bin" bench comm --min-bytes 4K --max-bytes 16K --reps 3 --warmup 1
check "bench model tiny" 0 "\\| tiny \\(B 2 x T 16\\) \\| 1 \\|" -- $mpi "$bin" bench model --tp 2 --sizes tiny \
  --reps 1 --tp-rounds 1 --batch-shape 2x16
grep -q "Woodbury product m = 8" "$tmp/out" || { echo "FAIL bench model tiny: no Woodbury table"; fail=1; }
# The TP row replays the product's collectives (a count > 0 and their bytes) for the fraction's ceiling, and gives
# each rank's time inside collectives during the products.
grep -Eq "\| [1-9][0-9]* \([0-9.]+ MiB\) \| [0-9.]+ \| [0-9.]+ \([0-9.]+-[0-9.]+\) \| [0-9.]+ / [0-9.]+ \|" "$tmp/out" \
  || { echo "FAIL bench model tiny: no collectives replayed for the TP ceiling"; fail=1; }
check "bad batch shape" 1 "--batch-shape: expected ROWSxPOSITIONS" -- $mpi "$bin" bench model --batch-shape 16x
expect_one_error
check "bad bench device" 1 "--device must be cpu, cuda or cuda:N" -- "$bin" bench model --device gpu
if "$bin" info 2>&1 | grep -q "^LibTorch .*(no CUDA device)"; then  # here: a clear error, not a LibTorch one
  check "bench device without CUDA" 1 "LibTorch sees no CUDA device" -- "$bin" bench model --device cuda --sizes tiny
fi
# bench newton at TP = 2 solves the system the Python peers solve (same checkpoint, formula batches; float64): the
# optimised peer's ‖x‖ after 4 CG iterations on the damped exact Hessian agrees to 1e-10 (an independent oracle of
# the whole Newton step: forget gradient, retain Hessian products, CG).
check "init float64 model" 0 "wrote" -- "$bin" init --d-model 32 --n-heads 4 --n-layers 2 --d-ff 64 --max-positions 32 \
  --dtype float64 --init-std 0.1 --output "$tmp/bn.h5"
"$bin" inspect "$tmp/bn.h5" 2>&1 | grep -q "provenance.numerics .*BLAS" \
  || { echo "FAIL: the checkpoint lacks provenance.numerics"; fail=1; }
check "bench newton tp 2" 0 "4 \(max_iterations\)" -- $mpi "$bin" bench newton --tp 2 --checkpoint "$tmp/bn.h5" \
  --cg-iters 4 --retain-rows 3 --forget-rows 1 --metrics "$tmp/bn.jsonl"
/usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/../../tools/peers/newton_peers.py" "$tmp/bn.h5" --cg-iters 4 \
  --retain-rows 3 --forget-rows 1 --threads 1 --peers optimised,naive --json "$tmp/peers.json" > "$tmp/peers.log" 2>&1 \
  || { echo "FAIL: newton_peers.py"; cat "$tmp/peers.log"; fail=1; }
/usr/bin/python3 - "$tmp" <<'PY' || fail=1
import json, sys
tmp = sys.argv[1]
ours = [json.loads(l) for l in open(tmp + "/bn.jsonl") if '"bench_newton"' in l][0]
peers = json.load(open(tmp + "/peers.json"))["peers"]
for name, p in peers.items():
    assert p["cg_iterations"] == ours["cg_iterations"] == 4, (name, p["cg_iterations"], ours["cg_iterations"])
    err = abs(p["update_norm"] - ours["update_norm"]) / ours["update_norm"]
    assert err <= 1e-10, (name, p["update_norm"], ours["update_norm"])
print("ok   bench newton = Python peers: |x| %.15g (%s)" % (ours["update_norm"], ", ".join(sorted(peers))))
PY
exit $fail
