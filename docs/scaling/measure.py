#!/usr/bin/python3
"""Measures what tools/cost-model.py validates against: time per CG iteration of real `unlearn forget` runs on small
GPT-2-shaped models under several TP x DP layouts, the all-reduce rate of `unlearn bench comm`, and the padded token
counts each DP rank processes (recomputed here from the dataset exactly as cmd_forget batches it).

    /usr/bin/python3 docs/scaling/measure.py --bin /tmp/cm/unlearn --work /tmp/cm/scaling [--only S-ggn-1x1,...]

Writes docs/scaling/validation.csv and docs/scaling/comm.csv (override with --out-dir). One mpiexec at a time, one
thread per rank; each run is short (< 2 min here). The load average is recorded with every row: this machine is
shared, and the rows are only as good as the quiet they were taken in.
"""
import argparse
import csv
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# Model sizes: GPT-2-shaped, byte vocabulary (256), context 64. XS is in the overhead-dominated regime on purpose.
MODELS = {
    "XS": dict(d_model=64, n_layers=2, n_heads=4, d_ff=256),
    "S": dict(d_model=128, n_layers=4, n_heads=4, d_ff=512),
    "M": dict(d_model=256, n_layers=4, n_heads=8, d_ff=1024),
}
SEQ = 64
VOCAB = 256
ROWS_PER_BATCH = 8  # cmd_forget's default --rows-per-batch
FORGET_ID = 1
# (model, curvature, tp, dp, CG iterations)
RUNS = [
    ("S", "ggn", 1, 1, 6), ("S", "ggn", 2, 1, 6), ("S", "ggn", 1, 2, 6), ("S", "ggn", 2, 2, 6),
    ("M", "ggn", 1, 1, 5), ("M", "ggn", 2, 1, 5), ("M", "ggn", 1, 2, 5), ("M", "ggn", 2, 2, 5),
    ("S", "hessian", 1, 1, 5), ("S", "hessian", 2, 1, 5), ("S", "hessian", 1, 2, 5),
    ("XS", "ggn", 1, 1, 6), ("XS", "ggn", 2, 1, 6), ("XS", "ggn", 1, 2, 6),
]

ENV = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def load():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def wait_quiet(limit, max_wait):
    t0 = time.time()
    while load() >= limit and time.time() - t0 < max_wait:
        time.sleep(5)


def mpi(n):
    return ["mpiexec", "-n", str(n), "--oversubscribe", "--bind-to", "none"]


def run(cmd, log):
    with open(log, "w") as f:
        p = subprocess.run(cmd, env=ENV, stdout=f, stderr=subprocess.STDOUT, timeout=300)
    if p.returncode != 0:
        sys.exit("failed (%d): %s\n%s" % (p.returncode, " ".join(cmd), open(log).read()[-3000:]))
    return open(log).read()


def windows(n_tokens, w):
    """Inputs per window of a document of n tokens (batching.cpp: document_windows)."""
    out, start = [], 0
    while start + 1 < n_tokens:
        end = min(n_tokens, start + w + 1)
        out.append(end - start - 1)
        start += w
    return out


def dp_workloads(dataset, dp, window):
    """Per DP rank: padded tokens, sum of B*T^2 (attention), target tokens, micro-batches of the retain sample, as
    cmd_forget builds them when --retain-sample covers every training document (so the sample is the sorted pool)."""
    with h5py.File(dataset) as f:
        off, splits, ids = f["doc_offsets"][:], f["doc_splits"][:], f["doc_ids"][:]
    lengths = np.diff(off)
    pool = [d for d in range(len(lengths)) if splits[d] == 0 and ids[d] != FORGET_ID and windows(lengths[d], window)]
    forget = [d for d in range(len(lengths)) if ids[d] == FORGET_ID]
    out = []
    for r in range(dp):
        rows = [w for i, d in enumerate(pool) if i % dp == r for w in windows(lengths[d], window)]
        tok = att = tgt = mb = 0
        for b in range(0, len(rows), ROWS_PER_BATCH):
            chunk = rows[b:b + ROWS_PER_BATCH]
            T = max(chunk)
            tok, att, tgt, mb = tok + len(chunk) * T, att + len(chunk) * T * T, tgt + sum(chunk), mb + 1
        out.append((tok, att, tgt, mb))
    ftok = sum(sum(windows(lengths[d], window)) for d in forget)
    return out, len(pool), ftok


def bench_comm(binary, work):
    out = os.path.join(work, "comm.md")
    l0 = load()
    run(mpi(2) + [binary, "bench", "comm", "--threads", "1", "--min-bytes", "4K", "--max-bytes", "64M", "--reps", "20",
                  "--warmup", "3", "--output", out], os.path.join(work, "comm.log"))
    rows = []
    for line in open(out):
        m = re.match(r"\|\s*(\d+) (KiB|MiB)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|", line)
        if m:
            size = int(m.group(1)) * (1024 if m.group(2) == "KiB" else 1024 * 1024)
            rows.append(dict(bytes=size, ranks=2, median_us=float(m.group(3)), iqr_us=float(m.group(4)),
                             load1_before=l0, load1_after=load()))
    return rows


def memory_bandwidth():
    """Bytes moved per second by one thread in c = a + b over 64 MiB arrays (2 reads + 1 write per element)."""
    a, b = np.ones(1 << 24, np.float32), np.ones(1 << 24, np.float32)
    c = np.empty_like(a)
    t = []
    for _ in range(7):
        t0 = time.perf_counter()
        np.add(a, b, out=c)
        t.append(time.perf_counter() - t0)
    return 3 * a.nbytes / statistics.median(t)


# The per-operation microbenchmark (not a validation row): d 16 models whose FLOPs and bytes are small, at several
# layer counts, one rank; tools/cost-model.py fits the time the FLOP and byte terms leave over as t_op x kernels.
OVERHEAD_LAYERS = (1, 2, 4, 8)


def block_linear_shapes(d, tp):
    """[out, in] of one rank's linear layers in a GPT-2 block with d_ff = 4d at TP = tp (transformer.cpp: q, k, v and
    up split by rows, o and down by columns)."""
    return [(d // tp, d)] * 3 + [(d, d // tp), (4 * d // tp, d), (d, 4 * d // tp)]


def torch_rates():
    """One thread of the same ATen the binary links (Debian's libtorch 1.13) at a micro-batch's shapes (8 x 64 tokens):
    linear layers as the block has them at TP 1 and 2 (block_linear_shapes), each in the three products a layer does
    (forward x Wᵀ + b, input gradient g W, weight gradient gᵀ x; their double backward repeats the same shapes), the
    rate being their FLOPs over their summed time; attention [8, h, 64, hd] x [8, h, hd, 64] and back; elementwise
    torch.add of two float32 vectors out of place (an autograd op allocates its output), the slope between 128 Ki and
    512 Ki elements (the model's tensor sizes; the slope drops the per-call cost)."""
    import torch
    torch.set_num_threads(1)

    def med(f, reps):
        f()
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            f()
            t.append(time.perf_counter() - t0)
        return statistics.median(t)
    out = {}
    for d in (16, 64, 128, 256):
        for tp in (1, 2):
            flops, secs = 0.0, 0.0
            for out_f, in_f in block_linear_shapes(d, tp):
                x, w, b, g = torch.randn(512, in_f), torch.randn(out_f, in_f), torch.randn(out_f), torch.randn(512, out_f)
                flops += 3 * 2 * 512 * out_f * in_f
                secs += (med(lambda: torch.nn.functional.linear(x, w, b), 200) + med(lambda: g.mm(w), 200)
                         + med(lambda: g.t().mm(x), 200))
            out[("linear_gflops_d%d" if tp == 1 else "linear_tp2_gflops_d%d") % d] = flops / secs / 1e9
    for hd, h in ((8, 2), (16, 4), (32, 4)):
        q, k, pr = torch.randn(8, h, 64, hd), torch.randn(8, h, hd, 64), torch.randn(8, h, 64, 64)
        t = med(lambda: torch.matmul(q, k), 200) + med(lambda: torch.matmul(pr, q), 200)
        out["attn_gflops_hd%d" % hd] = 2 * 2 * 8 * h * 64 * 64 * hd / t / 1e9
    small, big = [(torch.randn(n), torch.randn(n)) for n in (1 << 17, 1 << 19)]
    ts, tb = med(lambda: torch.add(*small), 300), med(lambda: torch.add(*big), 300)
    out["ew_bytes_per_s"] = 12 * ((1 << 19) - (1 << 17)) / (tb - ts)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/src/app/unlearn"))
    ap.add_argument("--work", default="/tmp/unlearn-scaling")
    ap.add_argument("--out-dir", default=HERE)
    ap.add_argument("--only", default="", help="comma-separated run names (e.g. S-ggn-2x1) or 'comm'")
    ap.add_argument("--wait-load", type=float, default=1.5, help="wait (at most --max-wait s) while load1 >= this")
    ap.add_argument("--max-wait", type=float, default=60)
    ap.add_argument("--from-log", default="", help="run nothing: rebuild rows from --work's reports and logs, with the "
                                                   "load and wall time printed in this earlier output of the script")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    only = set(filter(None, a.only.split(",")))
    corpus = os.path.join(a.work, "fortunes")
    os.makedirs(corpus, exist_ok=True)
    for f in ("literature", "literature.dat"):
        subprocess.run(["cp", "/usr/share/games/fortunes/" + f, corpus], check=True)
    ds = os.path.join(a.work, "ds40.h5")
    if not os.path.exists(ds):
        run([a.bin, "prepare-data", "--corpus", "fortunes", "--corpus-dir", corpus, "--seed", "7",
             "--max-documents", "40", "--output", ds], os.path.join(a.work, "prep.log"))
    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()

    mpath = os.path.join(a.out_dir, "machine.csv")
    machine = {r["key"]: r for r in csv.DictReader(open(mpath))} if os.path.exists(mpath) else {}

    def put(key, value, note):
        machine[key] = dict(key=key, value="%.4g" % value, note=note)
        with open(mpath, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["key", "value", "note"])
            w.writeheader()
            w.writerows(machine.values())

    if (not only or "machine" in only) and not a.from_log:
        wait_quiet(a.wait_load, a.max_wait)
        l0 = load()
        bw = memory_bandwidth()
        put("mem_bw_bytes_per_s_1thread", bw, "numpy c = a + b on 64 MiB float32 arrays (load %.2f)" % l0)
        put("cores", os.cpu_count(), "os.cpu_count()")
        print("memory bandwidth %.2f GB/s" % (bw / 1e9), flush=True)

    if (not only or "rates" in only) and not a.from_log:
        wait_quiet(a.wait_load, a.max_wait)
        l0 = load()
        for k, v in torch_rates().items():
            put(k, v, "docs/scaling/measure.py torch_rates(): python3-torch %s, 1 thread (load %.2f)"
                % ("ATen" if "ew" not in k else "torch.add slope 128Ki-512Ki float32", l0))
            print("%s %.4g" % (k, v), flush=True)

    if (not only or "overhead" in only) and not a.from_log:
        rows = []
        for L in OVERHEAD_LAYERS:
            for curv in ("ggn", "hessian"):
                name = "T16L%d-%s" % (L, curv)
                ckpt = os.path.join(a.work, "T16L%d.h5" % L)
                if not os.path.exists(ckpt):
                    run([a.bin, "init", "--d-model", "16", "--n-layers", str(L), "--n-heads", "2", "--d-ff", "64",
                         "--max-positions", str(SEQ), "--dtype", "float32", "--output", ckpt],
                        os.path.join(a.work, name + ".init.log"))
                outp = os.path.join(a.work, name + ".h5")
                for suffix in ("", ".report.json"):
                    if os.path.exists(outp + suffix):
                        os.remove(outp + suffix)
                l0 = load()
                run(mpi(1) + [a.bin, "forget", "--threads", "1", "--checkpoint", ckpt, "--dataset", ds, "--forget-ids",
                              str(FORGET_ID), "--retain-sample", "1000", "--method", "newton-cg", "--curvature", curv,
                              "--damping", "100" if curv == "hessian" else "0.1", "--cg-max-iters", "6", "--cg-rtol",
                              "1e-12", "--memory-limit", "0", "--output", outp], os.path.join(a.work, name + ".log"))
                secs = [h["seconds"] for h in json.load(open(outp + ".report.json"))["request_reports"][0]["cg"]["history"]]
                diffs = [b - c for b, c in zip(secs[1:], secs[:-1])]
                if len(diffs) < 3:
                    print("%s: CG stopped early: skipped" % name, flush=True)
                    continue
                work, pool, ftok = dp_workloads(ds, 1, SEQ)
                rows.append(dict(name=name, family="gpt2", d_model=16, n_layers=L, n_heads=2, n_kv_heads=2, d_ff=64,
                                 vocab=VOCAB, seq=SEQ, dtype="float32", curvature=curv, graph_mode="reuse", tp=1, dp=1,
                                 tokens_per_dp=work[0][0], attn_per_dp=work[0][1], targets_per_dp=work[0][2],
                                 microbatches_per_dp=work[0][3], cg_iterations=len(secs),
                                 measured_s=round(statistics.median(diffs), 5), load1_before=l0, load1_after=load()))
                print("%-16s %8.4f s/iter  load %.2f" % (name, rows[-1]["measured_s"], l0), flush=True)
        if not rows:
            sys.exit("overhead: no usable run")
        with open(os.path.join(a.out_dir, "overhead.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        import importlib.util
        spec = importlib.util.spec_from_file_location("cost_model", os.path.join(ROOT, "tools", "cost-model.py"))
        cm = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cm)
        machine_now = {k: float(v["value"]) for k, v in machine.items()}
        fit = cm.fit_t_op(rows, machine_now)
        put("t_op_s", fit["t_op_s"], "per data-moving ATen op (docs/scaling/ops.json counts): slope of the time the "
            "FLOP and byte terms leave over against counted ops, unlearn forget on d 16 models at L %s, GGN and H·v, "
            "1 rank (docs/scaling/overhead.csv; intercept %.3f s)" % (",".join(map(str, OVERHEAD_LAYERS)),
                                                                     fit["intercept_s"]))
        print("t_op %.3g s (intercept %.3g s)" % (fit["t_op_s"], fit["intercept_s"]), flush=True)

    if (not only or "bench" in only) and not a.from_log:
        # The matmul rate of the models' own shapes ([B*T, d] x [d, 4d], one thread) from `unlearn bench model`:
        # the estimate's 256³ product runs hot in cache and overstates it.
        wait_quiet(a.wait_load, a.max_wait)
        l0 = load()
        metrics = os.path.join(a.work, "bench-model.jsonl")
        if os.path.exists(metrics):
            os.remove(metrics)
        run(mpi(1) + [a.bin, "bench", "model", "--threads", "1", "--sizes", "tiny,5m", "--reps", "2", "--metrics",
                      metrics], os.path.join(a.work, "bench-model.log"))
        dims = {"tiny": (64, "[256, 64] x [64, 256]"), "5m": (256, "[1024, 256] x [256, 1024]")}
        for line in open(metrics):
            e = json.loads(line)
            if e.get("event") == "bench_model":
                d, shape = dims[e["model"]]
                put("matmul_gflops_d%d" % d, e["matmul_gflops"], "unlearn bench model %s: %s float32, 1 thread (load %.2f)"
                    % (e["model"], shape, l0))
                print("matmul d %d: %.1f GFLOP/s" % (d, e["matmul_gflops"]), flush=True)

    if (not only or "comm" in only) and not a.from_log:
        wait_quiet(a.wait_load, a.max_wait)
        rows = bench_comm(a.bin, a.work)
        with open(os.path.join(a.out_dir, "comm.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        print("comm: %d sizes" % len(rows), flush=True)

    path = os.path.join(a.out_dir, "validation.csv")
    old = {}
    if os.path.exists(path):  # keep rows not rerun
        for r in csv.DictReader(open(path)):
            old[r["name"]] = r
    fields = None
    for model, curv, tp, dp, iters in RUNS:
        name = "%s-%s-%dx%d" % (model, curv, tp, dp)
        if only and name not in only:
            continue
        m = MODELS[model]
        ckpt = os.path.join(a.work, model + ".h5")
        if not os.path.exists(ckpt):
            run([a.bin, "init", "--d-model", str(m["d_model"]), "--n-layers", str(m["n_layers"]), "--n-heads",
                 str(m["n_heads"]), "--d-ff", str(m["d_ff"]), "--max-positions", str(SEQ), "--dtype", "float32",
                 "--output", ckpt], os.path.join(a.work, model + ".init.log"))
        outp = os.path.join(a.work, name + ".h5")
        if a.from_log:  # rebuild the row from this run's files; load and wall time from the measure log's line
            mm = re.search(r"^%s\s.*load ([\d.]+) -> ([\d.]+)\s+wall (\d+) s" % re.escape(name),
                           open(a.from_log).read(), re.M)
            if not mm or not os.path.exists(outp + ".report.json"):
                continue
            l0, l1, wall = float(mm.group(1)), float(mm.group(2)), float(mm.group(3))
            log = open(os.path.join(a.work, name + ".log")).read()
        else:
            for suffix in ("", ".report.json"):
                if os.path.exists(outp + suffix):
                    os.remove(outp + suffix)
            wait_quiet(a.wait_load, a.max_wait)
            l0 = load()
            t0 = time.time()
            log = run(mpi(tp * dp) + ["/usr/bin/time", "-f", "maxrss_kb %M cpu_s %U %S wall_s %e", a.bin, "forget", "--tp", str(tp),
                                  "--threads", "1", "--checkpoint", ckpt, "--dataset", ds, "--forget-ids",
                                  str(FORGET_ID), "--retain-sample", "1000", "--method", "newton-cg", "--curvature",
                                  curv, "--damping", "100" if curv == "hessian" else "0.1", "--cg-max-iters",
                                  str(iters), "--cg-rtol", "1e-12", "--memory-limit", "0", "--output", outp],
                      os.path.join(a.work, name + ".log"))
            wall = time.time() - t0
            l1 = load()
        rep = json.load(open(outp + ".report.json"))
        cg = rep["request_reports"][0]["cg"]
        secs = [h["seconds"] for h in cg["history"]]
        # Iteration 1 also pays the solve's start and (GGN) the one-off Jᵀu graph: per-iteration = later differences.
        diffs = [b - c for b, c in zip(secs[1:], secs[:-1])]
        if len(diffs) < 3:  # e.g. negative curvature of a random-init Hessian: no row
            print("%s: CG stopped after %d iterations (%s): skipped" % (name, len(secs), cg["status"]), flush=True)
            continue
        work, pool, ftok = dp_workloads(ds, dp, SEQ)
        rss = [int(x) for x in re.findall(r"maxrss_kb (\d+)", log)]
        # The share of a core each rank got over its whole run ((user + sys) / wall): on a shared machine the
        # compute actually available to the run (MPI's polling while a rank waits counts as CPU too).
        share = [(float(u) + float(s_)) / float(e) for u, s_, e in
                 re.findall(r"cpu_s ([\d.]+) ([\d.]+) wall_s ([\d.]+)", log)]
        est = rep["estimate"]
        res = rep.get("resources") or {}
        spread = lambda k, f: res.get(k, {}).get(f, "")
        row = dict(name=name, family="gpt2", d_model=m["d_model"], n_layers=m["n_layers"], n_heads=m["n_heads"],
                   n_kv_heads=m["n_heads"], d_ff=m["d_ff"], vocab=VOCAB, seq=SEQ, dtype="float32", curvature=curv,
                   graph_mode="reuse", tp=tp, dp=dp, threads_per_rank=1, rows_per_batch=ROWS_PER_BATCH,
                   retain_docs=pool, forget_tokens=ftok,
                   tokens_per_dp=";".join(str(w[0]) for w in work), attn_per_dp=";".join(str(w[1]) for w in work),
                   targets_per_dp=";".join(str(w[2]) for w in work), microbatches_per_dp=";".join(str(w[3]) for w in work),
                   cg_iterations=len(secs), measured_s=round(statistics.median(diffs), 5),
                   measured_min_s=round(min(diffs), 5), measured_max_s=round(max(diffs), 5),
                   estimate_matmul_gflops=round(est["matmul_gflops"], 2), estimate_product_s=round(est["product_s"], 5),
                   estimate_graph_bytes=est["graph_bytes"], estimate_total_bytes=est["total_bytes"],
                   maxrss_kb_per_rank=";".join(map(str, rss)),
                   cpu_share_per_rank=";".join("%.3f" % x for x in share),
                   comm_fraction_mean=spread("comm_fraction", "mean"), comm_fraction_max=spread("comm_fraction", "max"),
                   comm_seconds_max=spread("comm_seconds", "max"), peak_rss_bytes_max=spread("peak_rss_bytes", "max"), load1_before=l0, load1_after=l1, wall_s=round(wall, 1),
                   utc=datetime.datetime.utcfromtimestamp(os.path.getmtime(outp + ".report.json")).strftime("%Y-%m-%d %H:%M"), git=git)
        old[name] = row
        fields = list(row)
        print("%-16s %8.4f s/iter (min %.4f max %.4f)  matmul %.1f GFLOP/s  load %.2f -> %.2f  wall %.0f s"
              % (name, row["measured_s"], row["measured_min_s"], row["measured_max_s"], row["estimate_matmul_gflops"],
                 l0, l1, wall), flush=True)
        order = ["%s-%s-%dx%d" % (mo, c, t, d) for mo, c, t, d, _ in RUNS]
        with open(path, "w", newline="") as f:  # after every row: an interrupted sweep keeps what it measured
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for n in order:
                if n in old:
                    w.writerow({k: old[n].get(k, "") for k in fields})


if __name__ == "__main__":
    main()
