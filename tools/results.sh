#!/usr/bin/env bash
# Regenerates docs/results.md and docs/results/*.{md,png}: the paper's comparison (arXiv 2403.10557) on real
# corpora. For each configuration (corpus, canaries, repetitions, training steps): prepare the dataset with planted
# canaries, train the model of jobs/default on 2 ranks (TP = 2), train the retrain-from-scratch reference without the
# canary documents, unlearn the canary documents with Newton-CG, Fisher Removal, Fisher Forgetting and gradient ascent
# (the hyperparameters of jobs/default/forget-*.ini, chosen on the tuning canaries and validation loss of the default
# corpus) and, on one configuration, as three sequential requests; evaluate everything with `unlearn eval`.
# Reported exposures are of the evaluation canaries.
#
# Usage: tools/results.sh            (about 50 minutes on an idle 2-core development machine)
# Env: UNLEARN_RESULTS_OUT (work directory, default out/results), UNLEARN_RESULTS_STEPS (training steps for every
# configuration instead of its own: a smoke test of the pipeline, and then docs/ is not touched),
# UNLEARN_RESULTS_CONFIGS (names of the configurations to run, default all), UNLEARN_BUILD_DIR, UNLEARN_BIN.
# Trained models in the work directory are reused, so a rerun only repeats unlearning and evaluation.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${UNLEARN_BUILD_DIR:-$root/build}
work=${UNLEARN_RESULTS_OUT:-$root/out/results}
smoke_steps=${UNLEARN_RESULTS_STEPS:-}
bin=${UNLEARN_BIN:-$build/src/app/unlearn}  # UNLEARN_BIN: a prebuilt binary (then nothing is built)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
mpi=(mpiexec -n 2 --oversubscribe --bind-to none)
[ -n "${UNLEARN_BIN:-}" ] || cmake --build "$build" -j 2 --target unlearn >/dev/null
"$root/tools/fetch-corpora.sh" kjv notmuch
mkdir -p "$work"
start=$(date +%s)

# name corpus max-documents canaries tuning-canaries repetitions steps retain-sample(0: the method's own).
# A canary is memorised only after many sightings (repetitions x epochs), and the forget set (every document
# holding a canary) must stay a small share of the training documents, so short records are what makes a
# repetition count affordable. The book: the first 1000 verses of Genesis, one document per verse (144K byte
# tokens; 800 steps of 16 x 128 tokens are about 11 epochs), at two repetition counts. The real e-mail: all
# of the notmuch test corpus (237 training messages, 0.5M tokens, 1500 steps are about 6.6 epochs), 4 canaries
# repeated 10 times (17 % of the messages). Messages are long (2200 tokens on average), so its retain sample is 16
# messages (about 35K tokens, still more text than the default's 64 fortunes or 64 verses).
configs=(
  "kjv-verses-r20 kjv-verses 1000 6 2 20 800 0"
  "kjv-verses-r5 kjv-verses 1000 6 2 5 800 0"
  "notmuch-r10 notmuch 0 4 1 10 1500 16"
)
# UNLEARN_RESULTS_CONFIGS="kjv-r20 ..." runs a subset (the document then lists only those).
if [ -n "${UNLEARN_RESULTS_CONFIGS:-}" ]; then
  chosen=()
  for c in "${configs[@]}"; do
    [[ " $UNLEARN_RESULTS_CONFIGS " == *" ${c%% *} "* ]] && chosen+=("$c")
  done
  [ ${#chosen[@]} -gt 0 ] || { echo "results: no configuration named in UNLEARN_RESULTS_CONFIGS" >&2; exit 1; }
  configs=("${chosen[@]}")
fi
methods=(newton-cg fisher-removal fisher-forgetting gradient-ascent)
sequential=kjv-verses-r20

for c in "${configs[@]}"; do
  read -r name corpus docs canaries tuning reps steps _ <<<"$c"
  steps=${smoke_steps:-$steps}
  d=$work/$name
  mkdir -p "$d"
  echo "== $name: $corpus, $canaries canaries repeated $reps times, $steps steps: training ($(($(date +%s) - start)) s) =="
  log=$d/log.txt
  if [ ! -f "$d/dataset.h5" ]; then
    "$bin" prepare-data --corpus "$corpus" --max-documents "$docs" --seed 7 --canaries "$canaries" \
      --canary-tuning "$tuning" --canary-repeats "$reps" --canary-references 1000 --output "$d/dataset.h5" \
      >>"$log" 2>&1
  fi
  # The forget set is every document holding a canary: when that is most of the training data, unlearning it is
  # retraining on a remnant and the comparison says nothing. prepare-data logs the share and warns above its limit.
  if ! grep -q "^canary documents: " "$log" || grep -q "warning: the canaries are in" "$log"; then
    echo "results: $name: $(grep -o "canary documents: .*" "$log" | tail -1 || echo "no canary share logged")" \
      "is too many for an unlearning experiment: use more documents or fewer canaries / repeats" >&2
    exit 1
  fi
  for variant in model retrain; do
    [ -f "$d/$variant.h5" ] && continue
    extra=()
    [ "$variant" = retrain ] && extra=(--exclude-canaries)
    "${mpi[@]}" "$bin" train --config "$root/jobs/default/train.ini" --tp 2 --steps "$steps" \
      --dataset "$d/dataset.h5" --checkpoint-dir "$d/ck-$variant" --output "$d/$variant.h5" "${extra[@]}" \
      --log-every 100 >>"$log" 2>&1
    echo "   trained $variant ($(($(date +%s) - start)) s)"
  done
done

# Then unlearning and evaluation (trained models are kept: a rerun only redoes this part).
for c in "${configs[@]}"; do
  read -r name _ _ _ _ _ _ retain <<<"$c"
  d=$work/$name
  log=$d/log.txt
  echo "== $name: unlearning and evaluation ($(($(date +%s) - start)) s) =="
  ev=("${mpi[@]}" "$bin" eval --config "$root/jobs/default/eval.ini" --tp 2 --dataset "$d/dataset.h5" --log-level warn)
  "${ev[@]}" --checkpoint "$d/model.h5" --forget-canaries --output "$d/model.eval.json" >>"$log" 2>&1
  "${ev[@]}" --checkpoint "$d/retrain.h5" --original "$d/model.h5" --forget-canaries \
    --output "$d/retrain.eval.json" >>"$log" 2>&1
  rows=()
  runs=("${methods[@]}")
  [ "$name" = "$sequential" ] && runs+=(newton-cg-3-requests)
  for m in "${runs[@]}"; do
    cfg=${m%-3-requests}
    extra=()
    [ "$m" != "$cfg" ] && extra=(--canary-requests 3)
    [ "$retain" != 0 ] && extra+=(--retain-sample "$retain")
    rm -f "$d/$m.h5" "$d/$m.h5.report.json"
    "${mpi[@]}" "$bin" forget --config "$root/jobs/default/forget-$cfg.ini" --tp 2 --checkpoint "$d/model.h5" \
      --dataset "$d/dataset.h5" --output "$d/$m.h5" "${extra[@]}" >>"$log" 2>&1
    "${ev[@]}" --checkpoint "$d/$m.h5" --original "$d/model.h5" --forget-report "$d/$m.h5.report.json" \
      --output "$d/$m.eval.json" >>"$log" 2>&1
    rows+=("$m=$d/$m.eval.json,$d/$m.h5.report.json")
    echo "   $m done ($(($(date +%s) - start)) s)"
  done
  rows+=("retrain from scratch=$d/retrain.eval.json")
  /usr/bin/python3 "$root/tools/results-table.py" --out "$d/table" --original "$d/model.eval.json" \
    --title "$name: unlearning the canary documents" "${rows[@]}" >/dev/null
done

if [ -n "$smoke_steps" ]; then
  echo "results: smoke run with $smoke_steps steps in $work; docs/ not touched"
  exit 0
fi
mkdir -p "$root/docs/results"
names=()
for c in "${configs[@]}"; do
  read -r name _ <<<"$c"
  cp "$work/$name/table.md" "$root/docs/results/$name.md"
  cp "$work/$name/table.png" "$root/docs/results/$name.png"
  names+=("$name")
done
/usr/bin/python3 "$root/tools/results-doc.py" --work "$work" --seconds $(($(date +%s) - start)) "${names[@]}" \
  >"$root/docs/results.md"
echo "results: wrote docs/results.md and docs/results/ in $(($(date +%s) - start)) s"
