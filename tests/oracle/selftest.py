#!/usr/bin/python3
"""Self-test of the oracle: /usr/bin/python3 tests/oracle/selftest.py   (exit 0 = pass)

Checks the reference against itself through independent routes (hand-computed RoPE,
finite differences, a second autograd path, per-document recomputation, GQA expanded to
MHA) and checks that check_model.py accepts exact results and rejects perturbed or
malformed files.
"""

import contextlib
import io
import math
import os
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_model  # noqa: E402
import make_fixture as mf  # noqa: E402
import reference_models as rm  # noqa: E402

FAILURES = []


def expect(cond, what):
    print("  %-4s %s" % ("ok" if cond else "FAIL", what))
    if not cond:
        FAILURES.append(what)


def run_checker(argv):
    """check_model.main in-process (saves a torch import), its report kept out of our log."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = check_model.main(argv)
    return code, buf.getvalue()


def vaxpy(a, x, y):
    return {k: a * x[k] + y[k] for k in x}


# ----------------------------------------------------------------------------- golden RoPE

def test_rope_golden():
    print("golden RoPE (head_dim 4, theta 10000, x = [1,2,3,4], positions 0,1,2)")
    # inv_freq = [1/10000^(0/4), 1/10000^(2/4)] = [1, 0.01]; angles at position p: [p, 0.01 p]
    # (duplicated), rotate_half([x0,x1,x2,x3]) = [-x2,-x3,x0,x1], so
    # out = [x0 c(p) - x2 s(p), x1 c(.01p) - x3 s(.01p), x2 c(p) + x0 s(p), x3 c(.01p) + x1 s(.01p)].
    c1, s1 = 0.5403023058681398, 0.8414709848078965        # cos 1, sin 1
    c01, s01 = 0.9999500004166653, 0.009999833334166664    # cos .01, sin .01
    c2, s2 = -0.4161468365471424, 0.9092974268256817       # cos 2, sin 2
    c02, s02 = 0.9998000066665778, 0.01999866669333308     # cos .02, sin .02
    expected = torch.tensor([
        [1.0, 2.0, 3.0, 4.0],                               # position 0: identity
        [1 * c1 - 3 * s1, 2 * c01 - 4 * s01, 3 * c1 + 1 * s1, 4 * c01 + 2 * s01],
        [1 * c2 - 3 * s2, 2 * c02 - 4 * s02, 3 * c2 + 1 * s2, 4 * c02 + 2 * s02],
    ], dtype=torch.float64)
    # The same numbers written out, so a wrong formula above cannot hide.
    literal = torch.tensor([
        [1.0, 2.0, 3.0, 4.0],
        [-1.9841106485555495, 1.959900667496664, 2.4623779024123156, 4.019799668334994],
        [-3.1440391170241875, 1.9196053465598233, -0.33914308281574557, 4.039197360052977],
    ], dtype=torch.float64)
    expect(torch.allclose(expected, literal, rtol=0, atol=1e-15), "hand formula equals literal values")
    x = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64).expand(1, 1, 3, 4)  # [B,H,T,hd]
    cos, sin = rm.rope_cos_sin(torch.tensor([[0, 1, 2]]), 4, 10000.0)
    got = rm.apply_rope(x, cos, sin)[0, 0]
    err = float((got - literal).abs().max())
    expect(err < 1e-14, "reference RoPE matches hand values (max abs err %.1e)" % err)


def test_pieces():
    print("building blocks")
    x = torch.linspace(-4, 4, 81, dtype=torch.float64)
    e = float((rm.gelu_tanh(x) - torch.nn.functional.gelu(x, approximate="tanh")).abs().max())
    expect(e < 1e-15, "gelu_tanh = torch's tanh GELU (max abs err %.1e)" % e)
    y = torch.tensor([[3.0, 4.0]], dtype=torch.float64)  # mean square 12.5
    got = rm.rms_norm(y, torch.tensor([1.0, 2.0], dtype=torch.float64), 0.5)
    want = torch.tensor([[3.0 / math.sqrt(13.0), 8.0 / math.sqrt(13.0)]], dtype=torch.float64)
    expect(float((got - want).abs().max()) < 1e-15, "RMSNorm x * rsqrt(mean(x^2) + eps) * w by hand")
    seg = torch.tensor([[0, 0, 1, 1, 1]])
    want = torch.tensor([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 1, 1, 0],
                         [0, 0, 1, 1, 1]], dtype=torch.bool)
    expect(bool((rm.attention_mask(seg)[0, 0] == want).all()), "causal document mask by hand")


# ----------------------------------------------------------------------------- model checks

def test_document_isolation(cfg, params, batch):
    """Packed loss equals the sum of per-document losses computed alone (mask + positions)."""
    tot, n = 0.0, 0
    B, T = batch["tokens"].shape
    for b in range(B):
        for s in batch["segments"][b].unique().tolist():
            idx = (batch["segments"][b] == s).nonzero().flatten()
            one = {k: batch[k][b, idx][None] for k in rm.BATCH_KEYS}
            one["segments"] = torch.zeros_like(one["segments"])
            nt = int((one["targets"] != -1).sum())
            if nt:
                tot += float(rm.loss_fn(params, cfg, one)) * nt
                n += nt
    packed = float(rm.loss_fn(params, cfg, batch))
    err = abs(tot / n - packed) / abs(packed)
    expect(err < 1e-13, "packed loss = per-document losses (rel err %.1e)" % err)


def test_gqa_as_mha(cfg, params, batch):
    """GQA equals MHA whose k/v heads are copies: query head h reads kv head h // group."""
    if cfg["n_kv_heads"] == cfg["n_heads"]:
        return
    hd, grp = cfg["head_dim"], cfg["n_heads"] // cfg["n_kv_heads"]
    mcfg = dict(cfg, n_kv_heads=cfg["n_heads"])
    mp = dict(params)
    for i in range(cfg["n_layers"]):
        for w in ("k_proj", "v_proj"):
            name = "layers.%d.attn.%s.weight" % (i, w)
            heads = params[name].view(cfg["n_kv_heads"], hd, -1)
            mp[name] = torch.cat([heads[h // grp] for h in range(cfg["n_heads"])], 0)
    err = float((rm.logits_fn(mp, mcfg, batch) - rm.logits_fn(params, cfg, batch)).abs().max())
    expect(err < 1e-13, "GQA (%d kv heads) equals expanded MHA (max abs err %.1e)" % (cfg["n_kv_heads"], err))


def test_products(cfg, params, batch, v, ref):
    gen = torch.Generator().manual_seed(123)
    u = {k: torch.randn(t.shape, generator=gen, dtype=rm.DTYPE) for k, t in params.items()}
    hv, gv = ref["hv"], ref["gv"]

    # H.v vs central differences of the gradient; v scaled to unit norm so eps is a step length.
    nv = rm.vnorm(v)
    vu = {k: t / nv for k, t in v.items()}
    eps = 1e-4
    _, gp = rm.gradient(vaxpy(eps, vu, params), cfg, batch)
    _, gm = rm.gradient(vaxpy(-eps, vu, params), cfg, batch)
    fd = {k: (gp[k] - gm[k]) / (2 * eps) * nv for k in gp}
    e, _ = rm.rel_err(fd, hv)
    expect(e < 1e-6, "H.v vs central differences of the gradient (rel err %.1e)" % e)

    e, _ = rm.rel_err(rm.hvp_functional(params, cfg, batch, v), hv)
    expect(e < 1e-12, "H.v double backward vs torch.autograd.functional.hvp (rel err %.1e)" % e)

    hu = rm.hvp(params, cfg, batch, u)
    a, b = rm.vdot(u, hv), rm.vdot(v, hu)
    e = abs(a - b) / max(abs(a), abs(b))
    expect(e < 1e-10, "symmetry u.Hv = v.Hu (%.6g vs %.6g, rel %.1e)" % (a, b, e))

    # G.v: the forward-mode J v against the R-op trick and against finite differences.
    e, _ = rm.rel_err(rm.gvp(params, cfg, batch, v, mode="double_vjp"), gv)
    expect(e < 1e-12, "G.v functorch.jvp vs double-vjp J v (rel err %.1e)" % e)
    e, _ = rm.rel_err(rm.gvp_functional(params, cfg, batch, v), gv)
    expect(e < 1e-12, "G.v functorch vs torch.autograd.functional jvp + vjp (rel err %.1e)" % e)
    lp = rm.logits_fn(vaxpy(eps, vu, params), cfg, batch)
    lm = rm.logits_fn(vaxpy(-eps, vu, params), cfg, batch)
    logits, jv = rm.jvp_logits(params, cfg, batch, v)
    jfd = (lp - lm) / (2 * eps) * nv
    e = float((jfd - jv).norm() / jv.norm())
    expect(e < 1e-6, "J v vs central differences of the logits (rel err %.1e)" % e)

    gu = rm.gvp(params, cfg, batch, u)
    a, b = rm.vdot(u, gv), rm.vdot(v, gu)
    e = abs(a - b) / max(abs(a), abs(b))
    expect(e < 1e-10, "symmetry u.Gv = v.Gu (rel %.1e)" % e)
    vgv, ugu = rm.vdot(v, gv), rm.vdot(u, gu)
    expect(vgv >= 0 and ugu >= 0, "v.Gv = %.4g >= 0 and u.Gu = %.4g >= 0" % (vgv, ugu))
    e, _ = rm.rel_err(gv, hv)
    expect(e > 1e-2, "G.v differs from H.v (rel diff %.2f)" % e)


def test_checker(tmp, tag, cfg, params, batch, v, ref):
    good = os.path.join(tmp, tag + "_good.h5")
    cpp = {"loss": float(ref["loss"]), "grad": ref["grad"], "hv": ref["hv"], "gv": ref["gv"]}
    rm.write_exchange(good, cfg, params, batch, v, cpp)
    code, _ = run_checker([good])
    expect(code == 0, "checker accepts the reference's own values (exit %d)" % code)

    # Perturb a single tensor of one product by a relative 1e-6: must fail at tol 1e-8.
    name = sorted(ref["hv"])[len(ref["hv"]) // 2]
    bad = dict(cpp, hv=dict(ref["hv"]))
    bad["hv"][name] = ref["hv"][name] * (1 + 1e-6)
    p = os.path.join(tmp, tag + "_bad.h5")
    rm.write_exchange(p, cfg, params, batch, v, bad)
    code, _ = run_checker([p])
    expect(code == 1, "checker rejects hv[%s] * (1 + 1e-6) (exit %d)" % (name, code))
    if cfg["family"] == "gpt2":
        # k_proj.bias has a mathematically zero grad/H.v/G.v (softmax ignores a uniform score
        # shift): C++ rounding noise there must pass, judged against the whole vector's norm.
        noisy = dict(cpp)
        for q in ("grad", "hv", "gv"):
            noisy[q] = dict(ref[q])
            for k in noisy[q]:
                if k.endswith("k_proj.bias"):
                    t = noisy[q][k]
                    noisy[q][k] = t + 1e-16 * rm.vnorm(ref[q]) * torch.randn(t.shape, dtype=rm.DTYPE)
        rm.write_exchange(p, cfg, params, batch, v, noisy)
        code, _ = run_checker([p])
        expect(code == 0, "checker accepts rounding noise on the zero k_proj.bias products (exit %d)" % code)
    bad = dict(cpp, loss=cpp["loss"] * (1 + 1e-7))
    rm.write_exchange(p, cfg, params, batch, v, bad)
    code, _ = run_checker([p])
    expect(code == 1, "checker rejects loss * (1 + 1e-7) (exit %d)" % code)
    return good


def test_checker_malformed(tmp, cfg, params, batch, v, ref):
    p = os.path.join(tmp, "malformed.h5")
    cases = []
    miss = dict(params)
    miss.pop(sorted(miss)[0])
    cases.append(("missing parameter", (cfg, miss, batch, v, {"loss": 1.0, "grad": ref["grad"]})))
    cases.append(("no /cpp group", (cfg, params, batch, v, None)))
    cases.append(("hv without /v", (cfg, params, batch, None, {"loss": 1.0, "grad": ref["grad"], "hv": ref["hv"]})))
    wrong = dict(params)
    k = sorted(wrong)[-1]
    wrong[k] = wrong[k][:-1]
    cases.append(("wrong shape", (cfg, wrong, batch, v, {"loss": 1.0, "grad": ref["grad"]})))
    for what, args in cases:
        rm.write_exchange(p, *args)
        code, msg = run_checker([p])
        expect(code == 2, "checker exit 2 on malformed file: %s (exit %d)" % (what, code))
        print("         " + msg.strip().split(": ", 2)[-1])
    # Quantities that are absent are skipped, not failed.
    rm.write_exchange(p, cfg, params, batch, v, {"loss": float(ref["loss"]), "grad": ref["grad"]})
    code, _ = run_checker([p])
    expect(code == 0, "checker skips absent hv/gv (exit %d)" % code)


FIXTURES = [
    # tag, family, sizes (vocab 67: divisible by none of 2, 3, 4 as with TP vocab sharding)
    ("gpt2", "gpt2", dict(vocab=67, d_model=24, n_heads=3, d_ff=40, seq=14, max_positions=20)),
    ("llama_kv1", "llama", dict(vocab=67, d_model=24, n_heads=3, n_kv_heads=1, d_ff=36, seq=14)),
    ("llama_mha", "llama", dict(vocab=67, d_model=32, n_heads=4, n_kv_heads=4, d_ff=40, seq=14)),
    ("llama_kv2", "llama", dict(vocab=67, d_model=32, n_heads=4, n_kv_heads=2, d_ff=40, seq=12,
                                rope_theta=500000.0)),
]


def main():
    t0 = time.time()
    torch.set_num_threads(1)
    test_rope_golden()
    test_pieces()
    with tempfile.TemporaryDirectory() as tmp:
        good = None
        for i, (tag, fam, sizes) in enumerate(FIXTURES):
            cfg, params, batch, v = mf.make_fixture(fam, seed=10 + i, **sizes)
            print("%s: %s" % (tag, ", ".join("%s=%s" % (k, cfg[k]) for k in (
                "vocab_size", "d_model", "n_heads", "n_kv_heads", "n_layers", "d_ff", "norm_eps")
                if k in cfg)))
            ref = rm.reference_products(params, cfg, batch, v)
            test_document_isolation(cfg, params, batch)
            test_gqa_as_mha(cfg, params, batch)
            test_products(cfg, params, batch, v, ref)
            g = test_checker(tmp, tag, cfg, params, batch, v, ref)
            if i == 0:
                good = g
                test_checker_malformed(tmp, cfg, params, batch, v, ref)
        # The command line the C++ tests use, end to end (one subprocess: torch import is slow).
        print("command line")
        fx = os.path.join(tmp, "cli_fixture.h5")
        code = mf.main([fx, "--family", "llama", "--seed", "3", "--n-kv-heads", "1"])
        expect(code == 0 and os.path.exists(fx), "make_fixture.py writes a fixture")
        r = subprocess.run([sys.executable, os.path.join(HERE, "check_model.py"), good, "--tol", "1e-8"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        expect(r.returncode == 0 and "PASS" in r.stdout, "check_model.py subprocess exit %d" % r.returncode)
    dt = time.time() - t0
    if FAILURES:
        print("SELFTEST FAILED: %d check(s) (%.1f s)" % (len(FAILURES), dt))
        for f in FAILURES:
            print("  - " + f)
        return 1
    print("SELFTEST PASSED (%.1f s)" % dt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
