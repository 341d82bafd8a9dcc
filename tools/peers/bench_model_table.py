#!/usr/bin/python3
"""Combine the raw outputs of tools/bench-model.sh into the markdown tables of issue 3.

    /usr/bin/python3 tools/peers/bench_model_table.py OUT_DIR [--sizes tiny,5m,30m] [--md FILE]

Reads, per size S and paired round K (ours1_S.jsonl and peers_S.json without .rK: one round), from OUT_DIR:
  ours1_S.rK.jsonl  `unlearn bench model --threads 2` metrics (1 rank, TP = 1, 2 threads)
  ours1_S.rK.rss    /usr/bin/time's max RSS (KiB) of that process
  peers_S.rK.json   tools/peers/hvp_peers.py --json, run right after it
and once per size:
  ours2_S.jsonl   `mpiexec -n 2 ... unlearn bench model --tp 2` metrics (rank 0: TP = 1 at
                  1 thread while rank 1 waits; per paired round: H.v at TP = 1 and at TP = 2 and the
                  2-rank matmul speed-up)
  ours2_S.rss.R   /usr/bin/time's max RSS (KiB) of rank R
and prints (or writes with --md) the combined tables.  No numbers are made up: a missing
input gives "-" in its cells.
"""

import argparse
import json
import os
import re
import statistics
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


def round_files(out_dir, size):
    """[(ours1 stem, peers stem)] of the paired rounds, round 1 first; an older single-round run
    (ours1_S.jsonl, peers_S.json) reads as one round."""
    ks = sorted(int(m.group(1)) for m in (re.match(r"ours1_%s\.r(\d+)\.jsonl$" % re.escape(size), f)
                                          for f in os.listdir(out_dir)) if m)
    if not ks:
        return [("ours1_%s" % size, "peers_%s" % size)]
    return [("ours1_%s.r%d" % (size, k), "peers_%s.r%d" % (size, k)) for k in ks]


def collect(out_dir, size):
    j = lambda name: os.path.join(out_dir, name)
    rounds = [{"o1": read_jsonl_record(j(o + ".jsonl")), "pe": read_json(j(p + ".json")),
               "rss1": read_rss_mib(j(o + ".rss"))} for o, p in round_files(out_dir, size)]
    return {
        "rounds": rounds, "o2": read_jsonl_record(j("ours2_%s.jsonl" % size)),
        "rss2": [read_rss_mib(j("ours2_%s.rss.%d" % (size, r))) for r in (0, 1)],
    }


def get(rec, k):
    return None if rec is None else rec.get(k)


def peer(pe, who, k):
    return None if pe is None else pe[who].get(k)


def over_rounds(rounds, f):
    """Median over the rounds of f(round) (rounds where it is None are skipped), and all values."""
    xs = [x for x in (f(r) for r in rounds) if x is not None]
    return (statistics.median(xs) if xs else None), xs


def spread(xs, spec="%.2f"):
    return "" if len(xs) < 2 else " (%s-%s)" % (spec % min(xs), spec % max(xs))


def ratio_cell(rounds, f, goal=None, le=True):
    """Median of the per-round ratios f(round), its mark against the goal, and the range over rounds."""
    m, xs = over_rounds(rounds, f)
    return (mark(m, goal, le) if goal is not None else fmt(m, "%.2f")) + ("" if m is None else spread(xs))


def tables(out_dir, sizes):
    rows = {s: collect(out_dir, s) for s in sizes}
    out = []
    n_rounds = {s: len(r["rounds"]) for s, r in rows.items()}

    out.append("Times (seconds: median of the reps in each round, then the median over the paired rounds (%s); "
               "ours: 1 rank, 2 threads; peers: float32, 2 threads, whole machine; H·v and G·v are per product, "
               "graph setup is paid once per Newton step; naive G·v through torch.autograd.functional (jvp + vjp, "
               "the counterpart of its hvp) and through functorch (forward-mode jvp + vjp):\n"
               % ", ".join("%s %d" % kv for kv in n_rounds.items()))
    out.append("| model | params | ours grad | ours H·v | ours G·v | ours setup | naive grad | naive H·v | "
               "naive G·v autograd.functional | naive G·v functorch | optimised grad | optimised H·v | "
               "optimised G·v | optimised setup H·v / G·v |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s, r in rows.items():
        rs = r["rounds"]
        d, L, H, B, T = PRESETS[s]
        o = lambda k: fmt(over_rounds(rs, lambda x: get(x["o1"], k))[0])
        p = lambda who, k: fmt(over_rounds(rs, lambda x: peer(x["pe"], who, k))[0])
        n = next(iter(over_rounds(rs, lambda x: get(x["o1"], "params") or get(x["pe"], "n_params"))[1]), None)
        pe0 = rs[0]["pe"]
        nrep = "" if pe0 is None or pe0.get("naive_reps") == pe0.get("reps") else " (%d rep)" % pe0["naive_reps"]
        out.append("| %s (d %d, L %d, %dx%d) | %s | %s | %s | %s | %s | %s | %s%s | %s%s | %s%s | %s | %s | %s | "
                   "%s / %s |" % (
                       s, d, L, B, T, fmt(n and n / 1e6, "%.2fM"),
                       o("grad_s"), o("hvp_s"), o("gvp_s"), o("setup_s"),
                       p("naive", "grad_s"), p("naive", "hv_s"), nrep, p("naive", "gv_functional_s"), nrep,
                       p("naive", "gv_s"), nrep,
                       p("optimised", "grad_s"), p("optimised", "hv_s"), p("optimised", "gv_s"),
                       p("optimised", "hv_setup_s"), p("optimised", "gv_setup_s")))

    out.append("\nRatios (time ours / time peer within each round, < 1 means ours is faster: the median over the "
               "rounds, their range in brackets; ✓/✗ against the issue's goal, judged on the median). The last "
               "column is the floor of ours/functorch G·v set by arithmetic: ours does 4F of matrix products per "
               "G·v (J v 2F, Jᵀ 2F), so it cannot beat 4F at the matmul rate of the same run:\n")
    out.append("| model | ours/naive grad | ours/naive H·v (≤ 0.4) | ours/naive G·v autograd.functional (≤ 0.4) | "
               "ours/optimised grad | ours/optimised H·v | ours/optimised G·v | goal vs optimised | "
               "ours H·v / grad (≤ 2.0) | optimised peer H·v / grad | ours/naive G·v functorch | its 4F floor |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for s, r in rows.items():
        rs = r["rounds"]
        goal = {"5m": 0.8, "30m": 1.0}.get(s)
        vs = lambda a, who, b: lambda x: ratio(get(x["o1"], a), peer(x["pe"], who, b))
        F = forward_flops(s)
        floor = lambda x: ratio(ratio(4 * F / 1e9, get(x["o1"], "matmul_gflops")), peer(x["pe"], "naive", "gv_s"))
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            s, ratio_cell(rs, vs("grad_s", "naive", "grad_s")),
            ratio_cell(rs, vs("hvp_s", "naive", "hv_s"), 0.4),
            ratio_cell(rs, vs("gvp_s", "naive", "gv_functional_s"), 0.4),
            ratio_cell(rs, vs("grad_s", "optimised", "grad_s")),
            ratio_cell(rs, vs("hvp_s", "optimised", "hv_s"), goal),
            ratio_cell(rs, vs("gvp_s", "optimised", "gv_s"), goal),
            ("≤ %.1f per product" % goal) if goal else "none (tiny)",
            ratio_cell(rs, lambda x: ratio(get(x["o1"], "hvp_s"), get(x["o1"], "grad_s")), 2.0),
            ratio_cell(rs, lambda x: ratio(peer(x["pe"], "optimised", "hv_s"), peer(x["pe"], "optimised", "grad_s"))),
            ratio_cell(rs, vs("gvp_s", "naive", "gv_s")),
            ratio_cell(rs, floor)))

    out.append("\nRates (matrix-product FLOPs of bench_model.cpp's count: forward F, gradient 3F, H·v 6F; "
               "matmul = one [B·T, d] x [d, 4d] product in the same process, same threads) and memory:\n")
    out.append("| model | F (GFLOP) | ours grad GFLOP/s | ours H·v GFLOP/s | matmul GFLOP/s (2 threads) | "
               "grad / matmul | H·v / matmul | optimised peer H·v GFLOP/s | peak RSS ours 1 rank (MiB) | "
               "peak RSS TP=2 rank 0 / rank 1 (MiB) | peak RSS peers' process (MiB) |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s, r in rows.items():
        rs = r["rounds"]
        F = forward_flops(s)
        med = lambda f: over_rounds(rs, f)[0]
        grad_rate = lambda x: ratio(3 * F / 1e9, get(x["o1"], "grad_s"))
        hv_rate = lambda x: ratio(6 * F / 1e9, get(x["o1"], "hvp_s"))  # double backward with graph reuse: 6F
        of_matmul = lambda rate: lambda x: ratio(rate(x), get(x["o1"], "matmul_gflops"))
        mm = med(lambda x: get(x["o1"], "matmul_gflops"))
        ph = med(lambda x: ratio(6 * F / 1e9, peer(x["pe"], "optimised", "hv_s")))
        # Peak memory: the largest over the rounds.
        top = lambda f: max(over_rounds(rs, f)[1], default=None)
        rss1 = top(lambda x: x["rss1"] if x["rss1"] is not None else get(x["o1"], "peak_rss_mib"))
        out.append("| %s | %.2f | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s |" % (
            s, F / 1e9, fmt(med(grad_rate), "%.1f"), fmt(med(hv_rate), "%.1f"), fmt(mm, "%.1f"),
            ratio_cell(rs, of_matmul(grad_rate)), ratio_cell(rs, of_matmul(hv_rate)),
            fmt(ph, "%.1f"), fmt(rss1, "%.0f"), fmt(r["rss2"][0], "%.0f"), fmt(r["rss2"][1], "%.0f"),
            fmt(top(lambda x: get(x["pe"], "peak_rss_mib")), "%.0f")))

    out.append("\nTP = 2 against TP = 1 (2 ranks, 1 thread each, `bench model --tp 2`): grad, H·v and G·v at "
               "TP = 1 from its table; then paired rounds, each timing back to back the machine's own 2-rank "
               "speed-up (one matmul on rank 0 alone, then its two halves on the 2 ranks at once), H·v at TP = 1 "
               "on rank 0 while rank 1 waits, and H·v at TP = 2; times are medians over the rounds, the fraction "
               "is the median of the per-round fractions (model speed-up / machine speed-up) with their range. "
               "Each round also replays the collectives of one TP = 2 H·v alone (C); the ceiling T1 / (T1 + S·C) "
               "is the fraction of a TP = 2 product whose whole arithmetic split at the machine's speed-up S; the last "
               "column is each rank's time inside collectives during the TP = 2 products (beyond C: waiting for the "
               "other rank):\n")
    out.append("| model | grad TP=1 (s) | H·v TP=1 (s) | G·v TP=1 (s) | rounds | H·v TP=1 in rounds (s) | "
               "H·v TP=2 (s) | model speed-up | matmul speed-up (2 ranks) | fraction (≥ 0.9) | "
               "collectives per TP=2 H·v | their time alone (s) | ceiling | in collectives, rank 0 / rank 1 (s) |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s, r in rows.items():
        o2 = r["o2"]
        t1s, t2s, mms, cs = (get(o2, k) or [] for k in ("hvp_tp1_rounds_s", "hvp_tp2_rounds_s",
                                                         "matmul_speedup_rounds", "tp_collectives_alone_rounds_s"))
        fr = [a / b / m for a, b, m in zip(t1s, t2s, mms)]
        ceil = [a / (a + m * c) for a, m, c in zip(t1s, mms, cs)]
        med = lambda xs: statistics.median(xs) if xs else None
        n_coll, coll_bytes = get(o2, "tp_collectives_per_hvp"), get(o2, "tp_collective_bytes_per_hvp")
        out.append("| %s | %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |" % (
            s, fmt(get(o2, "grad_s")), fmt(get(o2, "hvp_s")), fmt(get(o2, "gvp_s")), len(fr), fmt(med(t1s)),
            fmt(med(t2s)), fmt(ratio(med(t1s), med(t2s)), "%.2f"), fmt(med(mms), "%.2f"),
            mark(med(fr), 0.9, le=False) + spread(fr),
            "-" if n_coll is None else "%d (%.2f MiB)" % (n_coll, coll_bytes / 1048576.0),
            fmt(med(cs), "%.5f"), fmt(med(ceil), "%.2f") + (spread(ceil) if ceil else ""),
            fmt(get(o2, "tp_in_collectives_rank0_s"), "%.5f"), fmt(get(o2, "tp_in_collectives_rank1_s"), "%.5f")))

    agree = []
    for s, r in rows.items():
        pes = [x["pe"] for x in r["rounds"] if x["pe"]]
        if pes:
            worst = lambda k: max(pe["agreement"].get(k, float("nan")) for pe in pes)
            agree.append("%s: H·v %.1e, G·v functorch %.1e, G·v autograd.functional %.1e (tol %.0e)" % (
                s, worst("hv_rel_err"), worst("gv_rel_err"), worst("gv_functional_rel_err"), pes[0]["tol"]))
    if agree:
        out.append("\nPeers' cross-check (largest over the rounds of the relative difference of the naive and "
                   "optimised products, float32): " + "; ".join(agree) + ".")
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
