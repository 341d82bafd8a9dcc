#!/usr/bin/python3
"""tools/cost-model.py: its arithmetic on hand-computed cases (parameter counts of published models, the forward's
FLOPs against bench_model.cpp's formula, memory against the C++ estimate's own number) and that `validate` and
`project` run on the committed measurements and produce the expected structure. No timing is asserted."""
import importlib.util
import json
import subprocess
import sys

tool = sys.argv[1]
spec = importlib.util.spec_from_file_location("cost_model", tool)
cm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cm)
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


# Parameter counts: Hugging Face's published totals.
check(cm.Model("", "gpt2", 768, 12, 12, 3072, 50257, 1024).params_global() == 124439808, "GPT-2 small 124,439,808")
check(cm.PRESETS["llama-7b"].params_global() == 6738415616, "LLaMA-2-7B 6,738,415,616")
check(cm.PRESETS["llama-70b"].params_global() == 68976648192, "LLaMA-2-70B 68,976,648,192")
# TP = 2 of a 256-vocabulary GPT-2: every sharded matrix halves, norms, wpe and row-parallel biases stay.
xs = cm.Model("XS", "gpt2", 64, 2, 4, 256, 256, 64)
check(xs.params_global() == 120576, "XS 120,576 parameters (unlearn init printed it)")
check(xs.params_local(2) == 128 * 64 + 64 * 64 + 2 * (2 * 64 + 3 * (32 * 64 + 32) + (64 * 32 + 64) + 2 * 64
                                                  + (128 * 64 + 128) + (64 * 128 + 64)) + 2 * 64, "XS TP = 2 shard")
check(not cm.PRESETS["gpt2-xl"].valid_tp(2) and cm.PRESETS["llama-70b"].valid_tp(8), "TP rules of config.cpp")

# Forward FLOPs at TP = 1 equal bench_model.cpp's forward_flops: tokens (L (2 4d² + 2 2 d ff) + 2 d V) + L 4 B T² d.
B, T, d, L, ff, V = 8, 128, 256, 6, 1024, 256
m5 = cm.Model("5m", "gpt2", d, L, 8, ff, V, T)
bench = B * T * (L * (2 * 4 * d * d + 2 * 2 * d * ff) + 2 * d * V) + L * 4 * B * T * T * d
check(abs(m5.flops_forward(1, B * T, B * T * T, B * T) - bench) < 1e-6 * bench, "forward FLOPs = bench_model's")
check(abs(m5.flops_forward(2, B * T, B * T * T, B * T) - bench / 2) < 1e-6 * bench, "forward FLOPs split by TP = 2")

# forget_estimate.cpp's memory, term for term: XS, TP 1, DP 1, newton-cg on G, 4,920 sample tokens, 8 rows per
# micro-batch: runtime 268,435,456 + weights 482,304 + 11 vectors 5,305,344 + graphs int(3.3 x 5,376 values x 4,920
# x 4 B) + one micro-batch int(1.3 x 5,376 x 8 x 64 x 4 B).
per_tok = 2 * 2 * (4 * 64 + 10 * 64 + 4 * 64) + 3 * 256
check(per_tok == 5376, "XS per-token values")
hand_est = 268435456 + 482304 + 5305344 + int(3.3 * 5376.0 * 4920 * 4) + int(1.3 * 5376.0 * 8 * 64 * 4)
check(cm.forget_estimate_memory(xs, 1, 1, 4920) == hand_est, "forget_estimate memory = the C++ formula")
# With the solver in DP chunks (design 3.4), DP 2: 4 whole vectors and 9 chunks of ceil(120,576 / 2); fisher-removal
# with 16 rows: 4 whole + 7 chunks, the rows in chunks, the 16 x 16 Gram in float64, no graphs.
P = 120576
hand_dp = 268435456 + P * 4 + (4 * P + 9 * 60288) * 4 + int(3.3 * 5376.0 * 2460 * 4) + int(1.3 * 5376.0 * 8 * 64 * 4)
check(cm.forget_estimate_memory(xs, 1, 2, 4920, dp_chunks=2) == hand_dp, "forget_estimate memory, DP chunks")
hand_fr = 268435456 + P * 4 + (4 * P + 7 * 60288) * 4 + 16 * 60288 * 4 + 16 * 16 * 8 + int(1.3 * 5376.0 * 8 * 64 * 4)
check(cm.forget_estimate_memory(xs, 1, 2, 4920, method="fisher-removal", fisher_rows=16, dp_chunks=2) == hand_fr,
      "forget_estimate memory, fisher-removal in DP chunks")

# The cost model's own memory on a hand case: XS, TP 1, DP 2, H·v, reuse, unsharded float32, per DP rank 2
# micro-batches of 8 x 64 tokens and one forget row of 64 (no memory: a plain backward).
w = cm.Workload(1024, 1024 * 64, 1024, 2, 512, 512 * 64, 512, 64, 64 * 64)
mem = cm.memory(xs, 1, 2, w, curvature="hessian")
P = 120576
saved = lambda tok: 2 * 2 * tok * (4 * 64 + 10 * 64 + 4 * 64) + 3 * tok * 256  # tokens x (per-token values)
hand = (P * 4 + 11 * P * 4 + P * 4 + P * 4      # weights, vectors, micro-batch temporary, DP sum buffer
        + saved(1024) * 4                        # retain graphs (the forget set keeps none)
        + 2 * P * 4)                             # create_graph gradients: 2 retain micro-batches
check(abs(mem["total_bytes"] - hand) < 1, "memory of a hand case (%d bytes)" % hand)
# Design 3.4 divides the vectors by DP and adds the gathered input and the accumulator.
mem_s = cm.memory(xs, 1, 2, w, curvature="hessian", sharded=True)
check(abs(mem_s["vectors_bytes"] - 11 * P * 4 / 2) < 1 and abs(mem_s["workspace_bytes"] - 3 * P * 4) < 1,
      "sharded vectors and workspace")

# Time of a hand case on a made-up machine: only matmuls (no bandwidth or link cost): H·v = 6 F, G·v = 4 F.
mach = cm.Machine("hand", 1e10, float("inf"), cm.Link(0, float("inf")), cm.Link(0, float("inf")), 8, 0)
w1 = cm.Workload(B * T, B * T * T, B * T, 1, B * T, B * T * T, B * T)
t = cm.cg_iteration(m5, 1, 1, w1, mach, curvature="hessian")
check(abs(t["total_s"] - 6 * bench / 1e10) < 1e-9, "H·v iteration = 6 F / rate")
t = cm.cg_iteration(m5, 1, 1, w1, mach, curvature="ggn")
check(abs(t["total_s"] - 4 * bench / 1e10) < 1e-9, "G·v iteration = 4 F / rate")
# The per-operation term alone (infinite rates, t_op 1 µs): one micro-batch of the 6-layer GPT-2, counted kernels per
# layer and micro-batch (docs/scaling/ops.json) plus CG's 24 per parameter tensor (6 x 16 + 4 tensors).
mach_op = cm.Machine("ops", float("inf"), float("inf"), cm.Link(0, float("inf")), cm.Link(0, float("inf")), 8, 0,
                     t_op=1e-6)
t = cm.cg_iteration(m5, 1, 1, w1, mach_op, curvature="ggn")
check(abs(t["total_s"] - (6 * 404 + 140 + 100 * 24) * 1e-6) < 1e-12, "ops term, G·v: (6 x 404 + 140 + 2400) µs")
t = cm.cg_iteration(m5, 1, 1, cm.Workload(2 * B * T, 2 * B * T * T, 2 * B * T, 2, B * T, B * T * T, B * T),
                    mach_op, curvature="hessian")
check(abs(t["total_s"] - (2 * (6 * 441 + 163) + 100 * 24) * 1e-6) < 1e-12, "ops term, H·v, 2 micro-batches")
# Elementwise bytes by the counted coefficients: G·v, TP 1, float32: L (a N d + b h A) + c n V.
t = cm.cg_iteration(m5, 1, 1, w1, cm.Machine("bw", float("inf"), 1e9, cm.Link(0, float("inf")),
                                             cm.Link(0, float("inf")), 8, 0), curvature="ggn")
o = cm.OPS["ggn"]
hand_b = 6 * (o["a"] * B * T * d + o["b"] * 8 * B * T * T) + o["c"] * B * T * V
check(abs(t["elementwise_bytes"] - hand_b) < 1e-6 * hand_b, "elementwise bytes of the counted coefficients")
# fit_t_op recovers a known t_op from synthetic microbenchmark rows made by the model itself (no timing).
mc = {"linear_gflops_d16": 5.0, "attn_gflops_hd8": 2.0, "ew_bytes_per_s": 5e9, "mem_bw_bytes_per_s_1thread": 1e10}
synth = []
for L in (1, 2, 4, 8):
    r = dict(name="T16L%d" % L, family="gpt2", d_model=16, n_layers=L, n_heads=2, n_kv_heads=2, d_ff=64, vocab=256,
             seq=64, dtype="float32", curvature="ggn", graph_mode="reuse", tp=1, dp=1, tokens_per_dp="5952",
             attn_per_dp="380928", targets_per_dp="4788", microbatches_per_dp="12")
    link0 = cm.Link(0, float("inf"))
    r["measured_s"] = cm.predict_row(r, cm.local_machine(mc, link0, cm.row_model(r), t_op=7e-6))["total_s"] + 0.01
    synth.append(r)
fit = cm.fit_t_op(synth, mc)
check(abs(fit["t_op_s"] - 7e-6) < 1e-12 and abs(fit["intercept_s"] - 0.01) < 1e-9, "fit_t_op recovers t_op, intercept")
# All-reduce by nccl-tests' bus bandwidth: t = alpha + bytes 2 (n-1) / n / busbw.
check(abs(cm.Link(1e-5, 1e9).all_reduce(1e6, 4) - (1e-5 + 1e6 * 1.5 / 1e9)) < 1e-15, "alpha-beta all-reduce")


def run(*args):
    p = subprocess.run([sys.executable, tool] + list(args), capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "cost-model.py %s exits 0 (%s)" % (" ".join(args), p.stderr.strip()[-300:]))
    return p.stdout


# validate: every committed measurement gets a prediction and a recorded ratio.
rows = json.loads(run("--json", "validate"))
check(len(rows) >= 6, "validate: %d measured rows" % len(rows))
for r in rows:
    ok = r["measured_s"] > 0 and r["predicted_s"] > 0 and abs(r["ratio"] - r["predicted_s"] / r["measured_s"]) < 1e-9
    check(ok and isinstance(r["within_25pct"], bool), "validate row %s: ratio %.2f recorded" % (r["name"], r["ratio"]))
layouts = {(r["tp"], r["dp"]) for r in rows}
check({(1, 1), (2, 1), (1, 2)} <= layouts, "validate covers 1x1, 2x1 and 1x2")
md = run("validate")
check("predicted / measured" in md and "within 25%" in md, "validate markdown has the ratio column")

# project: 3 models x 7 GPU counts, each a layout of that many GPUs within 80 GB, or a stated miss.
proj = json.loads(run("--json", "project"))
table = proj["table"]
check(len(table) == 21, "project: 21 rows")
for r in table:
    if r["fits"]:
        ok = r["tp"] * r["dp"] == r["gpus"] and r["tp"] <= 8 and r["total_bytes"] <= 80e9 and r["total_s"] > 0
        check(ok and abs(r["total_s"] - r["compute_s"] - r["comm_s"]) < 1e-9 * r["total_s"],
              "project %s on %d: %dx%d, %.1f GB, %.3g s" % (r["model"], r["gpus"], r["tp"], r["dp"],
                                                             r["total_bytes"] / 1e9, r["total_s"]))
    else:
        check(r["least"]["total_bytes"] > 72e9, "project %s on %d: does not fit (least %.0f GB)"
              % (r["model"], r["gpus"], r["least"]["total_bytes"] / 1e9))
check([r["gpus"] for r in proj["largest"]] == [8, 16, 32, 64, 128, 256, 512], "largest model per GPU count")
check("Largest model per GPU count" in run("project"), "project markdown")

if failures:
    sys.exit("%d check(s) failed" % len(failures))
print("all checks passed")
