#!/usr/bin/python3
"""Markdown tables of tools/bench-newton.sh's raw outputs: newton_table.py DIR SIZE...  (see that script)."""
import json
import sys


def ours(path):
    for line in open(path):
        r = json.loads(line)
        if r.get("event") == "bench_newton":
            return r
    sys.exit("newton_table: no bench_newton record in " + path)


def main():
    d, sizes = sys.argv[1], sys.argv[2:]
    print(open(d + "/run.txt").read().strip().replace("\n", "; "))
    print()
    print("| model | params | CG its | ours 1 rank (s) | ours TP 2 (s) | naive peer (s) | optimised peer (s) | "
          "ours / naive (goal <= 0.4) | ours / optimised | goal vs optimised | ‖x‖ ours / optimised |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    curves, parts = [], []
    for s in sizes:
        o1, o2 = ours("%s/ours1_%s.jsonl" % (d, s)), ours("%s/ours2_%s.jsonl" % (d, s))
        p = json.load(open("%s/peers_%s.json" % (d, s)))["peers"]
        nv, op = p["naive"], p["optimised"]
        best = min(o1["step_s"], o2["step_s"])
        goal = 0.8 if s == "5m" else 1.0
        r_nv, r_op = best / nv["step_s"], best / op["step_s"]
        print("| %s | %.2fM | %d | %.2f | %.2f | %.2f | %.2f | %.2f %s | %.2f | <= %.1f %s | %.6g / %.6g |"
              % (s, o1["params"] / 1e6, o1["cg_iterations"], o1["step_s"], o2["step_s"], nv["step_s"], op["step_s"],
                 r_nv, "✓" if r_nv <= 0.4 else "✗", r_op, goal, "✓" if r_op <= goal else "✗", o1["update_norm"],
                 op["update_norm"]))
        for name, r in (("ours 1 rank", o1), ("ours TP 2", o2), ("naive", nv), ("optimised", op)):
            c = r["cumulative_s"]
            pick = [c[k - 1] for k in (1, 2, 5, 10, 20) if k <= len(c)]
            curves.append("| %s | %s | %s |" % (s, name, " | ".join("%.2f" % x for x in pick)))
        for name, r in (("ours 1 rank", o1), ("ours TP 2", o2)):
            k = max(1, r["cg_iterations"])
            parts.append("| %s | %s | %.3f | %.3f | %.4f | %.4f | %.4f | %.3f |"
                         % (s, name, r["gradient_s"], r["setup_s"], r["cg_s"] / k, r["products_s"] / k,
                            (r["cg_s"] - r["products_s"]) / k, r["comm_s"]))
        for name, r in (("naive", nv), ("optimised", op)):
            parts.append("| %s | %s | %.3f | %.3f | %.4f | | | |" % (s, name, r["gradient_s"], r["setup_s"],
                                                                    r["per_iteration_s"]))
    print("\nStep time (s) after 1, 2, 5, 10 CG iterations (forget gradient and graph setup included):\n")
    print("| model | implementation | 1 | 2 | 5 | 10 |\n|---|---|---:|---:|---:|---:|")
    print("\n".join(curves))
    print("\nBreakdown (s): per CG iteration, products (with their TP all-reduces), the rest of CG (vector operations, "
          "float64 dots and their all-reduces); communication is every collective of the step, overlapping both:\n")
    print("| model | implementation | forget gradient | graph setup | per iteration | products | rest of CG | "
          "communication (step) |\n|---|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(parts))


if __name__ == "__main__":
    main()
