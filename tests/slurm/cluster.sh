# A private Slurm cluster on this machine for the tests (source it; setup-notes sections 4, 6, 7).
# slurm_cluster_start NODES starts munged (own socket and key), slurmctld and NODES slurmd instances (n1..nN, all on
# this host, own free ports) in a fresh state directory $SLURM_TEST_DIR, and arranges that every daemon is stopped by
# its pid file when the test exits, even if the test is killed (a detached watchdog); a process of the cluster that
# survives the stop fails the test. Exits 77 (skip) when Slurm or munge is missing.
# Helpers: slurm_submit, slurm_wait_state, slurm_wait_done, slurm_job_field, slurm_dump, slurm_cluster_stop.

# shellcheck shell=bash
slurm_bins=(sbatch srun scontrol squeue sinfo scancel /usr/sbin/slurmctld /usr/sbin/slurmd /usr/sbin/munged)

# Free TCP ports: a random base in 20000-39999 whose next N ports nobody listens on (ss), so a leftover or concurrent
# cluster (the default 6817/6818 included) never clashes with this one.
slurm_free_ports() {
  local n=$1 base p ok
  for _ in $(seq 1 50); do
    base=$((20000 + (RANDOM % 20000))) ok=1
    for p in $(seq "$base" $((base + n - 1))); do
      [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] || { ok=0; break; }
    done
    [ $ok = 1 ] && { echo "$base"; return 0; }
  done
  return 1
}

# slurm_alive PID: running (a zombie waiting for this container's init to reap it counts as gone).
slurm_alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //; s/ .*//' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# slurm_stop_dir DIR: stop every daemon DIR's pid files name (slurmd first, munged last), waiting up to 15 s each
# before SIGKILL. Also used by the watchdog, so it relies on nothing but DIR.
slurm_stop_dir() {
  local d=$1 f p i
  for f in "$d"/slurmd.*.pid "$d"/slurmctld.pid "$d"/munged.pid; do
    [ -s "$f" ] || continue
    p=$(cat "$f")
    kill "$p" 2>/dev/null || continue
    for i in $(seq 1 150); do slurm_alive "$p" || break; sleep 0.1; done
    slurm_alive "$p" && { echo "slurm: daemon $p ($f) ignored SIGTERM, killing it"; kill -9 "$p"; }
  done
  return 0
}

# Processes started for this cluster that are still alive: the daemons (their command lines name DIR) and job tasks
# (their environment holds SLURM_CONF=DIR/slurm.conf).
slurm_leftovers() {
  local d=$1 p
  for p in $(pgrep -f -- "$d/" 2>/dev/null); do [ "$p" != $$ ] && slurm_alive "$p" && echo "$p"; done
  for p in $(pgrep -x 'slurmstepd|unlearn|srun|orted|prted' 2>/dev/null); do
    slurm_alive "$p" && tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "SLURM_CONF=$d/slurm.conf" && echo "$p"
  done
  return 0
}

# slurm_cluster_stop: cancel jobs, stop the daemons, then fail (return 1) if anything of this cluster survived.
slurm_cluster_stop() {
  [ -n "${SLURM_TEST_DIR:-}" ] || return 0
  local d=$SLURM_TEST_DIR i left
  if [ -s "$d/slurmctld.pid" ]; then
    scancel --quiet --full --user="$(id -un)" 2>/dev/null
    # Job steps outlive slurmd: let them end before it goes.
    for i in $(seq 1 150); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
  fi
  slurm_stop_dir "$d"
  left=$(slurm_leftovers "$d" | sort -u | tr '\n' ' ')
  SLURM_TEST_DIR=
  rm -rf "$d"
  if [ -n "$left" ]; then
    echo "FAIL: processes of the test cluster still alive after the stop: $left"
    # shellcheck disable=SC2086
    ps -o pid,ppid,args -p ${left// /,} 2>/dev/null
    # shellcheck disable=SC2086
    kill -9 $left 2>/dev/null
    return 1
  fi
  echo "ok   slurm cluster stopped, no daemon or task left"
}

# slurm_cluster_start NODES: a fresh state directory each time, so no old job ids or node states come back.
slurm_cluster_start() {
  local nodes=$1 d b host base i names="" lib
  for b in "${slurm_bins[@]}"; do
    command -v "$b" >/dev/null || { echo "SKIP: $b is not installed (Slurm and munge are needed)"; exit 77; }
  done
  host=$(hostname -s)
  base=$(slurm_free_ports $((nodes + 1))) || { echo "FAIL: no free ports"; exit 1; }
  # Not under the test's private $tmp: munged wants every directory above its socket searchable by everyone.
  d=$(mktemp -d /tmp/unlearn-slurm.XXXXXX) && chmod 755 "$d" && mkdir -p "$d/state" || exit 1
  head -c 1024 /dev/urandom >"$d/munge.key" && chmod 600 "$d/munge.key"
  export SLURM_CONF=$d/slurm.conf SLURM_TEST_DIR=$d
  {
    echo "ClusterName=unlearn$$"
    echo "SlurmctldHost=$host(127.0.0.1)"
    echo "SlurmctldPort=$base"
    cat <<EOF
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$d/munge.sock
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool%n
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.%n.pid
SlurmctldLogFile=$d/slurmctld.log
SlurmdLogFile=$d/slurmd.%n.log
TmpFS=$d/tmp%n
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=600
KillWait=30
EOF
    for i in $(seq 1 "$nodes"); do
      echo "NodeName=n$i NodeHostname=$host NodeAddr=127.0.0.1 Port=$((base + i)) CPUs=2 State=UNKNOWN"
      mkdir -p "$d/spooln$i" "$d/tmpn$i"
      names+="${names:+,}n$i"
    done
    echo "PartitionName=ci Nodes=$names Default=YES MaxTime=10 State=UP"
  } >"$SLURM_CONF"

  # The watchdog is detached (setsid -f) so a test killed by CTest's timeout still has its daemons stopped.
  lib=$(realpath "${BASH_SOURCE[0]}")
  # DIR goes in the environment, not argv, so the watchdog is not among the leftovers slurm_leftovers finds.
  SLURM_WATCH_DIR=$d setsid -f bash -c 'source "$1"; while kill -0 "$2" 2>/dev/null && [ "$SECONDS" -lt 1800 ]; do
                     sleep 1; done; slurm_stop_dir "$SLURM_WATCH_DIR"' watchdog "$lib" $$ </dev/null >/dev/null 2>&1
  trap 'slurm_on_exit' EXIT

  /usr/sbin/munged --socket="$d/munge.sock" --key-file="$d/munge.key" --pid-file="$d/munged.pid" \
    --log-file="$d/munged.log" --seed-file="$d/munge.seed" || { cat "$d/munged.log"; exit 1; }
  /usr/sbin/slurmctld -f "$SLURM_CONF" || { slurm_dump; exit 1; }
  for i in $(seq 1 "$nodes"); do /usr/sbin/slurmd -f "$SLURM_CONF" -N "n$i" || { slurm_dump; exit 1; }; done
  local t0=$SECONDS
  until [ "$(sinfo -h -N -o %T 2>/dev/null | grep -c '^idle$')" -eq "$nodes" ]; do
    [ $((SECONDS - t0)) -lt 30 ] || { echo "FAIL: the nodes are not idle after 30 s"; sinfo -N; slurm_dump; exit 1; }
    sleep 0.2
  done
  echo "ok   slurm cluster of $nodes node(s) idle in $((SECONDS - t0)) s (ports $base-$((base + nodes)), $d)"
}

# On exit: stop the cluster (a survivor fails the test), then remove the workspace.
slurm_on_exit() {
  local rc=$?
  slurm_cluster_stop || rc=1
  [ -n "${tmp:-}" ] && rm -rf "$tmp"
  exit "$rc"
}

# slurm_submit ARGS...: sbatch, prints the job id.
slurm_submit() {
  local out
  out=$(sbatch --parsable "$@") || return 1
  echo "${out%%;*}"
}

# slurm_job_field ID FIELD: one field of `scontrol show job` (JobState, Restarts, NodeList, ExitCode, ...).
slurm_job_field() {
  scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# slurm_wait_state ID REGEX TIMEOUT: wait until JobState matches REGEX; 1 on timeout.
slurm_wait_state() {
  local id=$1 re=$2 limit=$3 t0=$SECONDS s
  while :; do
    s=$(slurm_job_field "$id" JobState)
    [[ $s =~ ^($re)$ ]] && return 0
    if [ $((SECONDS - t0)) -ge "$limit" ]; then
      echo "FAIL: job $id is $s after $limit s, waited for $re:"
      scontrol show job "$id" | sed 's/^/    /'
      return 1
    fi
    sleep 0.2
  done
}

slurm_final_states='COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED'

slurm_now() { date +%s.%N; }
slurm_secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# slurm_wait_done ID TIMEOUT [SUBMIT_TIME]: wait for a final state; 0 only for COMPLETED with exit code 0:0.
# With SUBMIT_TIME (slurm_now before sbatch) it prints the job's submit-to-start and run times (0.2 s resolution).
slurm_wait_done() {
  local id=$1 limit=$2 t_submit=${3:-} t_start="" t0=$SECONDS s
  while :; do
    s=$(slurm_job_field "$id" JobState)
    [ -z "$t_start" ] && [ -n "$s" ] && [ "$s" != PENDING ] && t_start=$(slurm_now)
    [[ $s =~ ^($slurm_final_states)$ ]] && break
    if [ $((SECONDS - t0)) -ge "$limit" ]; then
      echo "FAIL: job $id is $s after $limit s:"
      scontrol show job "$id" | sed 's/^/    /'
      scancel "$id" 2>/dev/null
      return 1
    fi
    sleep 0.2
  done
  [ -n "$t_submit" ] && echo "time job $id: submit->start $(slurm_secs "$t_submit" "${t_start:-$t_submit}") s," \
    "start->end $(slurm_secs "${t_start:-$t_submit}" "$(slurm_now)") s"
  [ "$s" = COMPLETED ] && [ "$(slurm_job_field "$id" ExitCode)" = 0:0 ] && return 0
  echo "FAIL: job $id ended $s with exit code $(slurm_job_field "$id" ExitCode)"
  return 1
}

# slurm_wait_array ID TASKS TIMEOUT: wait until the array job has left the queue; 0 only when all TASKS tasks
# COMPLETED with exit code 0:0.
slurm_wait_array() {
  local id=$1 n=$2 limit=$3 t0=$SECONDS records
  while [ -n "$(squeue -h -r -j "$id" -o %i 2>/dev/null)" ]; do
    if [ $((SECONDS - t0)) -ge "$limit" ]; then
      echo "FAIL: array job $id still queued after $limit s"
      scancel "$id"
      return 1
    fi
    sleep 0.2
  done
  records=$(scontrol show job -o "$id")
  if [ "$(grep -c 'JobState=COMPLETED .*ExitCode=0:0' <<<"$records")" -ne "$n" ]; then
    echo "FAIL: array job $id: expected $n tasks COMPLETED with exit code 0:0:"; echo "$records"
    return 1
  fi
}

# slurm_dump [FILE...]: on failure, the given job output files, the queue and the daemons' logs.
# shellcheck disable=SC2120  # the files are optional
slurm_dump() {
  local f
  for f in "$@"; do echo "--- $f"; sed 's/^/    /' "$f" 2>/dev/null; done
  echo "--- squeue"; squeue 2>&1 | sed 's/^/    /'
  for f in "$SLURM_TEST_DIR"/slurmctld.log "$SLURM_TEST_DIR"/slurmd.*.log; do
    echo "--- $f (last 40 lines)"; tail -n 40 "$f" 2>/dev/null | sed 's/^/    /'
  done
}

# slurm_fixture: tests/e2e/forget.sh's tiny fixture in $tmp (after `fortunes_workspace riddles`): ds.h5 (fortunes
# riddles with 3 planted canaries) and init.h5 (GPT-2 d_model 32, 2 layers, float64); seconds.
slurm_fixture() {
  { "$UNLEARN_BIN" prepare-data --corpus fortunes --corpus-dir "$tmp/fortunes" --seed 3 --canaries 3 --canary-tuning 1 \
      --canary-repeats 4 --canary-references 50 --output "$tmp/ds.h5" &&
    "$UNLEARN_BIN" init --d-model 32 --n-heads 4 --n-layers 2 --d-ff 64 --max-positions 64 --dtype float64 \
      --init-std 0.1 --output "$tmp/init.h5"; } >"$tmp/fixture.log" 2>&1 \
    || { echo "FAIL: fixture"; cat "$tmp/fixture.log"; exit 1; }
}
