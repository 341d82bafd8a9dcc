#!/usr/bin/env bash
# `unlearn convert` at RANKS ranks against Hugging Face-style fixtures written by numpy (hf_fixture.py): GPT-2 in f32
# (one file) and bf16 (3 shards + index), LLaMA with grouped KV heads in f16. Import = the documented remapping
# (Conv1D transposed, c_attn split); export = the original tensors byte for byte; the imported checkpoint loads and
# verifies; malformed safetensors fail with one message and exit 1. Usage: convert.sh RANKS   (env: UNLEARN_BIN)
set -u
ranks=$1
py=/usr/bin/python3
here=$(cd "$(dirname "$0")" && pwd)
"$py" -c "import h5py, numpy" 2> /dev/null || { echo "SKIP: $py lacks h5py/numpy"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
run() { timeout 120 "${MPIEXEC:-mpiexec}" -n "$ranks" --oversubscribe --bind-to none "$UNLEARN_BIN" "$@"; }
fail=0
check() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; fi; }

for spec in "gpt2 F32 1" "gpt2 BF16 3" "llama F16 1"; do
  set -- $spec
  src=$dir/hf-$1-$2 ck=$dir/$1-$2.h5 out=$dir/out-$1-$2
  mkdir "$src"
  "$py" "$here/hf_fixture.py" make "$src" "$1" "$2" --shards "$3"
  check 'run convert "$src" "$ck" --log-level warn' "import $spec"
  check '"$py" "$here/hf_fixture.py" check-import "$src" "$ck"' "imported tensors ($spec)"
  check 'run inspect "$ck" --log-level warn > /dev/null' "inspect of the imported checkpoint ($spec)"
  check 'run convert "$ck" "$out" --log-level warn' "export $spec"
  check '"$py" "$here/hf_fixture.py" check-export "$src" "$out"' "exported tensors ($spec)"
done
check '! run convert "$dir/gpt2-F32.h5" "$dir/out-gpt2-F32" --log-level warn 2> /dev/null' \
      "export must refuse to replace files"

for kind in bad-json offsets overlap header-length dtype; do
  src=$dir/bad-$kind
  mkdir "$src"
  "$py" "$here/hf_fixture.py" make "$src" gpt2 F32
  "$py" "$here/hf_fixture.py" corrupt "$src" "$kind"
  run convert "$src" "$dir/bad-$kind.h5" --log-level warn > /dev/null 2> "$dir/err"
  rc=$?
  echo "  $kind: exit $rc: $(grep 'unlearn: error' "$dir/err")"
  check '[ $rc -eq 1 ] && [ "$(grep -c "unlearn: error: .*model.safetensors" "$dir/err")" -eq 1 ]' \
        "$kind: expected exit 1 and one message naming the file"
  check '[ ! -e "$dir/bad-$kind.h5" ]' "$kind: a checkpoint appeared"
done
[ "$fail" -eq 0 ] && echo PASS
exit $fail
