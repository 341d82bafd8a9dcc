# Shared by the sbatch templates in slurm/ (source it inside a job): runs `unlearn forget` as one srun step with
# solver-state checkpoints, resumes from them, and implements the preemption protocol (docs/slurm.md):
#   1. Slurm signals the batch shell (--signal=B:TERM@N) or the tasks (--signal=TERM@N, scontrol requeue, preemption);
#   2. the shell forwards TERM/USR1 to the tasks; every rank stops after the same CG iteration, saves its state and
#      exits 0;
#   3. a step that ended without its output requeues the job (scontrol requeue; needs --requeue for preemption);
#   4. the next run finds a state file in the state directory and adds --resume (bit-identical result).
# Environment (all optional):
#   UNLEARN_BIN          the executable (default: `unlearn` on PATH, else $SLURM_SUBMIT_DIR/build/src/app/unlearn)
#   UNLEARN_OUTPUT       output checkpoint; the report goes next to it (default: $SLURM_SUBMIT_DIR/forget-<job>.h5)
#   UNLEARN_STATE_DIR    solver-state directory; keep it per job so a requeue finds it (default: <output>.state)
#   UNLEARN_STATE_EVERY  iterations between solver-state files (default 10; a signal also writes one)
#   UNLEARN_CONFIG       an INI file of forget options (passed as --config; the command line overrides it)
#   UNLEARN_REQUEUE      1 (default): requeue the job when its step stopped with a state; 0: exit 3 instead

# shellcheck shell=bash
unlearn_log() { echo "unlearn-slurm: $*"; }

# The job's name for default paths: stable across requeues (the job id does not change), per task in an array.
unlearn_job_tag() {
  if [ -n "${SLURM_ARRAY_JOB_ID:-}" ]; then
    echo "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
  else
    echo "${SLURM_JOB_ID:-local}"
  fi
}

unlearn_bin() {
  if [ -n "${UNLEARN_BIN:-}" ]; then echo "$UNLEARN_BIN"
  elif command -v unlearn >/dev/null; then command -v unlearn
  else echo "${SLURM_SUBMIT_DIR:-.}/build/src/app/unlearn"
  fi
}

# unlearn_has_state DIR: DIR holds a solver-state file (cg-r<request>-i<iteration>.h5, docs/forget.md).
unlearn_has_state() { compgen -G "$1/cg-r*-i*.h5" >/dev/null; }

# unlearn_check_tp_in_node TP: TP groups are contiguous ranks, and Slurm's block distribution puts contiguous ranks
# on one node, so a TP group stays inside a node (its all-reduces on NVLink/shared memory) iff TP divides the ranks
# per node; DP then runs across nodes.
unlearn_check_tp_in_node() {
  local tp=$1 per_node=${SLURM_NTASKS_PER_NODE:-${SLURM_NTASKS:-1}}
  per_node=${per_node%%(*}  # "2(x2)" -> 2
  if [ $((per_node % tp)) -ne 0 ]; then
    unlearn_log "error: --tp $tp does not divide the $per_node ranks per node; a TP group would span nodes"
    return 1
  fi
}

# Forward a stop signal to the tasks. Not through srun: srun answers SIGTERM by killing the step. `scancel --signal`
# without --batch/--full reaches every step's tasks but not this shell.
unlearn_on_signal() {
  UNLEARN_SIGNALLED=$1
  unlearn_log "got SIG$1; forwarding it to the tasks (every rank stops after its current CG iteration)"
  scancel --signal="$1" "$SLURM_JOB_ID" 2>&1 | sed 's/^/unlearn-slurm: scancel: /'
}

# unlearn_forget [srun options...] -- [forget options...]: one `srun <options> unlearn forget` step with the state
# directory, --resume when it holds a state, and --output. Returns 0 when the output exists; after a stop with a
# state it requeues the job (or returns 3 with UNLEARN_REQUEUE=0); otherwise the step's exit code.
unlearn_forget() {
  local srun_opts=() bin out state every rc resume=() config=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do srun_opts+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  bin=$(unlearn_bin)
  out=${UNLEARN_OUTPUT:-${SLURM_SUBMIT_DIR:-.}/forget-$(unlearn_job_tag).h5}
  state=${UNLEARN_STATE_DIR:-$out.state}
  every=${UNLEARN_STATE_EVERY:-10}
  [ -x "$bin" ] || { unlearn_log "error: $bin is not an executable (set UNLEARN_BIN)"; return 1; }
  if [ -e "$out" ]; then
    # A requeue after the output was committed (e.g. preempted while exiting): the work is done.
    unlearn_log "$out exists; nothing to do"
    return 0
  fi
  mkdir -p "$state" "$(dirname "$out")"
  if unlearn_has_state "$state"; then
    resume=(--resume)
    unlearn_log "resuming from the solver state in $state (restart ${SLURM_RESTART_COUNT:-0})"
  fi
  [ -n "${UNLEARN_CONFIG:-}" ] && config=(--config "$UNLEARN_CONFIG")
  unlearn_log "job ${SLURM_JOB_ID:-?} ($(unlearn_job_tag)) on ${SLURM_JOB_NODELIST:-?}: ${SLURM_NTASKS:-?} tasks," \
    "output $out, state $state every $every"

  UNLEARN_SIGNALLED=
  trap 'unlearn_on_signal TERM' TERM
  trap 'unlearn_on_signal USR1' USR1
  # In the background, so the shell runs its traps at once instead of after the step.
  srun "${srun_opts[@]}" "$bin" forget "${config[@]}" "$@" --state-dir "$state" --state-every "$every" \
    "${resume[@]}" --output "$out" &
  UNLEARN_STEP_PID=$!
  # `wait` returns early when a trapped signal arrives: wait again until the step has really ended.
  while :; do
    wait "$UNLEARN_STEP_PID"; rc=$?
    kill -0 "$UNLEARN_STEP_PID" 2>/dev/null || break
  done
  trap - TERM USR1
  UNLEARN_STEP_PID=

  if [ -e "$out" ]; then
    [ "$rc" -eq 0 ] || unlearn_log "warning: the step exited $rc after committing $out"
    unlearn_log "done: $out"
    return 0
  fi
  if [ "$rc" -eq 0 ] && unlearn_has_state "$state"; then
    unlearn_log "stopped with its solver state (signal: ${UNLEARN_SIGNALLED:-to the tasks})"
    if [ "${UNLEARN_REQUEUE:-1}" = 1 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
      # After an external requeue (scontrol requeue, preemption) the job is already on its way back: this one fails
      # harmlessly.
      scontrol requeue "$SLURM_JOB_ID" 2>&1 | sed 's/^/unlearn-slurm: scontrol requeue: /'
      return 0
    fi
    return 3
  fi
  unlearn_log "error: the step exited $rc without writing $out"
  [ "$rc" -ne 0 ] && return "$rc"
  return 1
}

# unlearn_sweep_rows TABLE: the rows of a sweep table, comments and blank lines dropped; row i is array task i.
# Columns: name tp dp nodes checkpoint [forget options of this row...] (whitespace-separated, no quoting).
unlearn_sweep_rows() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$1"; }

# unlearn_sweep_check NAME TP DP NODES: the ranks (TP x DP) split evenly over the nodes and TP stays inside a node.
unlearn_sweep_check() {
  local name=$1 tp=$2 dp=$3 nodes=$4
  [[ $tp =~ ^[1-9][0-9]*$ && $dp =~ ^[1-9][0-9]*$ && $nodes =~ ^[1-9][0-9]*$ ]] \
    || { unlearn_log "error: row $name: tp, dp and nodes must be positive integers"; return 1; }
  [ $((tp * dp % nodes)) -eq 0 ] && [ $((tp * dp / nodes % tp)) -eq 0 ] \
    || { unlearn_log "error: row $name: $((tp * dp)) ranks on $nodes node(s) split TP $tp across nodes"; return 1; }
}
