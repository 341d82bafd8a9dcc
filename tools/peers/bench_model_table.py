#!/usr/bin/python3
"""Combine the raw outputs of tools/bench-model.sh into the markdown tables of issue 3.

    /usr/bin/python3 tools/peers/bench_model_table.py OUT_DIR [--sizes tiny,5m,30m] [--md FILE]

Reads, per size S, from OUT_DIR:
  ours1_S.jsonl   `unlearn bench model --threads 2` metrics (1 rank, TP = 1, 2 threads)
  ours1_S.rss     /usr/bin/time's max RSS (KiB) of that process
  ours2_S.jsonl   `mpiexec -n 2 ... unlearn bench model --tp 2` metrics (rank 0: TP = 1 at
                  1 thread while rank 1 waits, H.v at TP = 2, the 2-rank matmul speed-up)
  ours2_S.rss.R   /usr/bin/time's max RSS (KiB) of rank R
  peers_S.json    tools/peers/hvp_peers.py --json
and prints (or writes with --md) the combined tables.  No numbers are made up: a missing
input gives "-" in its cells.
"""

import argparse
import json
import os
import sys

# Presets of src/app/bench_model.cpp preset(): (d_model, n_layers, n_heads, batch, seq); vocab 256,
# d_ff = 4 d, max_positions = seq.
PRESETS = {"tiny": (64, 2, 4, 4, 64), "5m": (256, 6, 8, 8, 128), "30m": (512, 9, 8, 8, 128)}
VOCAB = 256


def forward_flops(size):
    """Matrix-product FLOPs of one forward pass, the formula of bench_model.cpp forward_flops()."""
    d, L, _, B, T = PRESETS[size]
    ff = 4 * d
    per_token = L * (2 * (4 * d * d) + 2 * (2 * d * ff)) + 2 * d * VOCAB
    attention = L * 2 * 2 * B * T * T * d
    return B * T * per_token + attention


def read_jsonl_record(path, event="bench_model"):
    if not os.path.exists(path):
        return None
    rec = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                if r.get("event") == event:
                    rec = r
    return rec


def read_rss_mib(path):
    """/usr/bin/time -f %M writes KiB (possibly after 'Command exited...' lines)."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        nums = [ln.strip() for ln in f if ln.strip().isdigit()]
    return int(nums[-1]) / 1024.0 if nums else None


def read_json(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def fmt(x, spec="%.4f"):
    return "-" if x is None else spec % x


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def mark(x, goal, le=True):
    """'0.31 ✓' when the goal is met, '0.55 ✗' when not."""
    if x is None:
        return "-"
    ok = x <= goal if le else x >= goal
    return "%.2f %s" % (x, "✓" if ok else "✗")


def collect(out_dir, size):
    o1 = read_jsonl_record(os.path.join(out_dir, "ours1_%s.jsonl" % size))
    o2 = read_jsonl_record(os.path.join(out_dir, "ours2_%s.jsonl" % size))
    pe = read_json(os.path.join(out_dir, "peers_%s.json" % size))
    return {
        "o1": o1, "o2": o2, "pe": pe,
        "rss1": read_rss_mib(os.path.join(out_dir, "ours1_%s.rss" % size)),
        "rss2": [read_rss_mib(os.path.join(out_dir, "ours2_%s.rss.%d" % (size, r))) for r in (0, 1)],
    }


def tables(out_dir, sizes):
    rows = {s: collect(out_dir, s) for s in sizes}
    g = lambda rec, k: None if rec is None else rec.get(k)
    pk = lambda pe, peer, k: None if pe is None else pe[peer].get(k)
    out = []

    out.append("Times (median seconds; ours: 1 rank, 2 threads; peers: float32, 2 threads, whole machine; "
               "H·v and G·v are per product, graph setup is paid once per Newton step):\n")
    out.append("| model | params | ours grad | ours H·v | ours G·v | ours setup | naive grad | naive H·v | "
               "naive G·v | optimised grad | optimised H·v | optimised G·v | optimised setup H·v / G·v |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s, r in rows.items():
        o1, pe = r["o1"], r["pe"]
        d, L, H, B, T = PRESETS[s]
        n = g(o1, "params") or (pe or {}).get("n_params")
        nrep = "" if pe is None or pe.get("naive_reps") == pe.get("reps") else " (%d rep)" % pe["naive_reps"]
        out.append("| %s (d %d, L %d, %dx%d) | %s | %s | %s | %s | %s | %s | %s%s | %s%s | %s | %s | %s | %s / %s |" % (
            s, d, L, B, T, fmt(n and n / 1e6, "%.2fM"),
            fmt(g(o1, "grad_s")), fmt(g(o1, "hvp_s")), fmt(g(o1, "gvp_s")), fmt(g(o1, "setup_s")),
            fmt(pk(pe, "naive", "grad_s")), fmt(pk(pe, "naive", "hv_s")), nrep, fmt(pk(pe, "naive", "gv_s")), nrep,
            fmt(pk(pe, "optimised", "grad_s")), fmt(pk(pe, "optimised", "hv_s")), fmt(pk(pe, "optimised", "gv_s")),
            fmt(pk(pe, "optimised", "hv_setup_s")), fmt(pk(pe, "optimised", "gv_setup_s"))))

    out.append("\nRatios (time ours / time peer, < 1 means ours is faster; ✓/✗ against the issue's goal):\n")
    out.append("| model | ours/naive grad | ours/naive H·v (≤ 0.4) | ours/naive G·v (≤ 0.4) | ours/optimised grad | "
               "ours/optimised H·v | ours/optimised G·v | goal vs optimised | ours H·v / grad (≤ 2.0) | "
               "optimised peer H·v / grad |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for s, r in rows.items():
        o1, pe = r["o1"], r["pe"]
        goal = {"5m": 0.8, "30m": 1.0}.get(s)
        ro = [ratio(g(o1, a), pk(pe, "optimised", b)) for a, b in (("grad_s", "grad_s"), ("hvp_s", "hv_s"),
                                                                   ("gvp_s", "gv_s"))]
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            s, fmt(ratio(g(o1, "grad_s"), pk(pe, "naive", "grad_s")), "%.2f"),
            mark(ratio(g(o1, "hvp_s"), pk(pe, "naive", "hv_s")), 0.4),
            mark(ratio(g(o1, "gvp_s"), pk(pe, "naive", "gv_s")), 0.4),
            fmt(ro[0], "%.2f"),
            mark(ro[1], goal) if goal else fmt(ro[1], "%.2f"),
            mark(ro[2], goal) if goal else fmt(ro[2], "%.2f"),
            ("≤ %.1f per product" % goal) if goal else "none (tiny)",
            mark(ratio(g(o1, "hvp_s"), g(o1, "grad_s")), 2.0),
            fmt(ratio(pk(pe, "optimised", "hv_s"), pk(pe, "optimised", "grad_s")), "%.2f")))

    out.append("\nRates (matrix-product FLOPs of bench_model.cpp's count: forward F, gradient 3F, H·v 6F; "
               "matmul = one [B·T, d] x [d, 4d] product in the same process, same threads) and memory:\n")
    out.append("| model | F (GFLOP) | ours grad GFLOP/s | ours H·v GFLOP/s | matmul GFLOP/s (2 threads) | "
               "grad / matmul | H·v / matmul | optimised peer H·v GFLOP/s | peak RSS ours 1 rank (MiB) | "
               "peak RSS TP=2 rank 0 / rank 1 (MiB) | peak RSS peers' process (MiB) |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s, r in rows.items():
        o1, pe = r["o1"], r["pe"]
        F = forward_flops(s)
        gr = ratio(3 * F / 1e9, g(o1, "grad_s"))
        hr = ratio(6 * F / 1e9, g(o1, "hvp_s"))  # double backward with graph reuse: 6F
        mm = g(o1, "matmul_gflops")
        ph = ratio(6 * F / 1e9, pk(pe, "optimised", "hv_s"))
        rss1 = r["rss1"] if r["rss1"] is not None else g(o1, "peak_rss_mib")
        out.append("| %s | %.2f | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s |" % (
            s, F / 1e9, fmt(gr, "%.1f"), fmt(hr, "%.1f"), fmt(mm, "%.1f"), fmt(ratio(gr, mm), "%.2f"),
            fmt(ratio(hr, mm), "%.2f"), fmt(ph, "%.1f"), fmt(rss1, "%.0f"),
            fmt(r["rss2"][0], "%.0f"), fmt(r["rss2"][1], "%.0f"), fmt((pe or {}).get("peak_rss_mib"), "%.0f")))

    out.append("\nTP = 2 against TP = 1 (2 ranks, 1 thread each; TP = 1 runs on rank 0 alone while rank 1 waits; "
               "the machine's speed-up is the same matmul split over the 2 ranks at once):\n")
    out.append("| model | grad TP=1 (s) | H·v TP=1 (s) | G·v TP=1 (s) | H·v TP=2 (s) | model speed-up | "
               "matmul speed-up (2 ranks) | fraction (≥ 0.9) |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s, r in rows.items():
        o2 = r["o2"]
        sp = ratio(g(o2, "hvp_s"), g(o2, "hvp_tp2_s"))
        mm = g(o2, "matmul_speedup_2ranks")
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            s, fmt(g(o2, "grad_s")), fmt(g(o2, "hvp_s")), fmt(g(o2, "gvp_s")), fmt(g(o2, "hvp_tp2_s")),
            fmt(sp, "%.2f"), fmt(mm, "%.2f"), mark(ratio(sp, mm), 0.9, le=False)))

    agree = []
    for s, r in rows.items():
        pe = r["pe"]
        if pe:
            a = pe["agreement"]
            agree.append("%s: H·v %.1e, G·v %.1e (tol %.0e)" % (s, a["hv_rel_err"], a["gv_rel_err"], pe["tol"]))
    if agree:
        out.append("\nPeers' cross-check (relative difference of the naive and optimised products, float32): "
                   + "; ".join(agree) + ".")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--sizes", default="tiny,5m,30m")
    ap.add_argument("--md", help="also write the tables here")
    a = ap.parse_args(argv)
    sizes = [s for s in a.sizes.split(",") if s]
    bad = [s for s in sizes if s not in PRESETS]
    if bad:
        print("bench_model_table: unknown size(s) %s (tiny, 5m, 30m)" % ", ".join(bad), file=sys.stderr)
        return 2
    text = tables(a.out_dir, sizes)
    sys.stdout.write(text)
    if a.md:
        with open(a.md, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
