#!/usr/bin/env bash
# Checks the promise that tools/test.sh (and, with --demo, tools/demo.sh before it) works on a fresh Debian 12
# machine: runs it as root in a bookworm chroot built by debootstrap (minbase), on a clean clone of this
# repository's HEAD, with nothing of the project installed.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: tools/check-fresh.sh [--demo] [--log FILE] [--rebuild-base] [--remove-run] [-h|--help]

Runs tools/test.sh (which installs its own packages through tools/install-deps.sh) as root inside a fresh
Debian 12 (bookworm, amd64, minbase) chroot, on a clean `git clone` of the current HEAD. Needs root.
With --demo, the README's first command, tools/demo.sh, runs first on the bare chroot (it installs, builds and
runs the main job), then tools/test.sh in the same chroot (which also checks that it reuses that set-up).

Layout under $FRESH_ROOT (default: <repo>/fresh-root, git-ignored):
  base/        debootstrap result, built once and reused while base.stamp matches (an interrupted
               debootstrap leaves no stamp, so it is redone)
  base.stamp   written only after debootstrap and the apt sources setup finished
  run/         a throw-away copy of base/ for this run: the project is cloned to /src inside and
               tools/test.sh runs there. Replaced at the start of every run; kept afterwards for inspection
               unless --remove-run is given.

Options:
  --demo          run tools/demo.sh first (adds its training, forget and eval runs: ~15 minutes on 2 cores)
  --log FILE      tee all output to FILE (default: $FRESH_ROOT/check-fresh.log, overwritten)
  --rebuild-base  redo debootstrap even if a finished base exists
  --remove-run    delete run/ (several GB once test.sh has installed everything) after the run
  -h, --help      this text

Environment:
  FRESH_ROOT            working directory (default: <repo>/fresh-root)
  FRESH_MIRROR          Debian mirror (default: http://deb.debian.org/debian, as on the host)
  FRESH_SECURITY_MIRROR security mirror (default: http://deb.debian.org/debian-security)

/proc, /sys, /dev, /dev/pts and /dev/shm (Open MPI needs shared memory) are bind-mounted into run/ for the run
and always unmounted on exit. Exit status: that of tools/test.sh, or demo.sh's when it failed (0 = the fresh
check passed), or 1 when the check itself could not be set up.
EOF
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FRESH_ROOT=${FRESH_ROOT:-$repo/fresh-root}
mirror=${FRESH_MIRROR:-http://deb.debian.org/debian}
security_mirror=${FRESH_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
suite=bookworm arch=amd64 variant=minbase
log="" rebuild_base=0 remove_run=0 with_demo=0

while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --log) [ $# -ge 2 ] || { echo "check-fresh: --log needs a file name" >&2; exit 1; }; log=$2; shift ;;
    --log=*) log=${1#--log=} ;;
    --rebuild-base) rebuild_base=1 ;;
    --remove-run) remove_run=1 ;;
    --demo) with_demo=1 ;;
    *) echo "check-fresh: unknown argument '$1' (see --help)" >&2; exit 1 ;;
  esac
  shift
done

die() { echo "check-fresh: ERROR: $*" >&2; exit 1; }
say() { echo "check-fresh: $*"; }
phase() { echo; echo "==== check-fresh: $* ($(date '+%F %T'))"; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot and bind mounts need it)"
[ "$(dpkg --print-architecture)" = "$arch" ] || die "host is not $arch"
case $FRESH_ROOT in /*) ;; *) FRESH_ROOT=$(pwd)/$FRESH_ROOT ;; esac
FRESH_ROOT=${FRESH_ROOT%/}
if [ -z "$FRESH_ROOT" ] || [ "$FRESH_ROOT" = / ]; then die "FRESH_ROOT must not be /"; fi
base=$FRESH_ROOT/base stamp=$FRESH_ROOT/base.stamp run=$FRESH_ROOT/run
mkdir -p "$FRESH_ROOT"
log=${log:-$FRESH_ROOT/check-fresh.log}
mkdir -p "$(dirname "$log")"

# Everything from here on goes to the terminal and the log.
exec > >(tee "$log") 2>&1
tee_pid=$!

t0=$(date +%s)
started="$(date '+%F %T %Z')"
t_debootstrap="reused" t_prepare="-" t_test="-" test_rc="-" test_out="" demo_out=""
mounted=()

# --- mounts and processes -------------------------------------------------------------------------------------
# Mount points at or below $1, deepest first (from the kernel's table; octal escapes such as \040 decoded).
mounts_under() {
  local dir=$1 mp
  while read -r mp; do
    mp=$(printf '%b' "$mp")
    case $mp in "$dir"|"$dir"/*) echo "$mp" ;; esac
  done < <(awk '{print $5}' /proc/self/mountinfo) | sort -r
}

# Processes whose root directory is inside $1 (only this script puts processes there).
procs_in() {
  local dir=$1 p r
  for p in /proc/[0-9]*; do
    r=$(readlink "$p/root" 2>/dev/null) || continue
    case $r in "$dir"|"$dir"/*) echo "${p#/proc/}" ;; esac
  done
}

stop_procs_in() {
  local dir=$1 pids i
  pids=$(procs_in "$dir" | tr '\n' ' ')
  [ -n "${pids// }" ] || return 0
  say "processes still running inside $dir: $pids; sending TERM"
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for i in 1 2 3 4 5 6 7 8 9 10; do
    pids=$(procs_in "$dir" | tr '\n' ' ')
    [ -n "${pids// }" ] || return 0
    sleep 0.5
  done
  say "still running: $pids; sending KILL"
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  sleep 1
}

unmount_all_under() {
  local dir=$1 mp
  while read -r mp; do
    [ -n "$mp" ] || continue
    if mountpoint -q "$mp"; then
      umount "$mp" 2>/dev/null || { say "umount $mp busy; retrying lazily"; umount -l "$mp"; }
    fi
  done < <(mounts_under "$dir")
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$? i
  set +e
  # A long step still running (interrupted), then anything left running in a chroot (after a normal test.sh run
  # nothing should be: policy-rc.d keeps daemons off).
  if [ -n "$bg_pid" ] && kill -0 "$bg_pid" 2>/dev/null; then
    say "stopping the interrupted step (pid $bg_pid)"
    kill -TERM -- "-$bg_pid" "$bg_pid" 2>/dev/null
  fi
  [ -d "$base" ] && stop_procs_in "$base"
  [ -d "$run" ] && stop_procs_in "$run"
  [ -z "$bg_pid" ] || wait "$bg_pid" 2>/dev/null
  # Our bind mounts, in reverse order, then anything else under FRESH_ROOT (debootstrap mounts proc/sys in its
  # target and might leave them behind when interrupted).
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    if mountpoint -q "${mounted[i]}"; then
      umount "${mounted[i]}" 2>/dev/null || { say "umount ${mounted[i]} busy; retrying lazily"; umount -l "${mounted[i]}"; }
    fi
  done
  unmount_all_under "$FRESH_ROOT"
  if [ -n "$(mounts_under "$FRESH_ROOT")" ]; then
    echo "check-fresh: ERROR: still mounted under $FRESH_ROOT:" >&2
    mounts_under "$FRESH_ROOT" >&2
    rc=1
  fi
  [ -n "$test_out" ] && rm -f "$test_out"
  [ -n "$demo_out" ] && rm -f "$demo_out"
  # Let tee write the last lines before the script exits.
  exec >&- 2>&-
  wait "$tee_pid" 2>/dev/null
  exit "$rc"
}
trap cleanup EXIT
bg_pid=""
# Runs a long step in the background and waits: bash defers a trap until a foreground command ends, but `wait`
# returns at once on INT/TERM, so an interruption reaches the cleanup immediately.
run_bg() {
  local rc=0
  # Job control gives the step its own process group (id = bg_pid), so the cleanup can stop all of it.
  set -m
  "$@" </dev/null &
  bg_pid=$!
  set +m
  wait "$bg_pid" || rc=$?
  bg_pid=""
  return "$rc"
}
trap 'exit 130' INT
trap 'exit 143' TERM

# Deletes a tree under FRESH_ROOT, refusing while anything is mounted or running inside it.
remove_tree() {
  local dir=$1
  [ -e "$dir" ] || return 0
  case $dir in "$FRESH_ROOT"/?*) ;; *) die "refusing to remove $dir (not under $FRESH_ROOT)" ;; esac
  stop_procs_in "$dir"
  unmount_all_under "$dir"
  [ -z "$(mounts_under "$dir")" ] || die "something is still mounted under $dir; not removing it"
  rm -rf --one-file-system "$dir"
}

# --- 0. host ----------------------------------------------------------------------------------------------------
phase "host"
head_commit=$(git -C "$repo" rev-parse HEAD) || die "$repo is not a git repository"
say "project     : $repo at $(git -C "$repo" log -1 --format='%h %s' "$head_commit")"
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
  say "note: $repo has uncommitted changes to tracked files; they are NOT tested (only HEAD is cloned)"
fi
say "FRESH_ROOT  : $FRESH_ROOT"
say "log         : $log"
say "host kernel : $(uname -sr)"
if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap on the host"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq || say "apt-get update failed; trying the cached lists"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap \
    || die "could not install debootstrap on the host"
fi
say "debootstrap : $(dpkg-query -W -f='${Version}' debootstrap 2>/dev/null || echo '?')"

# --- 1. base chroot ----------------------------------------------------------------------------------------------
stamp_want="suite=$suite arch=$arch variant=$variant mirror=$mirror security=$security_mirror"
phase "base chroot ($suite $arch $variant)"
if [ "$rebuild_base" -eq 0 ] && [ -d "$base" ] && [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$stamp_want" ]; then
  say "reusing the finished base $base ($(sed -n 2p "$stamp"))"
else
  [ -f "$stamp" ] || [ ! -e "$base" ] || say "found $base without a completion stamp (interrupted?): redoing it"
  rm -f "$stamp"
  remove_tree "$base"
  t=$(date +%s)
  say "debootstrap --variant=$variant --arch=$arch $suite $base $mirror"
  run_bg debootstrap --variant="$variant" --arch="$arch" "$suite" "$base" "$mirror" || die "debootstrap failed"
  # The same sources as the host: main suite, bookworm-updates and the security suite.
  rm -f "$base/etc/apt/sources.list"
  mkdir -p "$base/etc/apt/sources.list.d"
  cat >"$base/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  [ -z "$(mounts_under "$base")" ] || die "debootstrap left mounts under $base"
  printf '%s\ncreated %s with debootstrap %s\n' "$stamp_want" "$(date '+%F %T %Z')" \
    "$(dpkg-query -W -f='${Version}' debootstrap)" >"$stamp.tmp"
  mv "$stamp.tmp" "$stamp"
  t_debootstrap="$(($(date +%s) - t)) s"
  say "base finished in $t_debootstrap"
fi

# --- 2. this run's chroot and the project clone -----------------------------------------------------------------
phase "fresh copy of the base and a clean clone of HEAD"
t=$(date +%s)
remove_tree "$run"
cp -a --reflink=auto "$base" "$run"
# The chroot shares the host's network namespace and hostname: give it the host's resolver and host names.
cp -L /etc/resolv.conf "$run/etc/resolv.conf"
cp -L /etc/hosts "$run/etc/hosts"
# ... and its network's local trust anchors (a TLS-intercepting proxy's CA, as on this workplace's machines): the
# ca-certificates package that install-deps.sh installs adds them to the system store, which npm uses.
local_cas=()
for f in /usr/local/share/ca-certificates/*.crt; do [ -f "$f" ] && local_cas+=("$f"); done
if [ ${#local_cas[@]} -gt 0 ]; then
  mkdir -p "$run/usr/local/share/ca-certificates"
  cp -L "${local_cas[@]}" "$run/usr/local/share/ca-certificates/"
  say "copied the host's local CA certificates: ${local_cas[*]##*/}"
fi
[ ! -e "$run/usr/sbin/policy-rc.d" ] || die "the base has a policy-rc.d; it must not (install-deps.sh is tested)"
git clone --quiet --no-hardlinks "$repo" "$run/src"
git -C "$run/src" checkout --quiet --detach "$head_commit"
say "cloned $(git -C "$run/src" log -1 --format='%H') to $run/src"
say "chroot: Debian $(cat "$run/etc/debian_version"), $(du -sm "$run" | cut -f1) MiB"
t_prepare="$(($(date +%s) - t)) s"

# --- 3. bind mounts ----------------------------------------------------------------------------------------------
# What a booted Debian 12 has and a bare chroot lacks: a root that is a mount point (`unshare -m`, used by the
# disk-full tests, cannot change the propagation of a root that is not one) and the cgroup hierarchy under
# /sys/fs/cgroup, a mount of its own that a plain bind of /sys leaves out (slurmd refuses to start without it).
mount --bind "$run" "$run"
mounted+=("$run")
cgroup_mounts=$(mounts_under /sys/fs/cgroup | sort | sed 's|^/||')
for m in proc sys $cgroup_mounts dev dev/pts dev/shm; do
  mkdir -p "$run/$m"
  mountpoint -q "$run/$m" && die "$run/$m is already a mount point"
  mount --bind "/$m" "$run/$m"
  mounted+=("$run/$m")
done
binds=("${mounted[@]:1}")
say "bind-mounted: the run tree onto itself, ${binds[*]#"$run"}"

# --- 4. tools/demo.sh (with --demo), then tools/test.sh, in the chroot ----------------------------------------------
# shellcheck disable=SC2317  # invoked through run_bg
in_chroot() {  # in_chroot SCRIPT OUTPUT; pipefail: the status is the script's (tee succeeds)
  chroot "$run" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c "cd /src && exec $1" 2>&1 | tee "$2"
}
# On INT/TERM the trap stops everything inside the chroot before unmounting.
demo_rc=0 t_demo=""
if [ "$with_demo" -eq 1 ]; then
  phase "tools/demo.sh inside the chroot (as root, clean environment)"
  demo_out=$(mktemp "$FRESH_ROOT/demo-output.XXXXXX")
  t=$(date +%s)
  run_bg in_chroot tools/demo.sh "$demo_out" || demo_rc=$?
  t_demo="$(($(date +%s) - t)) s"
fi
phase "tools/test.sh inside the chroot (as root, clean environment)"
test_out=$(mktemp "$FRESH_ROOT/test-output.XXXXXX")
t=$(date +%s)
test_rc=0
run_bg in_chroot tools/test.sh "$test_out" || test_rc=$?
t_test="$(($(date +%s) - t)) s"

# --- 5. findings and summary -------------------------------------------------------------------------------------
leftover=$(procs_in "$run" | tr '\n' ' ')
ctest_line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$test_out" | tail -n1 || true)
failed_tests=$(sed -n '/The following tests FAILED:/,/^[^[:space:]]/p' "$test_out" | grep -E '^[[:space:]]+[0-9]+ - ' || true)
timing_line=$(grep -E '^test\.sh: build [0-9]+ s, tests [0-9]+ s' "$test_out" | tail -n1 || true)
# test.sh prints that line only when ctest passed; its earlier build line is there either way.
[ -n "$timing_line" ] || timing_line=$(grep -E '^test\.sh: build took [0-9]+ s' "$test_out" | tail -n1 || true)
nccl_line=$(grep -E 'NCCL backend +:' "$test_out" | head -n1 | sed -E 's/^-- *//; s/ +:/:/' || true)
sanitizer_line=$(grep -E 'sanitizers +:' "$test_out" | head -n1 | sed -E 's/^-- *//; s/ +:/:/' || true)
# The first install-deps run (demo.sh's with --demo) is the one that installed the packages.
installed_line=$(cat ${demo_out:+"$demo_out"} "$test_out" \
  | grep -E '^install-deps: (installing [0-9]+ packages|all [0-9]+ packages present)' | head -n1 \
  | sed 's/^install-deps: //; s/:.*//' || true)
denied=$(grep -c 'policy-rc.d denied execution' "$run/var/log/apt/term.log" 2>/dev/null || true)
denied=${denied:-0}
policy_left=no
[ ! -e "$run/usr/sbin/policy-rc.d" ] || policy_left=yes
total="$(($(date +%s) - t0)) s"
rest=""
if [[ $timing_line =~ build\ ([0-9]+)\ s,\ tests\ ([0-9]+)\ s ]]; then
  rest="; install-deps + configure $((${t_test% s} - BASH_REMATCH[1] - BASH_REMATCH[2])) s"
elif [[ $timing_line =~ build\ took\ ([0-9]+)\ s ]] && [ "$test_rc" -ne 0 ]; then
  rest="; ctest failed, so test.sh printed no test time"
fi
if [ "$test_rc" -eq 0 ]; then verdict="PASSED"; else verdict="FAILED (tools/test.sh exit code $test_rc)"; fi
demo_line=""
if [ "$with_demo" -eq 1 ]; then
  if [ "$demo_rc" -eq 0 ]; then demo_line="passed"; else demo_line="FAILED (exit code $demo_rc)"; verdict="FAILED (tools/demo.sh exit code $demo_rc; tools/test.sh: $verdict)"; fi
  demo_line="$t_demo, $demo_line; $(grep -c '^== ' "$demo_out" || true) steps started, last: $({ grep '^== ' "$demo_out" || true; } | tail -n1 | sed 's/^== //; s/ ==$//')"
fi

cat <<EOF

==== check-fresh summary ====
result            : $verdict
started / ended   : $started / $(date '+%F %T %Z')
host kernel       : $(uname -sr) ($(nproc) cores)
chroot            : $(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' "$run/etc/os-release"), debian_version $(cat "$run/etc/debian_version"), $suite/$arch/$variant
project commit    : $(git -C "$run/src" log -1 --format='%h %s')
phase debootstrap : $t_debootstrap
phase copy+clone  : $t_prepare
${demo_line:+phase demo.sh     : $demo_line
}phase test.sh     : $t_test${timing_line:+ (${timing_line#test.sh: }$rest)}
total             : $total
ctest             : ${ctest_line:-(no ctest summary line found)}
${failed_tests:+failed tests      :
$failed_tests
}install-deps      : ${installed_line:-(no install-deps line found)} (see the log for the list)
configure         : ${nccl_line:-NCCL line not found}; ${sanitizer_line:-sanitizer line not found}
daemons           : policy-rc.d denied $denied start(s) during apt; left in place: $policy_left; processes left in the chroot: ${leftover:-none}
log               : $log
EOF

if [ "$remove_run" -eq 1 ]; then
  stop_procs_in "$run"
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    if mountpoint -q "${mounted[i]}"; then umount "${mounted[i]}"; fi
  done
  mounted=()
  remove_tree "$run"
  say "removed $run"
fi
if [ "$demo_rc" -ne 0 ]; then exit "$demo_rc"; fi
exit "$test_rc"
