#!/usr/bin/env bash
# The C++ model (TP = 1, float64) against the independent PyTorch implementation in tests/oracle, with Debian's
# /usr/bin/python3 and python3-torch: loss, gradient, H·v and G·v within 1e-8 for GPT-2 and LLaMA (12 and 1 KV heads).
# Usage: oracle.sh EXPORTER SOURCE_DIR
set -euo pipefail
exporter=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for spec in "gpt2 12" "llama 12" "llama 1"; do
  set -- $spec
  "$exporter" "$tmp/$1_$2.h5" "$1" "$2"
  /usr/bin/python3 "$src/tests/oracle/check_model.py" "$tmp/$1_$2.h5" --tol 1e-8
done
