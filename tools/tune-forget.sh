#!/usr/bin/env bash
# Hyperparameter search for the forget methods on the *tuning* canaries and the validation loss only (the
# evaluation canaries are never looked at): for each method and setting, unlearn the canary documents of a trained
# model and evaluate; print one markdown row per run. The rule that picked jobs/default/forget-*.ini: the lowest
# mean tuning-canary exposure among the settings whose validation perplexity rises by at most 5%.
# Usage: tools/tune-forget.sh MODEL.h5 DATASET.h5 WORKDIR   (2 ranks, TP = 2)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${UNLEARN_BIN:-${UNLEARN_BUILD_DIR:-$root/build}/src/app/unlearn}
model=$1 ds=$2 work=$3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
mpi=(mpiexec -n 2 --oversubscribe --bind-to none)
mkdir -p "$work"

# method | settings (forget options; the common ones below)
grid=(
  "newton-cg|--damping 0.1 --cg-max-iters 10"
  "newton-cg|--damping 0.01 --cg-max-iters 20"
  "newton-cg|--damping 0.01 --cg-max-iters 20 --step-policy backtrack --loss-budget 0.02"
  "fisher-removal|--damping 0.1 --step-policy backtrack --loss-budget 0.02"
  "fisher-removal|--damping 1 --step-policy backtrack --loss-budget 0.02"
  "fisher-forgetting|--damping 0.1 --noise 1e-6 --step-policy backtrack --loss-budget 0.02"
  "gradient-ascent|--ga-lr 1e-3 --ga-steps 10"
  "gradient-ascent|--ga-lr 3e-3 --ga-steps 10 --step-policy backtrack --loss-budget 0.02"
  "newton-cg|--damping 0.01 --cg-max-iters 20 --step-policy backtrack --loss-budget 0.01 --retain-sample 64"
  "fisher-forgetting|--damping 0.1 --noise 1e-10 --step-policy backtrack --loss-budget 0.02"
)
[ -f "$work/model.eval.json" ] || "${mpi[@]}" "$bin" eval --tp 2 --checkpoint "$model" --dataset "$ds" \
  --forget-canaries --bootstrap 200 --output "$work/model.eval.json" --log-level warn
i=0
for g in "${grid[@]}"; do
  method=${g%%|*} opts=${g#*|}
  i=$((i + 1))
  out=$work/run$i.h5
  if [ ! -f "$out.eval.json" ]; then
    rm -f "$out" "$out.report.json"
    common=(--retain-sample 32)
    [[ $opts == *--retain-sample* ]] && common=()
    # shellcheck disable=SC2086
    "${mpi[@]}" "$bin" forget --tp 2 --checkpoint "$model" --dataset "$ds" --forget-canaries "${common[@]}" \
      --method "$method" $opts --output "$out" --log-level warn
    "${mpi[@]}" "$bin" eval --tp 2 --checkpoint "$out" --original "$model" --dataset "$ds" \
      --forget-report "$out.report.json" --bootstrap 200 --output "$out.eval.json" --log-level warn
  fi
  echo "$method|$opts|$out"
done >"$work/runs.txt"
/usr/bin/python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
orig = json.load(open(work + "/model.eval.json"))
v0 = orig["perplexity"]["validation"]["perplexity"]
print("| method | settings | tuning exposure (bits) | validation perplexity | eta | seconds |")
print("|---|---|---|---|---|---|")
print("| (trained model) | | %.2f | %.3f | | |" % (orig["exposure"]["tuning_rank_mean"]["value"], v0))
best = {}
for line in open(work + "/runs.txt"):
    method, opts, out = line.strip().split("|")
    ev, rep = json.load(open(out + ".eval.json")), json.load(open(out + ".report.json"))
    t, v = ev["exposure"]["tuning_rank_mean"]["value"], ev["perplexity"]["validation"]["perplexity"]
    rise = 100 * (v / v0 - 1)
    eta = rep["request_reports"][0]["eta"]
    print("| %s | `%s` | %.2f | %.3f (%+.1f%%) | %.3g | %.0f |" % (method, opts, t, v, rise, eta, rep["phases"]["total_s"]))
    if rise <= 5 and (method not in best or t < best[method][0]):
        best[method] = (t, opts)
print()
for m, (t, opts) in best.items():
    print("- chosen for %s: `%s` (tuning exposure %.2f bits)" % (m, opts, t))
PY
