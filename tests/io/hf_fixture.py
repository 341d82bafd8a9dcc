"""Hugging Face-style safetensors fixtures written with numpy alone (an implementation of the format independent of
ours), and checks of `unlearn convert` against them.
  hf_fixture.py make DIR gpt2|llama F32|F16|BF16 [--shards N]   config.json + model.safetensors (or N shards + index)
  hf_fixture.py check-import DIR CHECKPOINT                     every checkpoint tensor = its HF source, remapped
  hf_fixture.py check-export DIR EXPORTED_DIR                   the export's tensors = the originals, byte for byte
  hf_fixture.py corrupt DIR KIND                                bad-json | offsets | overlap | header-length | dtype
"""
import json
import struct
import sys

import numpy as np

GPT2 = dict(model_type="gpt2", vocab_size=67, n_embd=48, n_layer=2, n_head=12, n_positions=16, n_inner=None,
            layer_norm_epsilon=1e-5, activation_function="gelu_new")
LLAMA = dict(model_type="llama", vocab_size=67, hidden_size=48, num_hidden_layers=2, num_attention_heads=12,
             num_key_value_heads=4, intermediate_size=60, max_position_embeddings=16, rms_norm_eps=1e-6,
             rope_theta=10000.0, hidden_act="silu", tie_word_embeddings=False, rope_scaling=None)
SIZES = {"F32": 4, "F16": 2, "BF16": 2}


def hf_shapes(family):
    if family == "gpt2":
        d, V, F, P = 48, 67, 192, 16
        out = {"wte.weight": (V, d), "wpe.weight": (P, d), "ln_f.weight": (d,), "ln_f.bias": (d,)}
        for l in range(2):
            h = f"h.{l}."
            out.update({h + "ln_1.weight": (d,), h + "ln_1.bias": (d,), h + "ln_2.weight": (d,), h + "ln_2.bias": (d,),
                        h + "attn.c_attn.weight": (d, 3 * d), h + "attn.c_attn.bias": (3 * d,),
                        h + "attn.c_proj.weight": (d, d), h + "attn.c_proj.bias": (d,),
                        h + "mlp.c_fc.weight": (d, F), h + "mlp.c_fc.bias": (F,),
                        h + "mlp.c_proj.weight": (F, d), h + "mlp.c_proj.bias": (d,)})
            out[h + "attn.bias"] = (1, 1, 16, 16)  # the causal-mask buffer older exports carry
        return out
    d, V, F, k = 48, 67, 60, 16
    out = {"model.embed_tokens.weight": (V, d), "model.norm.weight": (d,), "lm_head.weight": (V, d)}
    for l in range(2):
        p = f"model.layers.{l}."
        out.update({p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight": (d,),
                    p + "self_attn.q_proj.weight": (d, d), p + "self_attn.k_proj.weight": (k, d),
                    p + "self_attn.v_proj.weight": (k, d), p + "self_attn.o_proj.weight": (d, d),
                    p + "mlp.gate_proj.weight": (F, d), p + "mlp.up_proj.weight": (F, d),
                    p + "mlp.down_proj.weight": (d, F)})
    return out


def words(values, dtype):
    """Stored words of float32 `values` in `dtype` (BF16 by truncation: any 16-bit pattern is a valid bf16)."""
    if dtype == "F32":
        return values.astype("<f4").view("<u4")
    if dtype == "F16":
        return values.astype("<f2").view("<u2")
    return (values.astype("<f4").view("<u4") >> 16).astype("<u2")


def write_safetensors(path, tensors, dtype, metadata=None):
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        raw = tensors[name].tobytes()
        dt = "F32" if name.endswith(".attn.bias") else dtype
        header[name] = {"dtype": dt, "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        size = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}[e["dtype"]]
        kind = {4: "<u4", 2: "<u2", 8: "<u8"}[size]
        out[name] = (e["dtype"], np.frombuffer(data[b:end], dtype=kind).reshape(e["shape"]))
    return out


def make(directory, family, dtype, shards=1):
    rng = np.random.default_rng(7)
    tensors = {}
    for name, shape in hf_shapes(family).items():
        if name.endswith(".attn.bias"):
            tensors[name] = np.tril(np.ones(shape, dtype="<f4"))
        else:
            tensors[name] = words(rng.standard_normal(shape).astype(np.float32), dtype)
    config = dict(GPT2 if family == "gpt2" else LLAMA)
    config["torch_dtype"] = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype]
    with open(f"{directory}/config.json", "w") as f:
        json.dump(config, f)
    if shards == 1:
        write_safetensors(f"{directory}/model.safetensors", tensors, dtype, {"format": "pt"})
        return
    names = sorted(tensors)
    weight_map = {}
    for i in range(shards):
        part = names[i::shards]
        file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(f"{directory}/{file}", {n: tensors[n] for n in part}, dtype, {"format": "pt"})
        weight_map.update({n: file for n in part})
    with open(f"{directory}/model.safetensors.index.json", "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)


def ours_from_hf(hf, family):
    """Our tensor names and stored words, derived from the HF ones by the documented mapping."""
    out = {}
    if family == "gpt2":
        for name in ("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"):
            out[name] = hf[name][1]
        d = hf["wte.weight"][1].shape[1]
        for l in range(2):
            h, o = f"h.{l}.", f"layers.{l}."
            for ln in ("ln_1", "ln_2"):
                out[o + ln + ".weight"], out[o + ln + ".bias"] = hf[h + ln + ".weight"][1], hf[h + ln + ".bias"][1]
            w, b = hf[h + "attn.c_attn.weight"][1].T, hf[h + "attn.c_attn.bias"][1]
            for i, x in enumerate("qkv"):
                out[o + f"attn.{x}_proj.weight"] = w[i * d:(i + 1) * d]
                out[o + f"attn.{x}_proj.bias"] = b[i * d:(i + 1) * d]
            out[o + "attn.o_proj.weight"] = hf[h + "attn.c_proj.weight"][1].T
            out[o + "attn.o_proj.bias"] = hf[h + "attn.c_proj.bias"][1]
            out[o + "mlp.up_proj.weight"] = hf[h + "mlp.c_fc.weight"][1].T
            out[o + "mlp.up_proj.bias"] = hf[h + "mlp.c_fc.bias"][1]
            out[o + "mlp.down_proj.weight"] = hf[h + "mlp.c_proj.weight"][1].T
            out[o + "mlp.down_proj.bias"] = hf[h + "mlp.c_proj.bias"][1]
        return out
    for name, (_, w) in hf.items():
        name = name.replace("model.", "", 1).replace("self_attn.", "attn.")
        out[name] = w
    return out


def load_dir(directory):
    import glob
    hf = {}
    for path in sorted(glob.glob(f"{directory}/*.safetensors")):
        hf.update(read_safetensors(path))
    return hf


def check_import(directory, checkpoint):
    import h5py
    family = json.load(open(f"{directory}/config.json"))["model_type"]
    want = ours_from_hf(load_dir(directory), family)
    bad = []
    with h5py.File(checkpoint, "r") as f:
        got = {name: d[()] for name, d in f["tensors"].items()}
    if set(got) != set(want):
        bad.append(f"names differ: {sorted(set(got) ^ set(want))}")
    for name in sorted(set(got) & set(want)):
        g = got[name]
        g = g.view({2: "<u2", 4: "<u4"}[g.itemsize])
        if g.shape != want[name].shape or not np.array_equal(g, want[name]):
            bad.append(f"{name}: {g.shape} differs from {want[name].shape}")
    print(f"{checkpoint}: {len(got)} tensors checked against {directory}")
    for b in bad:
        print("FAIL:", b)
    return 1 if bad else 0


def check_export(directory, exported):
    orig = {k: v for k, v in load_dir(directory).items() if not k.endswith(".attn.bias")}
    back = read_safetensors(f"{exported}/model.safetensors")
    bad = [] if set(orig) == set(back) else [f"names differ: {sorted(set(orig) ^ set(back))}"]
    for name in sorted(set(orig) & set(back)):
        if orig[name][0] != back[name][0] or not np.array_equal(orig[name][1], back[name][1]):
            bad.append(f"{name}: {back[name][0]}{back[name][1].shape} != {orig[name][0]}{orig[name][1].shape}")
    cfg_a, cfg_b = json.load(open(f"{directory}/config.json")), json.load(open(f"{exported}/config.json"))
    for key, value in cfg_a.items():
        if value is not None and cfg_b.get(key, value) != value:
            bad.append(f"config.json {key}: {cfg_b.get(key)!r} != {value!r}")
    print(f"{exported}: {len(back)} tensors compared with {directory}")
    for b in bad:
        print("FAIL:", b)
    return 1 if bad else 0


def corrupt(directory, kind):
    path = f"{directory}/model.safetensors"
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    names = [k for k in header if k != "__metadata__"]
    if kind == "bad-json":
        text = json.dumps(header).encode()[:-1] + b",}"
    else:
        if kind == "offsets":
            header[names[-1]]["data_offsets"][1] += 1000
        elif kind == "overlap":
            e0, e1 = header[names[0]]["data_offsets"], header[names[1]]["data_offsets"]
            e1[0] -= 4
            e1[1] -= 4
        elif kind == "dtype":
            header[names[0]]["dtype"] = "F7"
        text = json.dumps(header).encode()
    length = len(text) if kind != "header-length" else len(text) + len(data) + 1
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", length) + text + data)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        shards = int(sys.argv[sys.argv.index("--shards") + 1]) if "--shards" in sys.argv else 1
        make(sys.argv[2], sys.argv[3], sys.argv[4], shards)
    elif cmd == "check-import":
        sys.exit(check_import(sys.argv[2], sys.argv[3]))
    elif cmd == "check-export":
        sys.exit(check_export(sys.argv[2], sys.argv[3]))
    elif cmd == "corrupt":
        corrupt(sys.argv[2], sys.argv[3])
