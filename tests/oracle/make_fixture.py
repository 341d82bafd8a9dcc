#!/usr/bin/python3
"""Write a random exchange file (config, /params, /batch, /v; no /cpp) for the C++ tests.

    /usr/bin/python3 tests/oracle/make_fixture.py OUT.h5 --family gpt2|llama [--seed S]
        [--vocab 67] [--d-model 32] [--n-layers 2] [--n-heads 4] [--n-kv-heads K] [--d-ff 48]
        [--max-positions 64] [--rope-theta 10000] [--norm-eps 1e-6] [--batch 2] [--seq 16]
        [--init-std 0.15]

Every row of the batch packs at least two documents (positions restart at 0 in each),
some rows end in padding (its own segment, no targets), and besides each document's last
token some further positions are non-targets (as with prompt masking).
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models as rm  # noqa: E402

DEFAULTS = dict(vocab=67, d_model=32, n_layers=2, n_heads=4, n_kv_heads=None, d_ff=48,
                max_positions=64, rope_theta=10000.0, norm_eps=None, batch=2, seq=16,
                init_std=0.15)


def make_config(family, vocab, d_model, n_layers, n_heads, n_kv_heads, d_ff, max_positions,
                rope_theta, norm_eps):
    cfg = {"family": family, "vocab_size": vocab, "d_model": d_model, "n_layers": n_layers,
           "n_heads": n_heads, "d_ff": d_ff}
    if family == "gpt2":
        cfg.update(n_kv_heads=n_heads, max_positions=max_positions, norm_eps=1e-5)
    else:
        # 1e-6 (LLaMA's usual value) differs from GPT-2's so a hard-coded eps shows up.
        cfg.update(n_kv_heads=n_kv_heads or max(1, n_heads // 2), rope_theta=rope_theta,
                   norm_eps=1e-6 if norm_eps is None else norm_eps)
    return rm.normalise_config(cfg)


def random_params(cfg, gen, std):
    ps = {}
    for name, shp in rm.param_shapes(cfg).items():
        if rm.is_norm_weight(name):
            t = 1.0 + 0.1 * torch.randn(shp, generator=gen, dtype=rm.DTYPE)
        elif name.endswith(".bias"):
            t = 0.05 * torch.randn(shp, generator=gen, dtype=rm.DTYPE)
        else:
            t = std * torch.randn(shp, generator=gen, dtype=rm.DTYPE)
        ps[name] = t
    return ps


def random_batch(cfg, B, T, gen):
    if T < 4:
        raise ValueError("--seq must be >= 4 (two documents per row plus targets)")
    V = cfg["vocab_size"]
    tokens = torch.randint(0, V, (B, T), generator=gen)
    segments = torch.zeros(B, T, dtype=torch.int64)
    positions = torch.zeros(B, T, dtype=torch.int64)
    targets = torch.full((B, T), -1, dtype=torch.int64)
    ri = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=gen))  # inclusive
    for b in range(B):
        # Odd rows end in padding (up to a quarter of the row) when there is room.
        pad = ri(1, T // 4) if (b % 2 == 1 and T >= 8) else 0
        used = T - pad
        ndoc = ri(2, max(2, min(4, used // 2)))
        cuts = sorted(torch.randperm(used - 1, generator=gen)[:ndoc - 1].add(1).tolist())
        bounds = [0] + cuts + [used]
        for s, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            segments[b, lo:hi] = s
            positions[b, lo:hi] = torch.arange(hi - lo)
            # Next-token targets inside the document; its last token has none.
            targets[b, lo:hi - 1] = tokens[b, lo + 1:hi]
        if pad:
            segments[b, used:] = ndoc  # padding is its own segment
            positions[b, used:] = torch.arange(pad)
            tokens[b, used:] = 0
    # Drop ~15% further targets (prompt-masking-like), keeping at least one.
    drop = torch.rand(B, T, generator=gen) < 0.15
    keep = targets.clone()
    targets[drop] = -1
    if not (targets != -1).any():
        targets = keep
    if cfg["family"] == "gpt2" and positions.max() >= cfg["max_positions"]:
        raise ValueError("a document is longer than max_positions")
    return {"tokens": tokens, "targets": targets, "segments": segments, "positions": positions}


def make_fixture(family, seed=0, **kw):
    """Returns (cfg, params, batch, v); keyword sizes as in DEFAULTS."""
    a = dict(DEFAULTS)
    a.update({k: v for k, v in kw.items() if v is not None})
    cfg = make_config(family, a["vocab"], a["d_model"], a["n_layers"], a["n_heads"],
                      a["n_kv_heads"], a["d_ff"], a["max_positions"], a["rope_theta"], a["norm_eps"])
    gen = torch.Generator().manual_seed(seed)
    params = random_params(cfg, gen, a["init_std"])
    batch = random_batch(cfg, a["batch"], a["seq"], gen)
    v = {k: torch.randn(t.shape, generator=gen, dtype=rm.DTYPE) for k, t in params.items()}
    return cfg, params, batch, v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--family", required=True, choices=("gpt2", "llama"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--d-model", type=int)
    ap.add_argument("--n-layers", type=int)
    ap.add_argument("--n-heads", type=int)
    ap.add_argument("--n-kv-heads", type=int, help="llama only; default n_heads // 2")
    ap.add_argument("--d-ff", type=int)
    ap.add_argument("--max-positions", type=int, help="gpt2 only")
    ap.add_argument("--rope-theta", type=float, help="llama only")
    ap.add_argument("--norm-eps", type=float, help="llama only (gpt2 is fixed at 1e-5)")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--seq", type=int)
    ap.add_argument("--init-std", type=float, help="std of weight matrices (default 0.15)")
    a = ap.parse_args(argv)
    try:
        cfg, params, batch, v = make_fixture(
            a.family, a.seed, vocab=a.vocab, d_model=a.d_model, n_layers=a.n_layers,
            n_heads=a.n_heads, n_kv_heads=a.n_kv_heads, d_ff=a.d_ff, max_positions=a.max_positions,
            rope_theta=a.rope_theta, norm_eps=a.norm_eps, batch=a.batch, seq=a.seq,
            init_std=a.init_std)
    except (ValueError, rm.MalformedFile) as e:
        print("make_fixture: %s" % e, file=sys.stderr)
        return 2
    rm.write_exchange(a.out, cfg, params, batch, v)
    n = sum(t.numel() for t in params.values())
    print("wrote %s: %s, %d parameters, batch %dx%d, %d targets" % (
        a.out, cfg["family"], n, batch["tokens"].shape[0], batch["tokens"].shape[1],
        int((batch["targets"] != -1).sum())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
