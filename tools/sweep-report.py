#!/usr/bin/python3
# Collects the forget reports of a sweep (slurm/submit-sweep.sh: SWEEP_DIR/<name>/forget.h5.report.json and the
# row) into SWEEP_DIR/sweep.csv and SWEEP_DIR/scaling.png: strong scaling (time per CG iteration against ranks, per
# model, with the ideal line), weak scaling (the same per parameters held per rank), the communication fraction of
# the solve (mean over ranks of the time inside collectives), and memory per rank (measured peak resident set of the
# largest rank, with the dry-run estimate dashed). Usage: /usr/bin/python3 tools/sweep-report.py SWEEP_DIR [--out DIR]  (Debian's python3: matplotlib).
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


def plot(rows, path):
    fig, ax = plt.subplots(1, 4, figsize=(19, 4.2))
    timed = [r for r in rows if r["cg_iteration_s"]]
    for model in sorted({r["model"] for r in timed}):
        pts = sorted((r["world_size"], r["cg_iteration_s"]) for r in timed if r["model"] == model)
        ax[0].plot(*zip(*pts), "o-", label=model)
        w0, t0 = pts[0]
        ax[0].plot([w for w, _ in pts], [t0 * w0 / w for w, _ in pts], ":", color="gray")
    ax[0].set(title="strong scaling (dotted: ideal)", xlabel="ranks (TP x DP)", ylabel="s per CG iteration")
    # Weak scaling in TP: at one DP, rows holding about the same parameters per rank (within 10 %; a bigger model on
    # more TP ranks) form one series. DP replicates the parameters, so DP rows never join another DP's series.
    series = []
    for r in sorted(timed, key=lambda r: (r["dp"], r["params_per_rank"])):
        last = series[-1][0] if series else None
        if last and last["dp"] == r["dp"] and r["params_per_rank"] <= 1.1 * last["params_per_rank"]:
            series[-1].append(r)
        else:
            series.append([r])
    for s in series:
        pts = sorted((r["world_size"], r["cg_iteration_s"]) for r in s)
        ax[1].plot(*zip(*pts), "o-", label="%d params/rank, DP %d" % (s[0]["params_per_rank"], s[0]["dp"]))
    ax[1].set(title="weak scaling in TP", xlabel="ranks (TP x DP)", ylabel="s per CG iteration")
    measured = [r for r in rows if r["comm_fraction"] != ""]
    for model in sorted({r["model"] for r in measured}):
        pts = sorted((r["world_size"], 100 * r["comm_fraction"]) for r in measured if r["model"] == model)
        ax[2].plot(*zip(*pts), "o-", label=model)
    ax[2].set(title="time inside collectives (mean over ranks)", xlabel="ranks (TP x DP)", ylabel="% of the solve")
    for i, model in enumerate(sorted({r["model"] for r in rows})):
        color = "C%d" % i
        pts = sorted((r["world_size"], r["memory_per_rank_estimate_bytes"] / 2**20)
                     for r in rows if r["model"] == model)
        ax[3].plot(*zip(*pts), "--", color=color, alpha=0.6)
        pts = sorted((r["world_size"], r["peak_rss_bytes_max"] / 2**20) for r in measured if r["model"] == model)
        if pts:
            ax[3].plot(*zip(*pts), "o-", color=color, label=model)
    ax[3].set(title="memory per rank (peak RSS; dashed: estimate)", xlabel="ranks (TP x DP)", ylabel="MiB")
    for a in ax:
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("sweep_dir")
    ap.add_argument("--out", help="output directory (default: SWEEP_DIR)")
    a = ap.parse_args()
    out = a.out or a.sweep_dir
    reports = sorted(glob.glob(os.path.join(a.sweep_dir, "*", "forget.h5.report.json")))
    if not reports:
        raise SystemExit("sweep-report: no */forget.h5.report.json under " + a.sweep_dir)
    rows = sorted((row_of(p) for p in reports), key=lambda r: (r["model"], r["world_size"], r["tp"]))
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
