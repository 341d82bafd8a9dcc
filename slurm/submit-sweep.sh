#!/usr/bin/env bash
# Submits a scaling sweep: slurm/submit-sweep.sh TABLE [forget options for every row]. Rows with the same node count
# and ranks per node go into one job array of slurm/sweep.sbatch (array tasks share one resource request); prints the
# job ids, one per line. Env: UNLEARN_SWEEP_DIR (default $PWD/sweep-<time>; each row writes <dir>/<name>/),
# UNLEARN_SBATCH_ARGS (more sbatch options, e.g. "--time=00:30:00 --gpus-per-node=8"), UNLEARN_SWEEP_SERIAL=1 (one
# row at a time across all arrays, for timings on shared nodes: array throttle %1 and --dependency=singleton), and
# slurm/lib.sh's.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=slurm/lib.sh
source "$here/lib.sh"
table=$(realpath "${1:?usage: submit-sweep.sh TABLE [forget options for every row]}")
shift
export UNLEARN_SLURM_DIR=$here UNLEARN_SWEEP_DIR=${UNLEARN_SWEEP_DIR:-$PWD/sweep-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$UNLEARN_SWEEP_DIR"
declare -A groups=()
i=0
while read -r name tp dp nodes _; do
  unlearn_sweep_check "$name" "$tp" "$dp" "$nodes" >&2 || exit 1
  key="$nodes $((tp * dp / nodes))"
  groups[$key]+="${groups[$key]:+,}$i"
  i=$((i + 1))
done < <(unlearn_sweep_rows "$table")
[ "$i" -gt 0 ] || { echo "submit-sweep: $table has no rows" >&2; exit 1; }
for key in "${!groups[@]}"; do
  read -r nodes per_node <<<"$key"
  serial=()
  [ "${UNLEARN_SWEEP_SERIAL:-0}" = 1 ] && serial=(--dependency=singleton)
  # shellcheck disable=SC2086
  id=$(sbatch --parsable --array="${groups[$key]}${serial:+%1}" --nodes="$nodes" --ntasks-per-node="$per_node" \
       "${serial[@]}" ${UNLEARN_SBATCH_ARGS:-} "$here/sweep.sbatch" "$table" "$@") || exit 1
  echo "submit-sweep: rows ${groups[$key]} on $nodes node(s) x $per_node rank(s): job ${id%%;*}" >&2
  echo "${id%%;*}"
done
echo "submit-sweep: reports under $UNLEARN_SWEEP_DIR/<name>/forget.h5.report.json" >&2
