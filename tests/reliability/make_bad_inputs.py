#!/usr/bin/env python3
"""Damaged inputs for tests/reliability/bad_input.sh, each made from a good file in one Python process (h5py and
numpy; Debian's /usr/bin/python3). Usage: make_bad_inputs.py GOOD_CHECKPOINT GOOD_DATASET OUT_DIR

Checkpoints get one fault each (ck-*.h5): bytes (truncated, a flipped data byte, empty, text), structure (a tensor
missing, extra, reshaped, stored as int32; not an unlearn file) and root attributes (format_version, kind, dtype,
config, content_digest). Datasets (ds-*.h5): a token outside the vocabulary, a missing array, a canary insertion
out of range, a newer format version, truncation. Safetensors directories (st-*/, GPT-2 from tests/io/hf_fixture.py):
header length, header JSON, offsets, dtype, shape/size mismatch, __metadata__, trailing bytes, an index that leaves
the directory or lists a tensor the shard lacks, config.json missing or of another model type, a missing tensor.
GPT-2 tokenizer directories (tok-*/): a byte without a token, an unknown merge, a blank line, a reused id, a gap,
a directory in place of encoder.json.
"""
import json
import os
import shutil
import struct
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "io"))
import hf_fixture  # noqa: E402  (numpy-only safetensors writer, independent of ours)

good_ck, good_ds, out = sys.argv[1:4]
os.makedirs(out, exist_ok=True)


def copy(src, name):
    dst = os.path.join(out, name)
    shutil.copyfile(src, dst)
    return dst


def h5edit(src, name, edit):
    path = copy(src, name)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


# ---- checkpoints -----------------------------------------------------------------------------------------------
size = os.path.getsize(good_ck)
with open(copy(good_ck, "ck-truncated.h5"), "r+b") as f:
    f.truncate(size // 2)
open(os.path.join(out, "ck-empty.h5"), "wb").close()
with open(os.path.join(out, "ck-text.h5"), "w") as f:
    f.write("step,loss\n1,2.5\n" * 8)
# A flipped byte inside a tensor's first chunk: the Fletcher32 checksum of that chunk no longer matches.
path = copy(good_ck, "ck-flipped.h5")
with h5py.File(path, "r") as f:
    chunk = f["tensors/layers.0.mlp.up_proj.weight"].id.get_chunk_info(0)
with open(path, "r+b") as f:
    f.seek(chunk.byte_offset + 13)
    b = f.read(1)
    f.seek(chunk.byte_offset + 13)
    f.write(bytes([b[0] ^ 0x04]))


def set_attr(key, value):
    def edit(f):
        f.attrs[key] = value
    return edit


h5edit(good_ck, "ck-version2.h5", set_attr("format_version", np.int64(2)))
h5edit(good_ck, "ck-kind.h5", set_attr("kind", "optimizer"))
h5edit(good_ck, "ck-dtype-attr.h5", set_attr("dtype", "float8"))
h5edit(good_ck, "ck-config.h5", set_attr("config.d_model", "thirty-two"))
h5edit(good_ck, "ck-step-type.h5", set_attr("step", 1.5))
h5edit(good_ck, "ck-digest.h5", set_attr("content_digest", "0000000000000000"))
h5edit(good_ck, "ck-digest-text.h5", set_attr("content_digest", "sha256:abc"))
h5edit(good_ck, "ck-missing-tensor.h5", lambda f: f.__delitem__("tensors/ln_f.bias"))


def extra(f):
    f["tensors/lm_head.weight"] = np.zeros((4, 4), dtype="<f4")


h5edit(good_ck, "ck-extra-tensor.h5", extra)


def reshape(f):
    n = f["tensors/ln_f.bias"].shape[0]
    del f["tensors/ln_f.bias"]
    f.create_dataset("tensors/ln_f.bias", data=np.zeros(n + 1, dtype="<f4"))


h5edit(good_ck, "ck-shape.h5", reshape)


def as_int(f):
    n = f["tensors/ln_f.bias"].shape[0]
    del f["tensors/ln_f.bias"]
    f.create_dataset("tensors/ln_f.bias", data=np.zeros(n, dtype="<i4"))


h5edit(good_ck, "ck-int-tensor.h5", as_int)
with h5py.File(os.path.join(out, "ck-foreign.h5"), "w") as f:  # an HDF5 file from elsewhere
    f["tensors/wte.weight"] = np.zeros((4, 4), dtype="<f4")
    f.attrs["framework"] = "keras"

# ---- datasets --------------------------------------------------------------------------------------------------


def token_oob(f):
    t = f["tokens"][...]
    t[5] = 9999
    del f["tokens"]
    f["tokens"] = t


h5edit(good_ds, "ds-token.h5", token_oob)
h5edit(good_ds, "ds-no-doc-ids.h5", lambda f: f.__delitem__("doc_ids"))


def canary_oob(f):
    d = f["canaries/insertion_document"][...]
    d[0] = 10 ** 6
    del f["canaries/insertion_document"]
    f["canaries/insertion_document"] = d


h5edit(good_ds, "ds-canary.h5", canary_oob)
h5edit(good_ds, "ds-version.h5", set_attr("format_version", np.int64(9)))
with open(copy(good_ds, "ds-truncated.h5"), "r+b") as f:
    f.truncate(os.path.getsize(good_ds) * 2 // 3)

# ---- safetensors -----------------------------------------------------------------------------------------------


def st_dir(name, shards=1):
    d = os.path.join(out, name)
    os.makedirs(d)
    hf_fixture.make(d, "gpt2", "F32", shards)
    return d


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), f.read()


def write_st(path, header, data, text=None):
    text = json.dumps(header).encode() if text is None else text
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def st_edit(name, edit):
    d = st_dir(name)
    header, data = read_st(d + "/model.safetensors")
    result = edit(header, data)
    if result is not None:
        header, data = result
    write_st(d + "/model.safetensors", header, data)


def shape_mismatch(h, data):
    h["wte.weight"]["shape"] = [h["wte.weight"]["shape"][0], 47]  # 48 columns of data, header says 47


st_edit("st-shape", shape_mismatch)
st_edit("st-metadata", lambda h, data: h.__setitem__("__metadata__", ["pt"]))
st_edit("st-trailing", lambda h, data: (h, data + bytes(16)))


def int_dtype(h, data):
    h["ln_f.bias"]["dtype"] = "I32"  # a known safetensors dtype of the right size, but not a weight type


st_edit("st-int-dtype", int_dtype)


def drop_tensor(h, data):
    e = h.pop("h.1.mlp.c_proj.bias")
    lo, hi = e["data_offsets"]
    for v in h.values():
        if isinstance(v, dict) and "data_offsets" in v and v["data_offsets"][0] >= hi:
            v["data_offsets"] = [v["data_offsets"][0] - (hi - lo), v["data_offsets"][1] - (hi - lo)]
    return h, data[:lo] + data[hi:]


st_edit("st-missing-tensor", drop_tensor)
d = st_dir("st-short")
with open(d + "/model.safetensors", "wb") as f:
    f.write(b"\x10\x00\x00\x00\x00")
d = st_dir("st-zero-header")
header, data = read_st(d + "/model.safetensors")
write_st(d + "/model.safetensors", header, data, text=b"")
d = st_dir("st-header-array")
header, data = read_st(d + "/model.safetensors")
write_st(d + "/model.safetensors", header, data, text=b"[]      ")
d = st_dir("st-name-utf8")
header, data = read_st(d + "/model.safetensors")
text = json.dumps(header).encode().replace(b'"ln_f.bias"', b'"ln_f.bias\xff"')
write_st(d + "/model.safetensors", header, data, text=text)
d = st_dir("st-no-config")
os.remove(d + "/config.json")
d = st_dir("st-bert")
cfg = json.load(open(d + "/config.json"))
cfg["model_type"] = "bert"
json.dump(cfg, open(d + "/config.json", "w"))
d = st_dir("st-index-escape", shards=2)
index = json.load(open(d + "/model.safetensors.index.json"))
first = sorted(index["weight_map"])[0]
index["weight_map"][first] = "../" + index["weight_map"][first]
json.dump(index, open(d + "/model.safetensors.index.json", "w"))
d = st_dir("st-index-extra", shards=2)
index = json.load(open(d + "/model.safetensors.index.json"))
index["weight_map"]["h.7.ln_1.weight"] = "model-00001-of-00002.safetensors"
json.dump(index, open(d + "/model.safetensors.index.json", "w"))

# ---- GPT-2 tokenizer files -------------------------------------------------------------------------------------


def byte_to_unicode():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tokenizer(name, vocab, merges_text):
    d = os.path.join(out, name)
    os.makedirs(d)
    with open(d + "/encoder.json", "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(d + "/vocab.bpe", "w", encoding="utf-8") as f:
        f.write(merges_text)


b2u = byte_to_unicode()
base = {b2u[b]: b for b in range(256)}
merges = "#version: 0.2\n\u0120 t\nh e\n"
good_vocab = dict(base, **{"\u0120t": 256, "he": 257, "<|endoftext|>": 258})
tokenizer("tok-good", good_vocab, merges)
missing = dict(good_vocab)
del missing[b2u[ord("q")]]
missing = {k: i for i, k in enumerate(missing)}  # ids stay dense
tokenizer("tok-missing-byte", missing, merges)
tokenizer("tok-unknown-merge", good_vocab, merges + "x yz\n")
tokenizer("tok-blank-line", good_vocab, "#version: 0.2\n\u0120 t\n\nh e\n")
reused = dict(good_vocab)
reused["he"] = 256
tokenizer("tok-reused-id", reused, merges)
gap = dict(good_vocab)
gap["<|endoftext|>"] = 300
tokenizer("tok-id-gap", gap, merges)
tokenizer("tok-dir", good_vocab, merges)
os.remove(os.path.join(out, "tok-dir", "encoder.json"))
os.makedirs(os.path.join(out, "tok-dir", "encoder.json"))
print("bad inputs in", out)
