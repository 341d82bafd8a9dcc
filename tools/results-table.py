#!/usr/bin/python3
"""One comparison table (markdown) and chart (PNG) from `unlearn eval` reports.

Usage: results-table.py --out PREFIX --original EVAL_JSON ROW...
  ROW = LABEL=EVAL_JSON[,FORGET_REPORT_JSON]   (the forget report gives the method's wall time)
Writes PREFIX.md and PREFIX.png and prints the markdown. The "before" columns come from the original model's
evaluation; exposure is the mean over evaluation canaries (rank-based, and extrapolated from the skew-normal fit),
with the never-inserted baseline; AUCs are the loss attack between forget and held-out documents, with 95%
bootstrap intervals. Uses Debian's python3-matplotlib (call /usr/bin/python3).
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    with open(path) as f:
        return json.load(f)


def exposure(ev, kind):
    e = ev.get("exposure")
    return e["evaluation_%s_mean" % kind] if e and ("evaluation_%s_mean" % kind) in e else None


def baseline(ev):
    e = ev.get("exposure")
    return e["heldout_rank_mean"]["value"] if e and "heldout_rank_mean" in e else None


def ppl(ev, name):
    return ev["perplexity"][name]["perplexity"]


def auc(ev, attack="loss"):
    m = ev.get("membership_inference")
    return m[attack] if isinstance(m, dict) and isinstance(m.get(attack), dict) else None


def ci(x, digits=2):
    if x is None:
        return "-"
    return "%.*f [%.*f, %.*f]" % (digits, x["value"], digits, x["lower"], digits, x["upper"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--original", required=True)
    ap.add_argument("--title", default="Unlearning the canary documents")
    ap.add_argument("rows", nargs="+")
    a = ap.parse_args()
    orig = load(a.original)
    rows = []
    for spec in a.rows:
        label, files = spec.split("=", 1)
        parts = files.split(",")
        ev = load(parts[0])
        seconds = load(parts[1])["phases"]["total_s"] if len(parts) > 1 else None
        rows.append((label, ev, seconds))

    v0 = ppl(orig, "validation")
    lines = [
        "| method | exposure, evaluation canaries (bits, rank) | extrapolated (bits) | never-inserted baseline (bits) "
        "| validation perplexity | Δ perplexity | forget perplexity | MIA AUC (loss) | MIA AUC (min-k%) | KL on retain "
        "(nats/token) | wall time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def row(label, ev, seconds):
        v = ppl(ev, "validation")
        kl = ev.get("retain_kl_per_token")
        return "| %s | %s | %s | %.2f | %.3f | %+.1f%% | %.3f | %s | %s | %s | %s |" % (
            label, ci(exposure(ev, "rank")), ci(exposure(ev, "extrapolated")), baseline(ev), v, 100 * (v / v0 - 1),
            ppl(ev, "forget"), ci(auc(ev)), ci(auc(ev, "min_k")), "-" if kl is None else "%.4f" % kl,
            "-" if seconds is None else "%.1f" % seconds)

    lines.append(row("before (trained model)", orig, None))
    for label, ev, seconds in rows:
        lines.append(row(label, ev, seconds))
    text = "\n".join(lines) + "\n"
    with open(a.out + ".md", "w") as f:
        f.write(text)
    print(text)

    labels = ["before"] + [r[0] for r in rows]
    evs = [orig] + [r[1] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    xs = range(len(labels))
    vals = [exposure(e, "rank")["value"] for e in evs]
    err = [[v - exposure(e, "rank")["lower"] for v, e in zip(vals, evs)],
           [exposure(e, "rank")["upper"] - v for v, e in zip(vals, evs)]]
    ax1.bar(xs, vals, yerr=err, color=["#888"] + ["#3a7"] * len(rows), capsize=3)
    ax1.axhline(baseline(orig), color="k", ls="--", lw=1, label="never-inserted baseline")
    ax1.axhline(baseline(orig) + 2, color="r", ls=":", lw=1, label="baseline + 2 bits")
    ax1.set_xticks(list(xs))
    ax1.set_xticklabels(labels, rotation=20, ha="right")
    ax1.set_ylabel("mean exposure, evaluation canaries (bits)")
    ax1.legend(fontsize=8)
    ax2.bar(xs, [100 * (ppl(e, "validation") / v0 - 1) for e in evs], color=["#888"] + ["#37a"] * len(rows))
    ax2.axhline(5, color="r", ls=":", lw=1, label="+5%")
    ax2.set_xticks(list(xs))
    ax2.set_xticklabels(labels, rotation=20, ha="right")
    ax2.set_ylabel("validation perplexity change (%)")
    ax2.legend(fontsize=8)
    fig.suptitle(a.title)
    fig.tight_layout()
    fig.savefig(a.out + ".png", dpi=110)


if __name__ == "__main__":
    main()
