#!/usr/bin/python3
"""Python peers for the curvature-product benchmark (CPU, float64 or float32, same weights and batch).

    /usr/bin/python3 tools/peers/hvp_peers.py FILE.h5 --threads 2 --reps 5 [--dtype float32]
        [--naive-reps N] [--json OUT.json]

FILE is an exchange file (tests/oracle/make_fixture.py writes one; /v is used as the
direction, a seeded random one when absent).  Two peers:

  naive      gradient: forward + backward.
             H.v: torch.autograd.functional.hvp per product (forward and both backwards
             every time).  G.v, two ways, each a fresh forward per derivative pass:
               gv_functional_s  torch.autograd.functional.jvp (J v by the double-backward
                                trick: forward, backward, double backward) + H_out +
                                torch.autograd.functional.vjp (forward, backward): the G.v
                                counterpart of the issue's torch.autograd.functional.hvp peer;
               gv_s             functorch.jvp (forward mode: forward and tangent in one pass)
                                + H_out + functorch.vjp: a stronger peer than the issue asks for.
  optimised  one forward + g = grad(L, create_graph=True) per step, then each
             H.v = grad(<g, v>, retain_graph=True) reuses that graph (design 3.1).
             G.v: one forward + w(u) = J^T u built with create_graph=True per step, then each
             product J v = grad(w, u, v) (R-op by double backward), z = H_out J v,
             J^T z = grad(logits, z), all on retained graphs.
             Extra G.v variant (gv_fwdjvp_s, skip with --no-fwd-variant): J v by forward
             mode per product, J^T on the retained graph; forward mode is not available to
             the C++ side (design 3.1) but shows the price of the double-backward R-op.

Reported: median seconds of the gradient, of one H.v and one G.v per peer, and for the
optimised peer the per-step setup (building the reusable graph), paid once per Newton step
and amortised over the CG iterations.

--dtype float32 casts the file's (float64) weights and direction to float32 and runs both
peers in float32 (the issue's benchmark dtype).  The peers' products must agree within --tol
(default 1e-10 in float64, 1e-4 in float32: two autograd routes round differently in float32,
~1e-6 measured); a disagreement beyond it is reported and gives exit status 3.
--naive-reps N times the naive peer's products in the first N reps only (its H.v on large
models is slow); the naive gradient is timed in every rep.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "oracle"))
import reference_models as rm  # noqa: E402


def timed(fn):
    t = time.perf_counter()
    r = fn()
    return time.perf_counter() - t, r


class Naive:
    def __init__(self, params, cfg, batch):
        self.params, self.cfg, self.batch = params, cfg, batch

    def grad(self):
        return rm.gradient(self.params, self.cfg, self.batch)[1]

    def hv(self, v):
        return rm.hvp_functional(self.params, self.cfg, self.batch, v)

    def gv(self, v):
        return rm.gvp(self.params, self.cfg, self.batch, v, mode="forward")

    def gv_functional(self, v):
        return rm.gvp_functional(self.params, self.cfg, self.batch, v)


class Optimised:
    def __init__(self, params, cfg, batch):
        self.cfg, self.batch = cfg, batch
        self.names = list(params)
        self.p = {k: t.detach().clone().requires_grad_(True) for k, t in params.items()}
        self.leaves = [self.p[k] for k in self.names]

    def grad(self):
        loss = rm.loss_fn(self.p, self.cfg, self.batch)
        return dict(zip(self.names, torch.autograd.grad(loss, self.leaves)))

    def setup_hv(self):
        loss = rm.loss_fn(self.p, self.cfg, self.batch)
        self.g = torch.autograd.grad(loss, self.leaves, create_graph=True)

    def hv(self, v):
        hv = torch.autograd.grad(self.g, self.leaves, [v[k] for k in self.names], retain_graph=True)
        return dict(zip(self.names, hv))

    def setup_gv(self):
        self.logits = rm.logits_fn(self.p, self.cfg, self.batch)
        self.u = torch.zeros_like(self.logits, requires_grad=True)
        # w(u) = J^T u is linear in u; differentiating <w(u), v> w.r.t. u gives J v.
        self.w = torch.autograd.grad(self.logits, self.leaves, self.u, create_graph=True)
        self.lg = self.logits.detach()

    def gv(self, v):
        jv = torch.autograd.grad(self.w, self.u, [v[k] for k in self.names], retain_graph=True)[0]
        z = rm.output_hessian_apply(self.lg, self.batch["targets"], jv)
        gv = torch.autograd.grad(self.logits, self.leaves, z, retain_graph=True)
        return dict(zip(self.names, gv))

    def gv_fwd(self, v):
        """Variant: J v by forward mode (a fresh forward + tangent per product), J^T by the
        retained graph of setup_gv; shows what the R-op's double backward costs."""
        import functorch
        primal = {k: t.detach() for k, t in self.p.items()}
        _, jv = functorch.jvp(lambda ps: rm.logits_fn(ps, self.cfg, self.batch), (primal,),
                              ({k: v[k] for k in self.names},))
        z = rm.output_hessian_apply(self.lg, self.batch["targets"], jv)
        gv = torch.autograd.grad(self.logits, self.leaves, z, retain_graph=True)
        return dict(zip(self.names, gv))

    def release(self):
        for a in ("g", "logits", "u", "w", "lg"):
            self.__dict__.pop(a, None)


def bench(params, cfg, batch, v, reps, per_setup, with_fwd=True, naive_reps=None):
    """Median seconds per measurement.  Reps interleave the peers so that a change in
    background load (a shared machine) biases neither side.  The naive products run in the
    first `naive_reps` reps only (default: all)."""
    naive_reps = reps if naive_reps is None else max(1, min(naive_reps, reps))
    nv, op = Naive(params, cfg, batch), Optimised(params, cfg, batch)
    # Warm-up (allocator, functorch import) outside the timings: two rounds, as the C++ side drops two reps.
    for _ in range(2):
        nv.grad(); op.setup_hv(); op.hv(v); op.setup_gv(); op.gv(v); op.release()
    t = {k: [] for k in ("n_grad", "n_hv", "n_gv", "n_gv_af", "o_grad", "o_hv_setup", "o_hv", "o_gv_setup",
                         "o_gv", "o_gv_fwd")}
    out = {}

    def run(key, fn):
        dt, r = timed(fn)
        t[key].append(dt)
        return r

    for r in range(reps):
        run("n_grad", nv.grad)
        run("o_grad", op.grad)
        if r < naive_reps:
            out["n_hv"] = run("n_hv", lambda: nv.hv(v))
        run("o_hv_setup", op.setup_hv)
        for _ in range(per_setup):
            out["o_hv"] = run("o_hv", lambda: op.hv(v))
        op.release()
        if r < naive_reps:
            out["n_gv"] = run("n_gv", lambda: nv.gv(v))
            out["n_gv_af"] = run("n_gv_af", lambda: nv.gv_functional(v))
        run("o_gv_setup", op.setup_gv)
        for _ in range(per_setup):
            out["o_gv"] = run("o_gv", lambda: op.gv(v))
            if with_fwd:
                out["o_gv_fwd"] = run("o_gv_fwd", lambda: op.gv_fwd(v))
        op.release()
    med = lambda k: statistics.median(t[k])
    counts = {k: len(x) for k, x in t.items() if x}
    res = {"naive": {"grad_s": med("n_grad"), "hv_s": med("n_hv"), "gv_s": med("n_gv"),
                     "gv_functional_s": med("n_gv_af")},
           "optimised": {"grad_s": med("o_grad"), "hv_setup_s": med("o_hv_setup"), "hv_s": med("o_hv"),
                         "gv_setup_s": med("o_gv_setup"), "gv_s": med("o_gv")},
           "samples": counts, "all_s": t}
    # Both peers must compute the same products, else the timings compare different things.
    res["agreement"] = {"hv_rel_err": rm.rel_err(out["o_hv"], out["n_hv"])[0],
                        "gv_rel_err": rm.rel_err(out["o_gv"], out["n_gv"])[0],
                        "gv_functional_rel_err": rm.rel_err(out["o_gv"], out["n_gv_af"])[0]}
    if with_fwd:
        res["optimised"]["gv_fwdjvp_s"] = med("o_gv_fwd")
        res["agreement"]["gv_fwdjvp_rel_err"] = rm.rel_err(out["o_gv_fwd"], out["n_gv"])[0]
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--products-per-setup", type=int, default=3,
                    help="optimised peer: products timed on each reused graph (default 3)")
    ap.add_argument("--no-fwd-variant", action="store_true",
                    help="skip the extra optimised G.v variant with forward-mode J v")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                    help="precision of both peers (default float64)")
    ap.add_argument("--naive-reps", type=int,
                    help="time the naive peer's H.v and G.v in this many reps only (default: --reps)")
    ap.add_argument("--tol", type=float,
                    help="largest accepted relative disagreement of the peers' products "
                         "(default 1e-10 float64, 1e-4 float32)")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)
    dtype = getattr(torch, a.dtype)
    tol = a.tol if a.tol is not None else (1e-10 if dtype == torch.float64 else 1e-4)
    torch.set_num_threads(a.threads)
    try:
        d = rm.load_exchange(a.file)
    except rm.MalformedFile as e:
        print("hvp_peers: malformed exchange file %s: %s" % (a.file, e), file=sys.stderr)
        return 2
    cfg, params, batch, v = d["cfg"], d["params"], d["batch"], d["v"]
    if v is None:
        gen = torch.Generator().manual_seed(0)
        v = {k: torch.randn(t.shape, generator=gen, dtype=rm.DTYPE) for k, t in params.items()}
    params = {k: t.to(dtype) for k, t in params.items()}
    v = {k: t.to(dtype) for k, t in v.items()}
    n_par = sum(t.numel() for t in params.values())
    B, T = batch["tokens"].shape
    res = bench(params, cfg, batch, v, a.reps, a.products_per_setup, not a.no_fwd_variant, a.naive_reps)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    agree = res["agreement"]
    bad = sorted(k for k, e in agree.items() if not e <= tol)  # NaN counts as bad
    naive_n = res["samples"].get("n_hv", 0)
    print("%s, %d parameters, batch %dx%d, %s, %d threads, median of %d reps%s (torch %s)"
          % (cfg["family"], n_par, B, T, a.dtype, a.threads, a.reps,
             "" if naive_n == a.reps else ", naive H.v/G.v %d" % naive_n, torch.__version__))
    n, o = res["naive"], res["optimised"]
    print("%-10s %10s %10s %10s %12s %12s" % ("peer", "grad s", "H.v s", "G.v s", "H setup s", "G setup s"))
    print("%-10s %10.4f %10.4f %10.4f %12s %12s" % ("naive", n["grad_s"], n["hv_s"], n["gv_s"], "-", "-"))
    print("%-10s %10.4f %10.4f %10.4f %12.4f %12.4f" % ("optimised", o["grad_s"], o["hv_s"], o["gv_s"],
                                                      o["hv_setup_s"], o["gv_setup_s"]))
    print("optimised/naive per product: H.v %.2fx, G.v %.2fx; peers agree to %.1e (H.v), %.1e (G.v)"
          % (o["hv_s"] / n["hv_s"], o["gv_s"] / n["gv_s"], agree["hv_rel_err"], agree["gv_rel_err"]))
    print("naive G.v through torch.autograd.functional (jvp by double backward + vjp): %.4f s (agrees to %.1e)"
          % (n["gv_functional_s"], agree["gv_functional_rel_err"]))
    if "gv_fwdjvp_s" in o:
        print("optimised G.v with forward-mode J v (functorch.jvp) + retained J^T: %.4f s (agrees to %.1e)"
              % (o["gv_fwdjvp_s"], res["agreement"]["gv_fwdjvp_rel_err"]))
    if a.json:
        out = {"file": os.path.abspath(a.file), "family": cfg["family"], "n_params": n_par,
               "batch": [B, T], "n_targets": int((batch["targets"] != -1).sum()),
               "config": {k: cfg[k] for k in cfg}, "dtype": a.dtype, "device": "cpu",
               "threads": a.threads, "reps": a.reps, "naive_reps": naive_n,
               "products_per_setup": a.products_per_setup,
               "torch": torch.__version__, "host": platform.node(), "statistic": "median seconds",
               "peak_rss_mib": peak_rss_mib, "tol": tol, "agreement_ok": not bad}
        out.update(res)
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
        print("wrote " + a.json)
    print("peak RSS of this process (both peers): %.0f MiB" % peak_rss_mib)
    if bad:
        print("hvp_peers: the peers DISAGREE beyond tol %.1e: %s"
              % (tol, ", ".join("%s %.1e" % (k, agree[k]) for k in bad)), file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
