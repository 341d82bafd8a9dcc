#!/usr/bin/env bash
# `unlearn inspect` at RANKS ranks: the table and --json of a good checkpoint; a flipped data byte (found with h5py's
# chunk index), a flipped metadata byte and a missing file each give exit 1 and one message naming the problem.
# Usage: inspect.sh CKPT_TOOL RANKS   (env: MPIEXEC, UNLEARN_BIN)
set -u
tool=$1 ranks=$2
py=/usr/bin/python3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
run() { timeout 120 "${MPIEXEC:-mpiexec}" -n "$ranks" --oversubscribe --bind-to none "$@"; }
fail=0
check() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; fi; }

run "$tool" write "$dir" 1 > /dev/null || { echo "FAIL: write"; exit 1; }
good=$dir/step-00000001.h5
run "$UNLEARN_BIN" inspect "$good" --log-level warn > "$dir/table" 2> "$dir/err"
check '[ $? -eq 0 ]' "inspect of a good checkpoint failed: $(cat "$dir/err")"
cat "$dir/table" | head -12
check 'grep -q "^  layers.0.attn.q_proj.weight  *48 x 48  *float32  .* ok$" "$dir/table"' "table row"
check 'grep -q "^  config.n_heads  *12$" "$dir/table"' "config attribute row"
check 'grep -q "verified: every checksum and the digest match" "$dir/table"' "verification line"

run "$UNLEARN_BIN" inspect "$good" --json > "$dir/json"
json_ok='import json, sys; d = json.load(open(sys.argv[1]))
assert d["ok"] and len(d["tensors"]) == 36 and d["attributes"]["step"] == 1, d'
check '"$py" -c "$json_ok" "$dir/json"' "--json output (only JSON on stdout)"

if "$py" -c "import h5py" 2> /dev/null; then
  cp "$good" "$dir/data.h5"
  "$py" - "$dir/data.h5" <<'PY'
import sys, h5py
path = sys.argv[1]
with h5py.File(path, "r") as f:
    info = f["tensors/layers.1.mlp.down_proj.weight"].id.get_chunk_info(0)
with open(path, "r+b") as f:
    f.seek(info.byte_offset + 33)
    b = f.read(1)
    f.seek(info.byte_offset + 33)
    f.write(bytes([b[0] ^ 0x10]))
PY
  run "$UNLEARN_BIN" inspect "$dir/data.h5" --json > "$dir/json" 2> "$dir/err"
  rc=$?
  check '[ $rc -eq 1 ]' "corrupt data: exit code $rc"
  check '[ "$(grep -c "unlearn: error: tensor .layers.1.mlp.down_proj.weight. is corrupt" "$dir/err")" -eq 1 ]' \
        "corrupt data: one message naming the tensor: $(cat "$dir/err")"
  json_bad='import json, sys; d = json.load(open(sys.argv[1]))
bad = [t["name"] for t in d["tensors"] if t["checksum"] != "ok"]
assert not d["ok"] and bad == ["layers.1.mlp.down_proj.weight"], bad'
  check '"$py" -c "$json_bad" "$dir/json"' "corrupt data: --json names exactly the damaged tensor"
fi

cp "$good" "$dir/meta.h5"
printf '\x7f' | dd of="$dir/meta.h5" bs=1 seek=21 conv=notrunc status=none  # inside the superblock
run "$UNLEARN_BIN" inspect "$dir/meta.h5" --log-level warn > /dev/null 2> "$dir/err"
rc=$?
check '[ $rc -eq 1 ] && [ "$(grep -c "unlearn: error: cannot open checkpoint .*meta.h5" "$dir/err")" -eq 1 ]' \
      "corrupt metadata: exit $rc, $(cat "$dir/err")"

run "$UNLEARN_BIN" inspect "$dir/none.h5" --log-level warn > /dev/null 2> "$dir/err"
rc=$?
check '[ $rc -eq 1 ] && [ "$(grep -c "No such file" "$dir/err")" -eq 1 ]' "missing file: exit $rc, $(cat "$dir/err")"
[ "$fail" -eq 0 ] && echo PASS
exit $fail
