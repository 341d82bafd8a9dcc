"""Independent float64 PyTorch reference of the tensor-parallel GPT-2 / LLaMA models.

Everything is a plain function of a dict ``params`` (name -> tensor) so that autograd and
functorch can differentiate with respect to the whole dict.  Conventions follow
docs/design.md 3.0, 3.1 and 4 and the oracle brief (tests/oracle/README.md):

* loss = mean over target tokens (targets != -1) of -log softmax(logits[b,t])[targets[b,t]];
  targets are already shifted (the target of position t is stored at t).
* a query at t attends to key s iff s <= t and segments[b,s] == segments[b,t].
* ``positions`` (position inside the own document) feeds wpe (GPT-2) and RoPE (LLaMA).

Run with Debian's /usr/bin/python3 (torch 1.13, functorch, h5py).
"""

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F

DTYPE = torch.float64

CONFIG_INT_KEYS = ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff",
                   "max_positions")
CONFIG_FLOAT_KEYS = ("norm_eps", "rope_theta")
BATCH_KEYS = ("tokens", "targets", "segments", "positions")


class MalformedFile(Exception):
    """The exchange file (or config) does not follow the agreed layout."""


# ----------------------------------------------------------------------------- config

def normalise_config(cfg):
    """Validate a config dict and fill the family's defaults; raises MalformedFile."""
    cfg = dict(cfg)
    fam = cfg.get("family")
    if isinstance(fam, bytes):
        fam = fam.decode("utf-8")
    if fam not in ("gpt2", "llama"):
        raise MalformedFile("config attribute 'family' must be 'gpt2' or 'llama', got %r" % (fam,))
    cfg["family"] = fam
    need = ["vocab_size", "d_model", "n_layers", "n_heads", "d_ff"]
    need += ["max_positions"] if fam == "gpt2" else ["norm_eps", "rope_theta"]
    missing = [k for k in need if k not in cfg]
    if missing:
        raise MalformedFile("config attributes missing for %s: %s" % (fam, ", ".join(missing)))
    for k in CONFIG_INT_KEYS:
        if k in cfg:
            v = cfg[k]
            if int(v) != v or int(v) <= 0:
                raise MalformedFile("config attribute %s must be a positive integer, got %r" % (k, v))
            cfg[k] = int(v)
    for k in CONFIG_FLOAT_KEYS:
        if k in cfg:
            cfg[k] = float(cfg[k])
    if fam == "gpt2":
        # GPT-2 has no GQA; eps is fixed by the architecture (design 4).
        cfg.setdefault("n_kv_heads", cfg["n_heads"])
        cfg.setdefault("norm_eps", 1e-5)
        if cfg["n_kv_heads"] != cfg["n_heads"]:
            raise MalformedFile("gpt2 requires n_kv_heads == n_heads")
        if abs(cfg["norm_eps"] - 1e-5) > 1e-12:
            raise MalformedFile("gpt2 norm_eps must be 1e-5, got %g" % cfg["norm_eps"])
    else:
        cfg.setdefault("n_kv_heads", cfg["n_heads"])
    if cfg["d_model"] % cfg["n_heads"]:
        raise MalformedFile("d_model %d not divisible by n_heads %d" % (cfg["d_model"], cfg["n_heads"]))
    if cfg["n_heads"] % cfg["n_kv_heads"]:
        raise MalformedFile("n_heads %d not divisible by n_kv_heads %d" % (cfg["n_heads"], cfg["n_kv_heads"]))
    if fam == "llama" and (cfg["d_model"] // cfg["n_heads"]) % 2:
        raise MalformedFile("RoPE needs an even head_dim")
    cfg["head_dim"] = cfg["d_model"] // cfg["n_heads"]
    return cfg


def param_shapes(cfg):
    """Ordered name -> shape of every parameter, in the agreed [out, in] orientation."""
    V, d, dff, hd = cfg["vocab_size"], cfg["d_model"], cfg["d_ff"], cfg["head_dim"]
    s = OrderedDict()
    if cfg["family"] == "gpt2":
        s["wte.weight"] = (V, d)
        s["wpe.weight"] = (cfg["max_positions"], d)
        for i in range(cfg["n_layers"]):
            p = "layers.%d." % i
            s[p + "ln_1.weight"] = (d,)
            s[p + "ln_1.bias"] = (d,)
            for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
                s[p + "attn.%s.weight" % proj] = (d, d)
                s[p + "attn.%s.bias" % proj] = (d,)
            s[p + "ln_2.weight"] = (d,)
            s[p + "ln_2.bias"] = (d,)
            s[p + "mlp.up_proj.weight"] = (dff, d)
            s[p + "mlp.up_proj.bias"] = (dff,)
            s[p + "mlp.down_proj.weight"] = (d, dff)
            s[p + "mlp.down_proj.bias"] = (d,)
        s["ln_f.weight"] = (d,)
        s["ln_f.bias"] = (d,)
    else:
        nq, nkv = cfg["n_heads"] * hd, cfg["n_kv_heads"] * hd
        s["embed_tokens.weight"] = (V, d)
        for i in range(cfg["n_layers"]):
            p = "layers.%d." % i
            s[p + "input_layernorm.weight"] = (d,)
            s[p + "attn.q_proj.weight"] = (nq, d)
            s[p + "attn.k_proj.weight"] = (nkv, d)
            s[p + "attn.v_proj.weight"] = (nkv, d)
            s[p + "attn.o_proj.weight"] = (d, nq)
            s[p + "post_attention_layernorm.weight"] = (d,)
            s[p + "mlp.gate_proj.weight"] = (dff, d)
            s[p + "mlp.up_proj.weight"] = (dff, d)
            s[p + "mlp.down_proj.weight"] = (d, dff)
        s["norm.weight"] = (d,)
        s["lm_head.weight"] = (V, d)
    return s


def is_norm_weight(name):
    return name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight", "layernorm.weight",
                          "norm.weight"))


# ----------------------------------------------------------------------------- model pieces

def attention_mask(segments):
    """[B,1,T,T] bool: query t may see key s iff s <= t and same document."""
    T = segments.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=segments.device).tril()
    same = segments[:, :, None] == segments[:, None, :]
    return (causal[None] & same)[:, None]


def attend(q, k, v, mask):
    """q [B,H,T,hd], k/v [B,H,T,hd] (already repeated for GQA). Plain math path."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    # Every query sees at least itself, so no row is all -inf (no NaN from softmax).
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def split_heads(x, n):
    B, T, _ = x.shape
    return x.view(B, T, n, -1).transpose(1, 2)


def merge_heads(x):
    B, H, T, hd = x.shape
    return x.transpose(1, 2).reshape(B, T, H * hd)


def gelu_tanh(x):
    # Written out rather than F.gelu(approximate='tanh') so the formula is visible.
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_cos_sin(positions, head_dim, theta, dtype=DTYPE):
    """cos/sin [B,T,hd] in Hugging Face layout: angles duplicated, not interleaved.
    Computed in float64, returned in ``dtype`` (the model's; the peers also run float32)."""
    j = torch.arange(0, head_dim // 2, dtype=DTYPE, device=positions.device)
    inv_freq = 1.0 / theta ** (2.0 * j / head_dim)
    ang = positions.to(DTYPE)[..., None] * inv_freq
    emb = torch.cat([ang, ang], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def apply_rope(x, cos, sin):
    """x [B,H,T,hd]; cos/sin [B,T,hd] broadcast over heads."""
    return x * cos[:, None] + rotate_half(x) * sin[:, None]


def param_dtype(params):
    """The model's floating dtype (float64 here; the benchmark peers also use float32)."""
    return next(iter(params.values())).dtype


def _linear(x, params, name, bias=True):
    w = params[name + ".weight"]
    y = x @ w.t()
    return y + params[name + ".bias"] if bias else y


def gpt2_logits(params, cfg, batch):
    tok, pos = batch["tokens"], batch["positions"]
    d, eps, H = cfg["d_model"], cfg["norm_eps"], cfg["n_heads"]
    mask = attention_mask(batch["segments"])
    x = params["wte.weight"][tok] + params["wpe.weight"][pos]
    for i in range(cfg["n_layers"]):
        p = "layers.%d." % i
        a = F.layer_norm(x, (d,), params[p + "ln_1.weight"], params[p + "ln_1.bias"], eps)
        q = split_heads(_linear(a, params, p + "attn.q_proj"), H)
        k = split_heads(_linear(a, params, p + "attn.k_proj"), H)
        v = split_heads(_linear(a, params, p + "attn.v_proj"), H)
        x = x + _linear(merge_heads(attend(q, k, v, mask)), params, p + "attn.o_proj")
        m = F.layer_norm(x, (d,), params[p + "ln_2.weight"], params[p + "ln_2.bias"], eps)
        x = x + _linear(gelu_tanh(_linear(m, params, p + "mlp.up_proj")), params, p + "mlp.down_proj")
    x = F.layer_norm(x, (d,), params["ln_f.weight"], params["ln_f.bias"], eps)
    return x @ params["wte.weight"].t()  # tied head


def llama_logits(params, cfg, batch):
    tok = batch["tokens"]
    eps, H, KV, hd = cfg["norm_eps"], cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"]
    mask = attention_mask(batch["segments"])
    cos, sin = rope_cos_sin(batch["positions"], hd, cfg["rope_theta"], param_dtype(params))
    x = params["embed_tokens.weight"][tok]
    for i in range(cfg["n_layers"]):
        p = "layers.%d." % i
        a = rms_norm(x, params[p + "input_layernorm.weight"], eps)
        q = apply_rope(split_heads(_linear(a, params, p + "attn.q_proj", False), H), cos, sin)
        k = apply_rope(split_heads(_linear(a, params, p + "attn.k_proj", False), KV), cos, sin)
        v = split_heads(_linear(a, params, p + "attn.v_proj", False), KV)
        # GQA: query head h reads kv head h // (H/KV), i.e. each kv head repeated H/KV times.
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        x = x + _linear(merge_heads(attend(q, k, v, mask)), params, p + "attn.o_proj", False)
        m = rms_norm(x, params[p + "post_attention_layernorm.weight"], eps)
        gate = F.silu(_linear(m, params, p + "mlp.gate_proj", False))
        x = x + _linear(gate * _linear(m, params, p + "mlp.up_proj", False), params,
                        p + "mlp.down_proj", False)
    x = rms_norm(x, params["norm.weight"], eps)
    return x @ params["lm_head.weight"].t()  # untied head


def logits_fn(params, cfg, batch):
    return (gpt2_logits if cfg["family"] == "gpt2" else llama_logits)(params, cfg, batch)


# ----------------------------------------------------------------------------- loss and products

def loss_from_logits(logits, targets):
    """Token-mean cross-entropy over targets != -1 (sum of losses / number of targets)."""
    sel = targets != -1
    n = int(sel.sum())
    if n == 0:
        raise ValueError("batch has no target tokens")
    lp = torch.log_softmax(logits[sel], dim=-1)
    return -lp.gather(1, targets[sel][:, None]).sum() / n


def loss_fn(params, cfg, batch):
    return loss_from_logits(logits_fn(params, cfg, batch), batch["targets"])


def _leaves(params):
    return {k: t.detach().clone().requires_grad_(True) for k, t in params.items()}


def gradient(params, cfg, batch):
    p = _leaves(params)
    loss = loss_fn(p, cfg, batch)
    g = torch.autograd.grad(loss, list(p.values()))
    return loss.detach(), OrderedDict(zip(p.keys(), g))


def hvp(params, cfg, batch, v):
    """Exact Hessian-vector product by Pearlmutter double backward."""
    p = _leaves(params)
    names = list(p.keys())
    g = torch.autograd.grad(loss_fn(p, cfg, batch), [p[k] for k in names], create_graph=True)
    dot = sum((gi * v[k]).sum() for gi, k in zip(g, names))
    hv = torch.autograd.grad(dot, [p[k] for k in names])
    return OrderedDict(zip(names, hv))


def hvp_functional(params, cfg, batch, v):
    """Same product through torch.autograd.functional.hvp (independent code path)."""
    names = list(params.keys())

    def f(*ts):
        return loss_fn(dict(zip(names, ts)), cfg, batch)

    _, hv = torch.autograd.functional.hvp(f, tuple(params[k] for k in names),
                                          tuple(v[k] for k in names))
    return OrderedDict(zip(names, hv))


def output_hessian_apply(logits, targets, z):
    """H_out z with H_out = (diag(p) - p p^T)/N per target row; non-target rows give 0."""
    sel = (targets != -1).to(logits.dtype)[..., None]
    n = float(sel.sum())
    p = torch.softmax(logits, dim=-1)
    return sel * (p * z - p * (p * z).sum(-1, keepdim=True)) / n


def jvp_logits(params, cfg, batch, v, mode="forward"):
    """(logits, J v).  mode 'forward' uses functorch.jvp (forward-mode AD, which torch 1.13
    supports for every op used here); mode 'double_vjp' is the R-op trick the C++ side
    uses: J v = d/du <J^T u, v>, since J^T u is linear in u."""
    names = list(params.keys())
    if mode == "forward":
        import functorch
        f = lambda ps: logits_fn(ps, cfg, batch)
        logits, jv = functorch.jvp(f, (dict(params),), ({k: v[k] for k in names},))
        return logits, jv
    p = _leaves(params)
    logits = logits_fn(p, cfg, batch)
    u = torch.zeros_like(logits, requires_grad=True)
    jtu = torch.autograd.grad(logits, [p[k] for k in names], u, create_graph=True)
    jv = torch.autograd.grad(jtu, u, [v[k] for k in names])[0]
    return logits.detach(), jv


def gvp(params, cfg, batch, v, mode="forward"):
    """Generalized Gauss-Newton product J^T H_out J v."""
    names = list(params.keys())
    try:
        logits, jv = jvp_logits(params, cfg, batch, v, mode)
    except (RuntimeError, NotImplementedError):
        if mode != "forward":
            raise
        # Forward-mode AD missing for some op in this torch build: fall back to the R-op trick.
        logits, jv = jvp_logits(params, cfg, batch, v, "double_vjp")
    z = output_hessian_apply(logits.detach(), batch["targets"], jv.detach())
    import functorch
    _, vjp_fn = functorch.vjp(lambda ps: logits_fn(ps, cfg, batch), dict(params))
    (gv,) = vjp_fn(z)
    return OrderedDict((k, gv[k]) for k in names)


def gvp_functional(params, cfg, batch, v):
    """Same product through torch.autograd.functional only: jvp (the double-backward trick, a
    forward and two backwards) for J v, then vjp (a forward and a backward) for J^T z."""
    names = list(params.keys())

    def f(*ts):
        return logits_fn(dict(zip(names, ts)), cfg, batch)

    primal = tuple(params[k] for k in names)
    logits, jv = torch.autograd.functional.jvp(f, primal, tuple(v[k] for k in names))
    z = output_hessian_apply(logits, batch["targets"], jv)
    _, gv = torch.autograd.functional.vjp(f, primal, z)
    return OrderedDict(zip(names, gv))


def reference_products(params, cfg, batch, v=None, want_hv=True, want_gv=True):
    """Dict with 'loss' (0-d tensor), 'grad', and when v is given 'hv' / 'gv' (dicts)."""
    loss, g = gradient(params, cfg, batch)
    out = {"loss": loss, "grad": g}
    if v is not None and want_hv:
        out["hv"] = hvp(params, cfg, batch, v)
    if v is not None and want_gv:
        out["gv"] = gvp(params, cfg, batch, v)
    return out


# ----------------------------------------------------------------------------- vector helpers

def vdot(a, b):
    return sum(float((a[k] * b[k]).sum()) for k in a)


def vnorm(a):
    return math.sqrt(vdot(a, a))


def vsub(a, b):
    return OrderedDict((k, a[k] - b[k]) for k in a)


def rel_err(ours, ref, floor=1e-6):
    """Norm-wise ||ours - ref|| / ||ref|| over all tensors, and the worst single tensor
    (name, rel err).  A tensor's denominator is max(||ref_k||, floor * ||ref||): some
    tensors are mathematically zero (GPT-2's k_proj.bias: adding a constant to every key
    shifts a query's scores uniformly, which softmax ignores, so its grad, H.v and G.v are
    0 up to rounding) and a pure relative error of rounding noise would be meaningless."""
    den = vnorm(ref)
    diff = vnorm(vsub(ours, ref))
    tot = diff / den if den > 0 else diff
    worst = (None, -1.0)
    for k in ref:
        num = float((ours[k] - ref[k]).norm())
        dk = max(float(ref[k].norm()), floor * den)
        e = num / dk if dk > 0 else num
        if not e <= worst[1]:  # NaN wins
            worst = (k, e)
    return tot, worst


# ----------------------------------------------------------------------------- exchange file

def _attr(v):
    """HDF5 attribute -> Python scalar/str, whether written as a scalar or a 1-element array,
    as a variable- or fixed-length string."""
    if hasattr(v, "shape") and tuple(v.shape) == (1,):
        v = v[0]
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    return v


def _read_tensor_group(f, group, shapes, what, required=True):
    import numpy as np
    if group not in f:
        if required:
            raise MalformedFile("missing group /%s" % group)
        return None
    g = f[group]
    names = set(g.keys())
    missing = [k for k in shapes if k not in names]
    extra = sorted(names - set(shapes))
    if missing:
        raise MalformedFile("/%s lacks %d %s tensor(s), e.g. %s" % (group, len(missing), what, missing[:3]))
    if extra:
        raise MalformedFile("/%s has unexpected tensor(s) %s" % (group, extra[:5]))
    out = OrderedDict()
    for k, shp in shapes.items():
        ds = g[k]
        if not hasattr(ds, "dtype") or ds.dtype.kind != "f":
            raise MalformedFile("/%s/%s is not a float dataset" % (group, k))
        if tuple(ds.shape) != tuple(shp):
            raise MalformedFile("/%s/%s has shape %s, expected %s" % (group, k, tuple(ds.shape), tuple(shp)))
        out[k] = torch.from_numpy(np.asarray(ds[()], dtype=np.float64))
    return out


def load_exchange(path):
    """Read an exchange file.  Returns dict: cfg, params, batch, v (or None) and cpp (dict
    with optional 'loss' float, 'grad'/'hv'/'gv' dicts; None when the group is absent)."""
    import h5py
    import numpy as np
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise MalformedFile("cannot open %s as HDF5: %s" % (path, e))
    with f:
        cfg = normalise_config({k: _attr(v) for k, v in f.attrs.items()})
        shapes = param_shapes(cfg)
        params = _read_tensor_group(f, "params", shapes, "parameter")
        if "batch" not in f:
            raise MalformedFile("missing group /batch")
        batch = {}
        for k in BATCH_KEYS:
            if k not in f["batch"]:
                raise MalformedFile("missing dataset /batch/%s" % k)
            a = np.asarray(f["batch"][k][()])
            if a.dtype.kind not in "iu":
                raise MalformedFile("/batch/%s must be integer, got %s" % (k, a.dtype))
            if a.ndim != 2:
                raise MalformedFile("/batch/%s must be [B,T], got shape %s" % (k, a.shape))
            batch[k] = torch.from_numpy(a.astype(np.int64))
        shp = batch["tokens"].shape
        for k in BATCH_KEYS:
            if batch[k].shape != shp:
                raise MalformedFile("/batch/%s shape %s differs from tokens %s" % (k, tuple(batch[k].shape), tuple(shp)))
        V = cfg["vocab_size"]
        if batch["tokens"].min() < 0 or batch["tokens"].max() >= V:
            raise MalformedFile("token id outside [0, vocab_size)")
        t = batch["targets"]
        if ((t < -1) | (t >= V)).any():
            raise MalformedFile("target outside {-1} u [0, vocab_size)")
        if not (t != -1).any():
            raise MalformedFile("batch has no target tokens")
        if batch["positions"].min() < 0:
            raise MalformedFile("negative position")
        if cfg["family"] == "gpt2" and batch["positions"].max() >= cfg["max_positions"]:
            raise MalformedFile("position >= max_positions")
        v = _read_tensor_group(f, "v", shapes, "direction", required=False)
        cpp = None
        if "cpp" in f:
            cpp = {}
            g = f["cpp"]
            if "loss" in g:
                a = np.asarray(g["loss"][()], dtype=np.float64).reshape(-1)
                if a.size != 1:
                    raise MalformedFile("/cpp/loss must hold one number, got shape %s" % (g["loss"].shape,))
                cpp["loss"] = float(a[0])
            for q in ("grad", "hv", "gv"):
                if q in g:
                    cpp[q] = _read_tensor_group(g, q, shapes, q)
            if ("hv" in cpp or "gv" in cpp) and v is None:
                raise MalformedFile("/cpp has hv/gv but the file has no /v direction")
    return {"cfg": cfg, "params": params, "batch": batch, "v": v, "cpp": cpp}


def write_exchange(path, cfg, params, batch, v=None, cpp=None):
    """Write an exchange file (used by make_fixture and the self-test)."""
    import h5py
    import numpy as np
    with h5py.File(path, "w") as f:
        for k in ("family",) + CONFIG_INT_KEYS + CONFIG_FLOAT_KEYS:
            if k not in cfg:
                continue
            if k == "family":
                f.attrs[k] = cfg[k]  # h5py stores str as variable-length UTF-8
            elif k in CONFIG_INT_KEYS:
                f.attrs[k] = np.int64(cfg[k])
            else:
                f.attrs[k] = np.float64(cfg[k])
        gp = f.create_group("params")
        for k, t in params.items():
            gp.create_dataset(k, data=t.detach().numpy().astype(np.float64))
        gb = f.create_group("batch")
        for k in BATCH_KEYS:
            gb.create_dataset(k, data=batch[k].numpy().astype(np.int64))
        if v is not None:
            gv = f.create_group("v")
            for k, t in v.items():
                gv.create_dataset(k, data=t.detach().numpy().astype(np.float64))
        if cpp is not None:
            gc = f.create_group("cpp")
            if "loss" in cpp:
                gc.create_dataset("loss", data=np.float64(cpp["loss"]))
            for q in ("grad", "hv", "gv"):
                if q in cpp:
                    sub = gc.create_group(q)
                    for k, t in cpp[q].items():
                        sub.create_dataset(k, data=t.detach().numpy().astype(np.float64))
