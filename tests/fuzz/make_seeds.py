#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): small hand-made inputs that reach
each decoder's accepting paths, so libFuzzer starts from valid structure. Run from anywhere; rewrites the files.
The seeds are committed; this script documents how they were made."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- safetensors: whole files (8-byte length, JSON header, data) and a shard index ---------------------------
def safetensors(entries, metadata=None, pad=True, data_extra=b""):
    header, pos = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "U8": 1, "BOOL": 1}
    for name, dtype, shape in entries:
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [pos, pos + n]}
        pos += n
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + bytes(range(256)) * (pos // 256) + bytes(pos % 256) + data_extra


put("safetensors", "gpt2_two_tensors", safetensors([("wte.weight", "F32", [4, 2]), ("ln_f.bias", "F32", [2])],
                                                   {"format": "pt"}))
put("safetensors", "mixed_dtypes_empty", safetensors([("a", "BF16", [3]), ("empty", "F16", [0, 5]),
                                                      ("b", "F64", [1, 1, 2]), ("mask", "BOOL", [3])]))
put("safetensors", "unicode_name", safetensors([("h.0.attn.c_attn.weight\u00e9", "F16", [2, 6])], {"k\"ey": "v\\al"}))
put("safetensors", "bad_offsets", b'\x30\x00\x00\x00\x00\x00\x00\x00'
    + b'{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,9]}}'[:48] + bytes(8))
put("safetensors", "index", json.dumps({"metadata": {"total_size": 40},
                                        "weight_map": {"wte.weight": "model-00001-of-00002.safetensors",
                                                       "ln_f.bias": "model-00002-of-00002.safetensors"}}))

# ---- json: config.json-like documents, escapes, numbers; first line doubles as an option value ------------------
put("json", "gpt2_config", json.dumps({"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768, "n_layer": 12,
                                       "n_head": 12, "n_positions": 1024, "layer_norm_epsilon": 1e-05,
                                       "activation_function": "gelu_new", "tie_word_embeddings": True,
                                       "n_inner": None, "architectures": ["GPT2LMHeadModel"]}, indent=2))
put("json", "llama_config", json.dumps({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
                                        "num_attention_heads": 4, "num_key_value_heads": 2,
                                        "intermediate_size": 176, "rms_norm_eps": 1e-6, "rope_theta": 500000.0,
                                        "rope_scaling": None, "torch_dtype": "bfloat16"}))
put("json", "escapes", '["\\u00e9\\ud83d\\ude00", "\\"\\\\\\/\\b\\f\\n\\r\\t", "caf\u00e9", -0.0, 1E+2, 0,'
    ' 18446744073709551615, 18446744073709551616, [], {}, [[[{"a": null}]]], true, false]')
put("json", "size_256M", "256M\n{\"a\": 1}")
put("json", "ids_list", "1,2,4,17\n[1, 2, 4, 17]")
put("json", "size_64KiB", "64KiB")

# ---- tokenizer files: encoder.json NUL vocab.bpe -----------------------------------------------------------------
def byte_to_unicode():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


b2u = byte_to_unicode()
vocab = {b2u[b]: b for b in range(256)}
merges = [("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("i", "n")]
for left, right in merges:
    vocab[left + right] = len(vocab)
vocab["<|endoftext|>"] = len(vocab)
encoder = json.dumps(vocab, ensure_ascii=False)
bpe = "#version: 0.2\n" + "".join("%s %s\n" % m for m in merges)
put("tokenizer_files", "small_vocabulary", encoder.encode() + b"\0" + bpe.encode())
put("tokenizer_files", "small_vocabulary_ascii_escapes", json.dumps(vocab).encode() + b"\0" + bpe.encode()[14:])
put("tokenizer_files", "pretokenize_text", "Hello world's 123 caf\u00e9  \t\n it'll \u00a0x\U0001F600!!".encode()
    + b"\xff\xc3")

# ---- checkpoint attributes: encode_attribute_record of a checkpoint's root attributes ---------------------------
def record(attrs):
    out = b""
    for key in sorted(attrs):
        v = attrs[key]
        if isinstance(v, str):
            tag, text = b"s", v.encode()
        elif isinstance(v, int):
            tag, text = b"i", str(v).encode()
        else:
            tag, text = b"d", str(struct.unpack("<Q", struct.pack("<d", v))[0]).encode()
        k = key.encode()
        out += tag + str(len(k)).encode() + b":" + k + str(len(text)).encode() + b":" + text
    return out


gpt2 = {"format": "unlearn-checkpoint", "format_version": 1, "kind": "model", "step": 12, "dtype": "float32",
        "tokenizer": "bytes", "content_digest": "0123456789abcdef",
        "config.family": "gpt2", "config.vocab_size": "256", "config.d_model": "32", "config.n_layers": "2",
        "config.n_heads": "4", "config.n_kv_heads": "4", "config.d_ff": "64", "config.max_positions": "64",
        "config.norm_eps": "1.0000000000000001e-05", "config.rope_theta": "10000", "config.dtype": "float64",
        "provenance.git_revision": "1839fdc", "provenance.seed": "3", "provenance.created_utc": "2024-01-01T00:00:00Z"}
put("checkpoint_attributes", "gpt2_checkpoint", record(gpt2))
llama = dict(gpt2, **{"config.family": "llama", "config.n_kv_heads": "2", "dtype": "bf16", "step": 0,
                      "config.rope_theta": "500000", "provenance.learning_rate": 0.001})
del llama["config.norm_eps"]
put("checkpoint_attributes", "llama_checkpoint", record(llama))
put("checkpoint_attributes", "optimizer_state", record({"format": "unlearn-optimizer", "step": 8,
                                                        "train.fingerprint": "lr=0.001;steps=12", "rz": 0.25}))
put("checkpoint_attributes", "bad_config", record(dict(gpt2, **{"config.d_model": "12x", "format_version": 2})))
