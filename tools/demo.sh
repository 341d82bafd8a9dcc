#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run the main job on the embedded default at
# 2 MPI ranks. Idempotent.
#
# The embedded default (jobs/default): a real corpus (Debian's fortunes-min) with planted canaries,
# a small GPT-2-style model trained on 2 ranks (TP = 2) until it memorises them, then the canary documents removed
# by Newton-CG, Fisher Removal, Fisher Forgetting and the gradient-ascent baseline, each with its audit report and
# an evaluation (perplexity, exposure, membership inference, KL), compared in one table and chart.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${UNLEARN_BUILD_DIR:-$root/build}
out=${UNLEARN_DEMO_OUT:-$root/out/demo}

"$root/tools/install-deps.sh"
export CCACHE_BASEDIR=$root CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-8G}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
cmake -S "$root" -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j 2 --target unlearn

rm -rf "$out" && mkdir -p "$out/corpus"
bin=$build/src/app/unlearn
mpi=(mpiexec -n 2 --oversubscribe --bind-to none)
# The real corpus of the default: the three files of Debian's fortunes-min (fortunes, literature, riddles).
cp /usr/share/games/fortunes/{fortunes,literature,riddles}{,.dat} "$out/corpus/"

echo "== 1. the 2-rank grid =="
"${mpi[@]}" "$bin" info --tp 2
echo
echo "== 2. token dataset with planted canaries (bytes tokenizer; jobs/default/prepare-data.ini) =="
"$bin" prepare-data --config "$root/jobs/default/prepare-data.ini" --corpus-dir "$out/corpus" \
  --output "$out/dataset.h5" --metrics "$out/metrics.jsonl"
echo
echo "== 3. train a GPT-2-style model, 2 ranks (TP = 2; jobs/default/train.ini) =="
"${mpi[@]}" "$bin" train --config "$root/jobs/default/train.ini" --tp 2 --dataset "$out/dataset.h5" \
  --checkpoint-dir "$out/checkpoints" --output "$out/model.h5" --metrics "$out/metrics.jsonl"
echo
echo "== 4. evaluate the trained model (jobs/default/eval.ini): perplexity, exposure, membership inference =="
"${mpi[@]}" "$bin" eval --config "$root/jobs/default/eval.ini" --tp 2 --checkpoint "$out/model.h5" \
  --dataset "$out/dataset.h5" --forget-canaries --output "$out/model.eval.json" --metrics "$out/metrics.jsonl"
echo
# Each method removes the canary documents (jobs/default/forget-METHOD.ini), then is evaluated against the
# trained model. Hyperparameters were chosen on the tuning canaries and validation loss (docs/results.md).
rows=()
n=5
for method in newton-cg fisher-removal fisher-forgetting gradient-ascent; do
  echo "== $n. remove the canary documents: $method, 2 ranks (TP = 2; jobs/default/forget-$method.ini) =="
  "${mpi[@]}" "$bin" forget --config "$root/jobs/default/forget-$method.ini" --tp 2 --checkpoint "$out/model.h5" \
    --dataset "$out/dataset.h5" --state-dir "$out/solver-state-$method" --output "$out/model-$method.h5" \
    --metrics "$out/metrics.jsonl"
  "${mpi[@]}" "$bin" eval --config "$root/jobs/default/eval.ini" --tp 2 --checkpoint "$out/model-$method.h5" \
    --original "$out/model.h5" --dataset "$out/dataset.h5" --forget-report "$out/model-$method.h5.report.json" \
    --output "$out/model-$method.eval.json" --metrics "$out/metrics.jsonl" --log-level warn
  rows+=("$method=$out/model-$method.eval.json,$out/model-$method.h5.report.json")
  n=$((n + 1))
  echo
done
echo "== $n. the comparison (also $out/results.md and $out/results.png) =="
/usr/bin/python3 "$root/tools/results-table.py" --out "$out/results" --original "$out/model.eval.json" "${rows[@]}"
echo
echo "== $((n + 1)). Communicator all-reduce vs raw MPI_Allreduce, 2 ranks =="
"${mpi[@]}" "$bin" bench comm --min-bytes 4K --max-bytes 4M --reps 20 --output "$out/bench_comm.md" --log-level warn
cat "$out/bench_comm.md"
echo
echo "demo: outputs in $out (dataset.h5, model*.h5, *.report.json, *.eval.json, results.md/png, bench_comm.md, metrics.jsonl)"
