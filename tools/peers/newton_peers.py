#!/usr/bin/python3
"""Python peers for the Newton-CG step benchmark (issue 6): the step `unlearn bench newton` times, in PyTorch.

    /usr/bin/python3 tools/peers/newton_peers.py CKPT.h5 --cg-iters 10 [--retain-rows 8] [--forget-rows 2]
        [--damping 100] [--threads 2] [--reps 1] [--peers naive,optimised] [--json OUT.json]

CKPT is an unlearn checkpoint (`unlearn init` writes one; read with h5py as docs/checkpoint-format.md describes).
The batches are bench_newton.cpp's formula, so both sides solve the same system on the same weights:
row r, position t: token ((r T + t) 2654435761 + salt 40503) mod 2^32 mod V (salt 1 retain, 2 forget), one
document per row, every position but the last a target.  One Newton step: Δ = ∇L_forget (token mean), then
CG from x = 0 on (H_retain + λI) x = Δ for exactly --cg-iters iterations (no tolerance), dot products in float64.

  naive      every H·v is torch.autograd.functional.hvp (forward and both backwards each time).
  optimised  one forward and g = grad(L, create_graph=True) per step, then each H·v = grad(g, θ, v,
             retain_graph=True) on that graph (design 3.1); CG vectors as one flat tensor.

Reported per peer: seconds of the step, of Δ, of the graph setup, of CG and per CG iteration, the CG
curvature pᵀAp/pᵀp of every iteration and ‖x‖ (compare with ours: the same system must give the same numbers up
to float32 rounding).  A peer whose CG meets pᵀAp <= 0 stops there, as ours does (raise --damping).
"""

import argparse
import json
import os
import resource
import sys
import time

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "oracle"))
import reference_models as rm  # noqa: E402


def load_checkpoint(path):
    with h5py.File(path, "r") as f:
        cfg = {}
        for k, v in f.attrs.items():
            if k.startswith("config."):
                v = v.decode() if isinstance(v, bytes) else v
                v = v.item() if isinstance(v, np.generic) else v
                if isinstance(v, str):  # numbers are stored as text attributes
                    try:
                        v = int(v)
                    except ValueError:
                        try:
                            v = float(v)
                        except ValueError:
                            pass
                cfg[k[len("config."):]] = v
        params = {n: torch.from_numpy(np.asarray(f["tensors"][n][()])) for n in f["tensors"]}
    cfg = rm.normalise_config({k: v for k, v in cfg.items() if k != "dtype"})
    order = rm.param_shapes(cfg)
    missing = [n for n in order if n not in params]
    if missing:
        sys.exit("newton_peers: %s lacks %s" % (path, ", ".join(missing[:3])))
    return cfg, {n: params[n] for n in order}


def formula_batch(rows, T, V, salt):
    k = np.arange(rows * T, dtype=np.uint64).reshape(rows, T)
    tokens = ((k * np.uint64(2654435761) + np.uint64(salt * 40503)) & np.uint64(0xFFFFFFFF)) % np.uint64(V)
    tokens = torch.from_numpy(tokens.astype(np.int64))
    targets = torch.full((rows, T), -1, dtype=torch.int64)
    targets[:, :-1] = tokens[:, 1:]
    return {"tokens": tokens, "targets": targets, "segments": torch.zeros((rows, T), dtype=torch.int64),
            "positions": torch.arange(T, dtype=torch.int64).expand(rows, T).contiguous()}


def flat(ts):
    return torch.cat([t.reshape(-1) for t in ts])


def unflat(x, like):
    out, off = [], 0
    for t in like:
        out.append(x[off:off + t.numel()].view_as(t))
        off += t.numel()
    return out


def dot(a, b):
    return float(torch.dot(a.double(), b.double()))


def cg(apply, b, iters, lam):
    """Hestenes-Stiefel CG from x = 0 on (A + λI) x = b, a fixed iteration count; stops at pᵀAp <= 0."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = dot(r, r)
    curv, times, t0 = [], [], time.perf_counter()
    for _ in range(iters):
        Ap = apply(p)
        Ap.add_(p, alpha=lam)
        pAp, pp = dot(p, Ap), dot(p, p)
        if pAp <= 0:
            break
        alpha = rr / pAp
        x.add_(p, alpha=alpha)
        r.add_(Ap, alpha=-alpha)
        rr_next = dot(r, r)
        p.mul_(rr_next / rr).add_(r)
        rr = rr_next
        curv.append(pAp / pp)
        times.append(time.perf_counter() - t0)
    return x, curv, times


def step(peer, cfg, params, retain, forget, iters, lam):
    names = list(params)
    t0 = time.perf_counter()
    leaves = [params[n].detach().clone().requires_grad_(True) for n in names]
    p = dict(zip(names, leaves))
    delta = flat(torch.autograd.grad(rm.loss_fn(p, cfg, forget), leaves))
    t_grad = time.perf_counter() - t0
    t1 = time.perf_counter()
    if peer == "optimised":
        g = torch.autograd.grad(rm.loss_fn(p, cfg, retain), leaves, create_graph=True)

        def apply(v):
            return flat(torch.autograd.grad(g, leaves, unflat(v, leaves), retain_graph=True))
    else:
        frozen = tuple(t.detach() for t in leaves)

        def f(*ts):
            return rm.loss_fn(dict(zip(names, ts)), cfg, retain)

        def apply(v):
            return flat(torch.autograd.functional.hvp(f, frozen, tuple(unflat(v, leaves)))[1])
    t_setup = time.perf_counter() - t1
    x, curv, times = cg(apply, delta, iters, lam)
    t_cg = time.perf_counter() - t1 - t_setup
    return dict(step_s=time.perf_counter() - t0, gradient_s=t_grad, setup_s=t_setup, cg_s=t_cg,
                cg_iterations=len(curv), per_iteration_s=t_cg / max(1, len(curv)), curvature=curv,
                cumulative_s=[t_grad + t_setup + t for t in times], update_norm=float(x.double().norm()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--cg-iters", type=int, default=10)
    ap.add_argument("--retain-rows", type=int, default=8)
    ap.add_argument("--forget-rows", type=int, default=2)
    ap.add_argument("--damping", type=float, default=100.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=1, help="timed steps per peer after one warm-up (median kept)")
    ap.add_argument("--peers", default="naive,optimised")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg, params = load_checkpoint(a.checkpoint)
    T, V = cfg["max_positions"], cfg["vocab_size"]
    retain = formula_batch(a.retain_rows, T, V, 1)
    forget = formula_batch(a.forget_rows, T, V, 2)
    out = dict(checkpoint=a.checkpoint, params=sum(t.numel() for t in params.values()), threads=a.threads,
               torch=torch.__version__, cg_iters=a.cg_iters, damping=a.damping, retain_rows=a.retain_rows,
               forget_rows=a.forget_rows, peers={})
    for peer in a.peers.split(","):
        step(peer, cfg, params, retain, forget, 1, a.damping)  # warm-up: allocator, first-call costs
        runs = sorted((step(peer, cfg, params, retain, forget, a.cg_iters, a.damping) for _ in range(a.reps)),
                      key=lambda r: r["step_s"])
        r = runs[len(runs) // 2]
        out["peers"][peer] = r
        print("%-9s step %.3f s (gradient %.3f, setup %.3f, CG %.3f = %d x %.4f), |x| %.6g"
              % (peer, r["step_s"], r["gradient_s"], r["setup_s"], r["cg_s"], r["cg_iterations"],
                 r["per_iteration_s"], r["update_norm"]), flush=True)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
