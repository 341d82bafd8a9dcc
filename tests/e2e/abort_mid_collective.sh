#!/usr/bin/env bash
# One rank throws while the others sit in a collective: expect a non-zero exit within seconds and the thrower's
# message, rank-prefixed. Usage: abort_mid_collective.sh PROBE RANKS
set -u
probe=$1 ranks=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s.%N)
timeout 45 "${MPIEXEC:-mpiexec}" -n "$ranks" --oversubscribe --bind-to none "$probe" >"$out" 2>&1
rc=$?
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')
cat "$out"
echo "exit code $rc after ${elapsed}s"
fail=0
[ "$rc" -ne 0 ] || { echo "FAIL: the job exited 0"; fail=1; }
[ "$rc" -ne 124 ] || { echo "FAIL: the job hung (killed by timeout)"; fail=1; }
last=$((ranks - 1))
grep -q "\[r${last}/.*\] error: injected failure on rank ${last}" "$out" \
  || { echo "FAIL: the thrower's rank-prefixed message is missing"; fail=1; }
awk -v e="$elapsed" 'BEGIN { exit !(e < 20) }' || { echo "FAIL: took ${elapsed}s (limit 20s)"; fail=1; }
exit $fail
