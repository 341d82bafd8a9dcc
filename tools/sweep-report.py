#!/usr/bin/python3
# Collects the forget reports of a sweep (slurm/submit-sweep.sh: SWEEP_DIR/<name>/forget.h5.report.json and the
# row) into SWEEP_DIR/sweep.csv and SWEEP_DIR/scaling.png: strong scaling (time per CG iteration against ranks, per
# model, with the ideal line), weak scaling (the same per parameters held per rank), the communication fraction of
# the solve (mean over ranks of the time inside collectives), and memory per rank (measured peak resident set of the
# largest rank, with the dry-run estimate dashed). Usage: /usr/bin/python3 tools/sweep-report.py SWEEP_DIR [--out DIR]  (Debian's python3: matplotlib); a
# SWEEP_DIR holding only a sweep.csv (docs/scaling) is plotted again from it.
import argparse
import csv
import glob
import json
import os
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIELDS = ["name", "model", "tp", "dp", "world_size", "nodes", "params_per_rank", "cg_iterations",
          "cg_iteration_s", "solve_s", "total_s", "comm_fraction", "comm_seconds_max", "peak_rss_bytes_max",
          "memory_per_rank_estimate_bytes", "resumed_from_iteration"]


def cg_iteration_seconds(history):
    """Median time between consecutive CG iterations: excludes the set-up before the first and a resume's restart."""
    steps = [b["seconds"] - a["seconds"] for a, b in zip(history, history[1:]) if b["seconds"] > a["seconds"]]
    if steps:
        return statistics.median(steps)
    return history[0]["seconds"] if history else None


def row_of(report_path):
    d = os.path.dirname(report_path)
    r = json.load(open(report_path))
    row = open(os.path.join(d, "row")).read().split() if os.path.exists(os.path.join(d, "row")) else []
    hist = [h for q in r["request_reports"] for h in q.get("cg", {}).get("history", [])]
    hosts = {p["host"] for p in r.get("placement", [])}
    res = r.get("resources", {})
    return {
        "name": os.path.basename(d),
        "model": os.path.basename(row[4] if len(row) > 4 else r["input_checkpoint"]),
        "tp": r["tp"], "dp": r["dp"], "world_size": r["world_size"],
        "nodes": len(hosts) if hosts else (int(row[3]) if len(row) > 3 else ""),
        "params_per_rank": r["estimate"]["params_local"],
        "cg_iterations": len(hist),
        "cg_iteration_s": cg_iteration_seconds(hist),
        "solve_s": sum(q["phases"].get("solve_s", 0.0) for q in r["request_reports"]),
        "total_s": r["phases"]["total_s"],
        # Reports written before the resources record existed leave these empty.
        "comm_fraction": res.get("comm_fraction", {}).get("mean", ""),
        "comm_seconds_max": res.get("comm_seconds", {}).get("max", ""),
        "peak_rss_bytes_max": res.get("peak_rss_bytes", {}).get("max", ""),
        "memory_per_rank_estimate_bytes": r["estimate"]["total_bytes"],
        "resumed_from_iteration": (r.get("resumed_from") or {}).get("iteration", ""),
    }


def read_csv(path):
    def value(v):
        for kind in (int, float):
            try:
                return kind(v)
            except ValueError:
                pass
        return v
    with open(path, newline="") as f:
        return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(f)]


def layout(r):
    """Marker and label of a row's layout: TP only, DP on one node, DP across nodes, TP x DP."""
    multi = r["nodes"] not in ("", 1)
    if r["world_size"] == 1:
        return "o", "1 rank"
    if r["dp"] == 1:
        return "^", "TP only"
    if r["tp"] == 1:
        return ("s", "DP across nodes") if multi else ("v", "DP in a node")
    return "D", "TP x DP" + (" across nodes" if multi else "")


def plot(rows, path):
    fig, ax = plt.subplots(1, 4, figsize=(20, 4.6))
    timed = [r for r in rows if r["cg_iteration_s"]]
    models = sorted({r["model"] for r in rows})
    color = {m: "C%d" % i for i, m in enumerate(models)}
    seen = set()
    for r in timed:
        marker, label = layout(r)
        ax[0].plot(r["world_size"], r["cg_iteration_s"], marker, color=color[r["model"]], ms=7,
                   label=None if (r["model"], label) in seen else "%s, %s" % (r["model"], label))
        seen.add((r["model"], label))
    for m in models:
        # The best layout at each rank count, and the ideal from the one-rank time.
        best = {}
        for r in timed:
            if r["model"] == m:
                best[r["world_size"]] = min(best.get(r["world_size"], float("inf")), r["cg_iteration_s"])
        pts = sorted(best.items())
        ax[0].plot(*zip(*pts), "-", color=color[m], alpha=0.5)
        if pts and pts[0][0] == 1:
            ax[0].plot([w for w, _ in pts], [pts[0][1] / w for w, _ in pts], ":", color="gray")
    ax[0].set(title="strong scaling (line: best layout; dotted: ideal)", xlabel="ranks (TP x DP)",
              ylabel="s per CG iteration")
    ax[0].set_xticks(sorted({r["world_size"] for r in rows}))
    # Weak-scaling view: time against the parameters each rank holds, whatever the layout.
    for r in timed:
        marker, _ = layout(r)
        ax[1].plot(r["params_per_rank"] / 1e6, r["cg_iteration_s"], marker, color=color[r["model"]], ms=7)
        ax[1].annotate("%dx%d" % (r["tp"], r["dp"]), (r["params_per_rank"] / 1e6, r["cg_iteration_s"]), fontsize=7,
                       xytext=(4, 2), textcoords="offset points")
    ax[1].set(title="time vs parameters per rank (labels TP x DP)", xlabel="parameters per rank (millions)",
              ylabel="s per CG iteration")
    names = [r["name"] for r in rows]
    y = range(len(rows))
    comm = [100 * r["comm_fraction"] if r["comm_fraction"] != "" else 0 for r in rows]
    ax[2].barh(y, comm, color=[color[r["model"]] for r in rows])
    ax[2].set(title="time inside collectives (mean over ranks)", xlabel="% of the requests' time")
    ax[2].set_yticks(list(y), names, fontsize=7)
    ax[2].invert_yaxis()
    rss = [r["peak_rss_bytes_max"] / 2**20 if r["peak_rss_bytes_max"] != "" else 0 for r in rows]
    est = [r["memory_per_rank_estimate_bytes"] / 2**20 for r in rows]
    ax[3].barh(y, rss, color=[color[r["model"]] for r in rows], label="measured peak RSS (largest rank)")
    ax[3].plot(est, list(y), "k|", ms=14, mew=2, label="dry-run estimate")
    ax[3].set(title="memory per rank", xlabel="MiB")
    ax[3].set_yticks(list(y), names, fontsize=7)
    ax[3].invert_yaxis()
    for a in ax:
        a.grid(alpha=0.3)
    ax[0].legend(fontsize=7)
    ax[3].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("sweep_dir")
    ap.add_argument("--out", help="output directory (default: SWEEP_DIR)")
    a = ap.parse_args()
    out = a.out or a.sweep_dir
    reports = sorted(glob.glob(os.path.join(a.sweep_dir, "*", "forget.h5.report.json")))
    if reports:
        rows = sorted((row_of(p) for p in reports), key=lambda r: (r["model"], r["world_size"], r["tp"]))
    elif os.path.exists(os.path.join(a.sweep_dir, "sweep.csv")):
        rows = read_csv(os.path.join(a.sweep_dir, "sweep.csv"))  # a kept sweep (docs/scaling): plot it again
    else:
        raise SystemExit("sweep-report: no */forget.h5.report.json or sweep.csv under " + a.sweep_dir)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "sweep.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    plot(rows, os.path.join(out, "scaling.png"))
    print("sweep-report: %d rows -> %s, %s" % (len(rows), os.path.join(out, "sweep.csv"),
                                               os.path.join(out, "scaling.png")))


if __name__ == "__main__":
    main()
