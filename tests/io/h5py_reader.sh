#!/usr/bin/env bash
# The documented h5py reader (docs/checkpoint-format.md) against checkpoints written at TP = RANKS in every storage
# type: every value equals the writer's, the digest recomputes, the reader's own CLI passes; h5dump reads it too.
# Usage: h5py_reader.sh CKPT_TOOL RANKS SOURCE_DIR
set -u
tool=$1 ranks=$2 src=$3
py=/usr/bin/python3
"$py" -c "import h5py" 2> /dev/null || { echo "SKIP: $py has no h5py (apt-get install python3-h5py)"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0
step=0
for storage in float32 float16 bf16 float64; do
  step=$((step + 1))
  timeout 120 "${MPIEXEC:-mpiexec}" -n "$ranks" --oversubscribe --bind-to none "$tool" write "$dir" "$step" \
    --storage "$storage" --dump "$dir/ref" > /dev/null || { echo "FAIL: write ($storage)"; fail=1; continue; }
  file=$dir/$(printf 'step-%08d.h5' "$step")
  "$py" "$src/tests/io/check_reader.py" "$src/docs/checkpoint-format.md" "$file" "$dir/ref" || fail=1
done
# The reader block also runs as a script.
sed -n '/<!-- reader:begin -->/,/<!-- reader:end -->/p' "$src/docs/checkpoint-format.md" | sed '1,2d;$d' | sed '$d' \
  > "$dir/reader.py"
"$py" "$dir/reader.py" "$dir/step-00000001.h5" || { echo "FAIL: the reader script"; fail=1; }
if command -v h5dump > /dev/null; then
  h5dump -H "$dir/step-00000001.h5" | grep -q 'DATASET "layers.0.attn.q_proj.weight"' \
    || { echo "FAIL: h5dump does not show the tensors"; fail=1; }
fi
[ "$fail" -eq 0 ] && echo PASS
exit $fail
