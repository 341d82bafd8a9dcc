#!/usr/bin/env bash
# kill -9 of one rank in the middle of a checkpoint write, under mpiexec (design section 5): the job ends non-zero,
# nothing appears under the final name, and the previous checkpoint is byte-for-byte intact and still loads.
# Usage: killed_writer.sh CKPT_TOOL RANKS   (env: MPIEXEC, UNLEARN_BIN)
set -u
tool=$1 ranks=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
run() { timeout 120 "${MPIEXEC:-mpiexec}" -n "$ranks" --oversubscribe --bind-to none "$@"; }
fail=0
check() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; fi; }

run "$tool" write "$dir" 1 || { echo "FAIL: the first checkpoint was not written"; exit 1; }
before=$(sha256sum < "$dir/step-00000001.h5")

# The last rank stops after its 6th tensor (of 36) and waits to be killed; the others wait in the next collective.
victim=$((ranks - 1))
run "$tool" write "$dir" 2 --pause-rank "$victim" --pause-after 5 > "$dir/log" 2>&1 &
job=$!
for _ in $(seq 1 900); do [ -s "$dir/paused" ] && break; sleep 0.1; done
if [ ! -s "$dir/paused" ]; then
  echo "FAIL: the writer never reached the pause"; cat "$dir/log"; kill "$job"; exit 1
fi
ls -l "$dir"
kill -9 "$(cat "$dir/paused")"
start=$(date +%s)
wait "$job"
rc=$?
echo "writer exit code $rc after $(($(date +%s) - start)) s"
sed 's/^/  | /' "$dir/log" | tail -5

check '[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]' "the killed job must fail, not succeed or hang (rc $rc)"
check '[ ! -e "$dir/step-00000002.h5" ]' "a file appeared under the final name"
temps=$(ls "$dir" | grep -c '^step-00000002\.h5\.tmp\.' || true)
check '[ "$temps" -eq 1 ]' "expected the abandoned temporary file of the killed write, found $temps"
check '[ "$(sha256sum < "$dir/step-00000001.h5")" = "$before" ]' "the previous checkpoint changed"
check 'run "$tool" check "$dir" 1' "the previous checkpoint no longer loads"
if [ -n "${UNLEARN_BIN:-}" ]; then
  check 'run "$UNLEARN_BIN" inspect "$dir/step-00000001.h5" --log-level warn > "$dir/inspect.out"' \
        "unlearn inspect rejects the previous checkpoint"
  check 'grep -q "verified: every checksum and the digest match" "$dir/inspect.out"' "inspect did not verify"
  tmp=$(ls "$dir"/step-00000002.h5.tmp.* | head -1)
  run "$UNLEARN_BIN" inspect "$tmp" --log-level warn > "$dir/inspect.out" 2>&1
  rc=$?
  check '[ "$rc" -ne 0 ] && grep -q "temporary file of an unfinished or failed checkpoint write" "$dir/inspect.out"' \
        "inspect must refuse the temporary file (rc $rc)"
fi
[ "$fail" -eq 0 ] && echo "PASS"
exit $fail
