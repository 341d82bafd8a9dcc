#!/usr/bin/python3
"""Write a random exchange file (config, /params, /batch, /v; no /cpp) for the C++ tests.

    /usr/bin/python3 tests/oracle/make_fixture.py OUT.h5 --family gpt2|llama [--seed S]
        [--vocab 67] [--d-model 32] [--n-layers 2] [--n-heads 4] [--n-kv-heads K] [--d-ff 48]
        [--max-positions 64] [--rope-theta 10000] [--norm-eps 1e-6] [--batch 2] [--seq 16]
        [--init-std 0.15] [--bias-std 0.05] [--norm-std 0.1] [--one-doc-per-row]

Every row of the batch packs at least two documents (positions restart at 0 in each),
some rows end in padding (its own segment, no targets), and besides each document's last
token some further positions are non-targets (as with prompt masking).

--one-doc-per-row instead makes the batch of `unlearn bench model` (src/app/bench_model.cpp):
one document per row, no padding, every position but the last a target.  Weights are
normal(0, init-std), biases normal(0, bias-std), norm gains 1 + norm-std * normal(0, 1);
the C++ benchmark's init_random is --init-std 0.02 --bias-std 0 --norm-std 0.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models as rm  # noqa: E402

DEFAULTS = dict(vocab=67, d_model=32, n_layers=2, n_heads=4, n_kv_heads=None, d_ff=48,
                max_positions=64, rope_theta=10000.0, norm_eps=None, batch=2, seq=16,
                init_std=0.15, bias_std=0.05, norm_std=0.1, one_doc_per_row=False)


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


def random_params(cfg, gen, std, bias_std=0.05, norm_std=0.1):
    ps = {}
    for name, shp in rm.param_shapes(cfg).items():
        if rm.is_norm_weight(name):
            t = 1.0 + norm_std * torch.randn(shp, generator=gen, dtype=rm.DTYPE)
        elif name.endswith(".bias"):
            t = bias_std * torch.randn(shp, generator=gen, dtype=rm.DTYPE)
        else:
            t = std * torch.randn(shp, generator=gen, dtype=rm.DTYPE)
        ps[name] = t
    return ps


def one_doc_batch(cfg, B, T, gen):
    """The batch of `unlearn bench model`: one document per row, no padding, every position
    but the last a target (next-token)."""
    if T < 2:
        raise ValueError("--seq must be >= 2 (one target per row)")
    if cfg["family"] == "gpt2" and T > cfg["max_positions"]:
        raise ValueError("a document is longer than max_positions")
    tokens = torch.randint(0, cfg["vocab_size"], (B, T), generator=gen)
    targets = torch.full((B, T), -1, dtype=torch.int64)
    targets[:, :T - 1] = tokens[:, 1:]
    return {"tokens": tokens, "targets": targets, "segments": torch.zeros(B, T, dtype=torch.int64),
            "positions": torch.arange(T).expand(B, T).contiguous()}


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
    params = random_params(cfg, gen, a["init_std"], a["bias_std"], a["norm_std"])
    batch = (one_doc_batch if a["one_doc_per_row"] else random_batch)(cfg, a["batch"], a["seq"], gen)
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
    ap.add_argument("--bias-std", type=float, help="std of biases (default 0.05)")
    ap.add_argument("--norm-std", type=float, help="norm gains are 1 + norm-std * N(0,1) (default 0.1)")
    ap.add_argument("--one-doc-per-row", action="store_true",
                    help="the bench-model batch: one document per row, all positions but the last targets")
    a = ap.parse_args(argv)
    try:
        cfg, params, batch, v = make_fixture(
            a.family, a.seed, vocab=a.vocab, d_model=a.d_model, n_layers=a.n_layers,
            n_heads=a.n_heads, n_kv_heads=a.n_kv_heads, d_ff=a.d_ff, max_positions=a.max_positions,
            rope_theta=a.rope_theta, norm_eps=a.norm_eps, batch=a.batch, seq=a.seq,
            init_std=a.init_std, bias_std=a.bias_std, norm_std=a.norm_std,
            one_doc_per_row=a.one_doc_per_row or None)
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
