"""Runs the h5py reader of docs/checkpoint-format.md (extracted from the page) on a checkpoint and compares every
value with the writer's reference dump (ckpt_tool --dump: float32 values), rounded to the file's storage type.
Usage: /usr/bin/python3 check_reader.py FORMAT.md CHECKPOINT DUMP_PREFIX"""
import re
import sys

import numpy as np


def load_reader(doc):
    text = open(doc, encoding="utf-8").read()
    m = re.search(r"<!-- reader:begin -->\s*```python\n(.*?)```\s*<!-- reader:end -->", text, re.S)
    if not m:
        sys.exit(f"{doc}: no reader block between the reader:begin/end markers")
    namespace = {"__name__": "checkpoint_reader"}
    exec(compile(m.group(1), doc + ":reader", "exec"), namespace)
    return namespace


def to_bf16_bits(f32):
    """Round-to-nearest-even float32 -> bf16, as ATen does (finite values)."""
    bits = f32.view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return bits.astype(np.uint16)


def expected(ref, dtype):
    if dtype == "float32":
        return ref
    if dtype == "float64":
        return ref.astype(np.float64)
    if dtype == "float16":
        return ref.astype(np.float16)
    if dtype == "bf16":
        return (to_bf16_bits(ref).astype(np.uint32) << 16).view(np.float32)
    raise ValueError(dtype)


def main(doc, path, prefix):
    reader = load_reader(doc)
    attrs, config, tensors = reader["read_checkpoint"](path)
    values = np.fromfile(prefix + ".bin", dtype="<f4")
    refs = {}
    for line in open(prefix + ".idx"):
        parts = line.split()
        name, ndim = parts[0], int(parts[1])
        shape = tuple(int(x) for x in parts[2:2 + ndim])
        offset = int(parts[2 + ndim])
        refs[name] = values[offset:offset + int(np.prod(shape))].reshape(shape)
    failures = []
    if set(refs) != set(tensors):
        failures.append(f"tensor names differ: {sorted(set(refs) ^ set(tensors))}")
    for name in sorted(set(refs) & set(tensors)):
        want = expected(refs[name], attrs["dtype"])
        got = tensors[name]
        if got.shape != want.shape or got.dtype != want.dtype or not np.array_equal(got, want):
            failures.append(f"{name}: {got.dtype}{got.shape} differs from {want.dtype}{want.shape}")
    digest = reader["content_digest"](path)
    if digest != attrs["content_digest"]:
        failures.append(f"content digest {digest} != stored {attrs['content_digest']}")
    if config["family"] != "gpt2" or int(config["n_heads"]) != 12 or attrs["tokenizer"] != "bytes":
        failures.append(f"attributes: {config} tokenizer {attrs['tokenizer']!r}")
    print(f"{path}: {len(tensors)} tensors ({attrs['dtype']}), digest {digest}, provenance "
          f"{attrs['provenance.rank_layout']!r}")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
