#!/usr/bin/env bash
# A write that runs out of space (a 160 KiB tmpfs in a private mount namespace): every rank fails with one message,
# the temporary file is removed, and nothing appears under the final name. At one rank HDF5 fails cleanly; with
# several, the failing rank leaves the others inside an HDF5 collective, so it removes the file itself and aborts
# the job after UNLEARN_IO_FAILURE_TIMEOUT seconds. Needs root and unshare: skips (77) without them.
# Usage: disk_full.sh CKPT_TOOL RANKS
set -u
tool=$1 ranks=$2
if [ "$(id -u)" -ne 0 ] || ! command -v unshare > /dev/null || ! unshare -m true 2> /dev/null; then
  echo "SKIP: needs root and mount namespaces"; exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/mnt"
export tool ranks work
unshare -m bash -c '
  mount -t tmpfs -o size=160k tmpfs "$work/mnt" || exit 77
  UNLEARN_IO_FAILURE_TIMEOUT=5 timeout 120 "${MPIEXEC:-mpiexec}" -n "$ranks" --oversubscribe --bind-to none \
    "$tool" write "$work/mnt" 3 > "$work/log" 2>&1
  echo $? > "$work/rc"
  ls -A "$work/mnt" > "$work/left"
'
rc=$(cat "$work/rc" 2> /dev/null || echo 77)
[ "$rc" = 77 ] && { echo "SKIP: could not mount a tmpfs"; exit 77; }
cat "$work/log"
echo "exit code $rc; left in the directory: $(cat "$work/left")"
fail=0
{ [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; } || { echo "FAIL: the write must fail cleanly (rc $rc)"; fail=1; }
pattern="error: writing checkpoint '.*step-00000003.h5': .*no space left on the filesystem"
[ "$(grep -c "$pattern" "$work/log")" -eq 1 ] \
  || { echo "FAIL: expected one message naming the file and the full filesystem"; fail=1; }
[ ! -s "$work/left" ] || { echo "FAIL: files were left behind"; fail=1; }
[ "$fail" -eq 0 ] && echo PASS
exit $fail
