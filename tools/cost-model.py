#!/usr/bin/python3
"""Cost model of `unlearn forget` (Newton-CG): time per CG iteration and memory per rank from the model config, the
TP x DP layout, the solver-state sharding of design 3.4 and measured or published machine rates. docs/scaling.md
derives every term; this file is the arithmetic.

  tools/cost-model.py predict --preset llama-7b --tp 8 --dp 4 --retain-tokens 131072 --machine h100
  tools/cost-model.py validate [--csv docs/scaling/validation.csv --comm docs/scaling/comm.csv]
  tools/cost-model.py project  [--gpus 8,16,...,512 --dtype bf16]
  tools/cost-model.py --json ...   (machine-readable output of any subcommand)

Runs with Debian's /usr/bin/python3 and the standard library only.
"""
import argparse
import bisect
import csv
import json
import math
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GB = 1e9
GIB = 1024 ** 3

# --------------------------------------------------------------------------------------------------------------------
# Models


class Model:
    def __init__(self, name, family, d_model, n_layers, n_heads, d_ff, vocab, seq, n_kv_heads=None):
        self.name, self.family = name, family
        self.d, self.L, self.h, self.ff, self.V, self.seq = d_model, n_layers, n_heads, d_ff, vocab, seq
        self.kv = n_kv_heads or n_heads
        self.hd = d_model // n_heads

    def valid_tp(self, tp):
        """config.cpp's ModelConfig::validate."""
        return (self.d % self.h == 0 and self.h % tp == 0 and (self.kv % tp == 0 or tp % self.kv == 0)
                and self.V >= tp and self.ff >= tp)

    def kv_local(self, tp):
        return self.kv // tp if self.kv % tp == 0 else 1  # shared by tp / kv ranks when kv < tp

    def params_local(self, tp):
        """Elements on the largest TP rank (transformer.cpp: vocabulary split unevenly, first ranks one row more)."""
        d, hd, V = self.d, self.hd, self.V
        vl, ql, kvl, fl = -(-V // tp), self.h // tp * hd, self.kv_local(tp) * hd, -(-self.ff // tp)
        if self.family == "gpt2":
            layer = 2 * d + (ql * d + ql) + 2 * (kvl * d + kvl) + (d * ql + d) + 2 * d + (fl * d + fl) + (d * fl + d)
            return vl * d + self.seq * d + self.L * layer + 2 * d  # tied head; wpe of max_positions = seq rows
        layer = d + ql * d + 2 * kvl * d + d * ql + d + 3 * fl * d
        return 2 * vl * d + self.L * layer + d

    def params_global(self):
        return self.params_local(1)

    def flops_forward(self, tp, tokens, attn, targets):
        """Matrix-product FLOPs of one forward on one TP rank (bench_model.cpp's count, split by TP): linear layers
        on every position, attention scores and values on the full T x T (the plain math path), LM head on the
        target rows only. tokens = sum B*T, attn = sum B*T^2 over the micro-batches, targets = target tokens."""
        d, hd = self.d, self.hd
        ql, kvl, fl = self.h // tp * hd, self.kv_local(tp) * hd, -(-self.ff // tp)
        mlp = (2 if self.family == "gpt2" else 3) * fl * d
        linear = 2.0 * tokens * self.L * (ql * d + 2 * kvl * d + d * ql + mlp)
        attention = 4.0 * self.L * (self.h // tp) * hd * attn
        head = 2.0 * targets * d * -(-self.V // tp)
        return linear + attention + head

    def flops_attention(self, tp, attn):
        """The batched T x T part of flops_forward (scores and values), which runs at its own rate."""
        return 4.0 * self.L * (self.h // tp) * self.hd * attn

    def n_tensors(self):
        """Parameter tensors (transformer.cpp): every per-tensor op of CG and of the product seed runs this often."""
        return self.L * (16 if self.family == "gpt2" else 9) + (4 if self.family == "gpt2" else 3)

    def saved_values(self, tp, tokens, attn, targets):
        """Values saved per reused graph pair (forward + create_graph backward): forget_estimate.cpp's count per
        token and layer, 2 (4d + 10d/tp + (heads/tp) T), plus three logit-sized tensors per target token."""
        d = self.d
        return (2.0 * self.L * (tokens * (4 * d + 10 * d / tp) + self.h / tp * attn)
                + 3.0 * targets * self.V / tp)


PRESETS = {
    # Published configs (Hugging Face config.json of each model); seq = the context used in the projection.
    "gpt2-xl": Model("GPT-2 XL", "gpt2", 1600, 48, 25, 6400, 50257, 1024),
    "llama-7b": Model("LLaMA-2-7B", "llama", 4096, 32, 32, 11008, 32000, 4096),
    "llama-13b": Model("LLaMA-2-13B", "llama", 5120, 40, 40, 13824, 32000, 4096),
    "llama-30b": Model("LLaMA-30B", "llama", 6656, 60, 52, 17920, 32000, 2048),
    "llama-65b": Model("LLaMA-65B", "llama", 8192, 80, 64, 22016, 32000, 2048),
    "llama-70b": Model("LLaMA-2-70B", "llama", 8192, 80, 64, 28672, 32000, 4096, n_kv_heads=8),
    "llama-405b": Model("LLaMA-3.1-405B", "llama", 16384, 126, 128, 53248, 128256, 4096, n_kv_heads=8),
}

# --------------------------------------------------------------------------------------------------------------------
# Machines


class Link:
    """All-reduce time of one group: a measured table (bytes -> seconds, log-log interpolated) or alpha + bus bw.
    nccl-tests' convention: bus bw = algbw * 2 (n-1)/n, so t = alpha + bytes * 2 (n-1)/n / busbw."""

    def __init__(self, alpha_s=0.0, busbw=1.0, table=None, table_ranks=2):
        self.alpha, self.busbw, self.table, self.table_ranks = alpha_s, busbw, table, table_ranks

    def all_reduce(self, nbytes, n):
        if n <= 1 or nbytes <= 0:
            return 0.0
        if self.table:
            xs = [b for b, _ in self.table]
            b = max(nbytes, 1)
            if b <= xs[0]:
                t = self.table[0][1]
            elif b >= xs[-1]:
                t = self.table[-1][1] * b / xs[-1]
            else:
                i = bisect.bisect_left(xs, b)
                (x0, y0), (x1, y1) = self.table[i - 1], self.table[i]
                f = (math.log(b) - math.log(x0)) / (math.log(x1) - math.log(x0))
                t = math.exp(math.log(y0) + f * (math.log(y1) - math.log(y0)))
            # A table of table_ranks ranks, rescaled in its bandwidth part to n ranks by the ring factor.
            ring = lambda k: 2.0 * (k - 1) / k
            t0 = self.table[0][1]
            return t0 + (t - t0) * ring(n) / ring(self.table_ranks) if t > t0 else t
        return self.alpha + nbytes * 2.0 * (n - 1) / n / self.busbw


class Machine:
    """t_op: fixed seconds per data-moving ATen op (dispatch, autograd node, allocation; on a GPU the kernel launch).
    attn_flops / ew_bw: the batched attention products' rate and the elementwise ops' bandwidth where they differ
    from matmul_flops / mem_bw (the latter stays the CG vectors' streaming bandwidth)."""

    def __init__(self, name, matmul_flops, mem_bw, intra, inter, gpus_per_node, memory_bytes, notes="", t_op=0.0,
                 attn_flops=None, ew_bw=None):
        self.name, self.matmul, self.mem_bw = name, matmul_flops, mem_bw
        self.intra, self.inter, self.gpus_per_node, self.memory = intra, inter, gpus_per_node, memory_bytes
        self.notes, self.t_op = notes, t_op
        self.attn = attn_flops or matmul_flops
        self.ew_bw = ew_bw or mem_bw


# Published rates (docs/scaling.md, "Assumptions"): H100 SXM5 datasheet peaks; nccl-tests all_reduce_perf bus
# bandwidths on DGX H100 / InfiniBand NDR. The achievable fractions are assumptions, not measurements.
H100_PEAK = {"bf16": 989e12, "float32": 67e12, "tf32": 494.5e12}
H100_MATMUL_FRACTION = 0.5
H100_HBM = 3.35e12 * 0.8
H100_INTRA = Link(alpha_s=15e-6, busbw=400e9)   # NVLink4 + NVSwitch, 8 GPUs: 360-480 GB/s bus bw measured by NVIDIA
H100_INTER = Link(alpha_s=30e-6, busbw=45e9)    # one 400 Gb/s NDR HCA per GPU: 40-48 GB/s bus bw
# Per op on a GPU: one kernel launch through LibTorch's eager dispatcher and autograd, ~5-10 µs when the host cannot
# run ahead (the double backward's small ops, .item() syncs in CG); 5 µs assumed, no CUDA graphs or fusion.
H100_T_OP = 5e-6


def h100(dtype, t_op=H100_T_OP):
    return Machine("H100 SXM 80GB", H100_PEAK["bf16" if dtype == "bf16" else "float32"] * H100_MATMUL_FRACTION,
                   H100_HBM, H100_INTRA, H100_INTER, 8, 80e9, t_op=t_op)


DTYPE_BYTES = {"bf16": 2, "float16": 2, "float32": 4, "float64": 8}

# --------------------------------------------------------------------------------------------------------------------
# The model of one CG iteration and of memory per rank


class Workload:
    """The retain sample of one DP rank as micro-batches: tokens = sum B*T (padded), attn = sum B*T^2, targets,
    micro-batches, and the largest micro-batch (memory of the recompute mode). forget_tokens: the forget set's
    tokens (its gradient is a plain backward per micro-batch: no graph is held, so no memory term)."""

    def __init__(self, tokens, attn, targets, microbatches, mb_tokens, mb_attn, mb_targets, forget_tokens=0,
                 forget_attn=0):
        self.tokens, self.attn, self.targets, self.microbatches = tokens, attn, targets, microbatches
        self.mb_tokens, self.mb_attn, self.mb_targets = mb_tokens, mb_attn, mb_targets
        self.forget_tokens, self.forget_attn = forget_tokens, forget_attn

    @staticmethod
    def rows(n_rows, seq, rows_per_batch, dp, forget_rows=0):
        """Full rows of seq inputs (seq - 1 targets... here every input is a target: seq targets per row)."""
        mine = -(-n_rows // dp)
        mb = max(1, min(rows_per_batch, mine))
        f = -(-forget_rows // dp)
        return Workload(mine * seq, mine * seq * seq, mine * seq, -(-mine // mb), mb * seq, mb * seq * seq, mb * seq,
                        f * seq, f * seq * seq)


# Matrix-product work of each operation in forwards (F), derived in docs/scaling.md from curvature.cpp:
# gradient 3F; setup = forward + create_graph backward 3F; H·v on the reused graph = double backward through the
# backward graph (4F) and the forward graph (2F) = 6F; G·v = J v through the backward graph (2F) + Jᵀ y (2F) = 4F.
# Recompute: every product first rebuilds the graph (3F, plus Jᵀu 2F for G·v).
PRODUCT_F = {("hessian", "reuse"): 6, ("ggn", "reuse"): 4, ("hessian", "recompute"): 9, ("ggn", "recompute"): 9}
# Counted, not assumed (docs/scaling/count_ops.py -> docs/scaling/ops.json: torch 1.13's profiler over one
# reused-graph product of a TP = 1 GPT-2 re-statement of transformer.cpp / curvature.cpp): data-moving ATen ops
# ("kernels") per layer and per micro-batch outside the layers, and elementwise bytes (inputs + output of every
# non-matmul kernel) = a N d + b h A per layer, c per target logit per micro-batch.
OPS = {"ggn": dict(layer=404, mb=140, a=2228.4, b=64.7, c=275.7),
       "hessian": dict(layer=441, mb=163, a=2649.6, b=147.2, c=179.0)}
# Per-iteration CG ops per parameter tensor (cg.cpp, sharded_vector.cpp): 4 dots x (2 casts to float64, dot, item)
# + x, r, damping axpy + p scale and add + r clone, ~ 24.
CG_OPS_PER_TENSOR = 24
# Recompute mode rebuilds forward + create_graph backward before every product: ~half a product's ops and bytes
# again (3F of the 6F-9F), an assumption.
RECOMPUTE_FACTOR = {"reuse": 1.0, "recompute": 1.5}
# CG's own vector traffic per iteration (cg.cpp): 4 dot products, each converting both operands to float64
# (2s read + 16 write + 16 read per element), and x/r axpy, r clone, p scale + axpy, damping axpy (16 s in all).
# Per micro-batch in a product: <a, v> seed (3 s), its backward (3 s), accumulation (3 s) ~ 9 s; DP sum: cat + clone.


def cg_iteration(m, tp, dp, work, mach, dtype="float32", solver_dtype=None, curvature="ggn", mode="reuse",
                 sharded=False, subset_fraction=1.0, trust_radius=False, compute_rate=None):
    """Seconds per CG iteration on the busiest rank, split into compute, elementwise, vector and communication."""
    s = DTYPE_BYTES[dtype]
    sv = DTYPE_BYTES[solver_dtype or dtype]
    rate = compute_rate or mach.matmul
    P = m.params_local(tp)
    n_sub = P * subset_fraction
    F = m.flops_forward(tp, work.tokens, work.attn, work.targets)
    F_att = m.flops_attention(tp, work.attn)
    attn_rate = mach.attn if compute_rate is None else compute_rate * mach.attn / mach.matmul
    t_matmul = PRODUCT_F[(curvature, mode)] * ((F - F_att) / rate + F_att / attn_rate)
    ops = OPS["ggn" if curvature == "ggn" else "hessian"]
    # Token x d tensors: 4d of forget_estimate's 14d per token are replicated over TP (norms, residuals), the rest
    # split; the count is TP = 1's, split the same way. Elementwise bytes scale with the compute dtype (counted at 4).
    tp_split = (4 + 10.0 / tp) / 14
    ew_bytes = (m.L * (ops["a"] * work.tokens * m.d * tp_split + ops["b"] * (m.h / tp) * work.attn)
                + ops["c"] * work.targets * -(-m.V // tp)) * s / 4 * RECOMPUTE_FACTOR[mode]
    t_ew = ew_bytes / mach.ew_bw
    n_ops = (work.microbatches * (m.L * ops["layer"] + ops["mb"]) * RECOMPUTE_FACTOR[mode]
             + m.n_tensors() * CG_OPS_PER_TENSOR)
    t_ops = n_ops * mach.t_op
    n_vec = n_sub / dp if sharded else n_sub
    vec_bytes = n_vec * (4 * (2 * sv + 32) + 16 * sv) + work.microbatches * n_sub * 9 * sv
    if dp > 1:
        vec_bytes += n_sub * 4 * sv  # flatten (cat) and split back (clone) around the DP sum
    t_vec = vec_bytes / mach.mem_bw

    # TP collectives per micro-batch (tp_mappings.cpp: CopyToTp all-reduces in backward, ReduceFromTp in forward;
    # a Function created while differentiating swaps the roles): 4 of [tokens, d] per layer in either product,
    # plus the embedding's and the head's, plus the cross-entropy / softmax-Hessian scalars per target row.
    intra_tp = tp <= mach.gpus_per_node
    tp_link = mach.intra if intra_tp else mach.inter
    t_tp = 0.0
    if tp > 1:
        per_mb_tokens = work.tokens / work.microbatches
        per_mb_targets = work.targets / work.microbatches
        big = (4 * m.L + 1) * tp_link.all_reduce(per_mb_tokens * m.d * s, tp)
        head = tp_link.all_reduce(per_mb_targets * m.d * s, tp)
        small = 4 * tp_link.all_reduce(per_mb_targets * s, tp) + tp_link.all_reduce(s, tp)
        kvshare = 0.0
        if m.kv % tp != 0:  # KV weights shared by tp / kv ranks: their gradient products are summed in the group
            kvshare = 2 * m.L * tp_link.all_reduce(m.hd * m.d * s, tp // m.kv)
        recompute = 0.0
        if mode == "recompute":  # the rebuilt forward (2 per layer + embedding) and create_graph backward (2 + head)
            recompute = (4 * m.L + 1) * tp_link.all_reduce(per_mb_tokens * m.d * s, tp) + head
        t_tp = work.microbatches * (big + head + small + kvshare + recompute)

    # DP: the product's sum over DP replicas (today an all-reduce of solver-dtype vectors; design 3.4: all-gather v
    # + reduce-scatter of the product, the same bytes, in the compute dtype). A DP group leaves the node when the
    # world does.
    world = tp * dp
    dp_link = mach.inter if world > mach.gpus_per_node else mach.intra
    t_dp = dp_link.all_reduce(n_sub * (s if sharded else sv), dp)
    # CG scalars: 4 dot products (TP group today; the world under design 3.4), the stop-signal check (world),
    # a fifth dot with a trust radius.
    world_link = mach.inter if world > mach.gpus_per_node else mach.intra
    dots = 4 + (1 if trust_radius else 0)
    dot_group, dot_link = (world, world_link) if sharded else (tp, tp_link)
    t_scalar = dots * dot_link.all_reduce(8, dot_group) + world_link.all_reduce(8, world)
    comm = t_tp + t_dp + t_scalar
    total = t_matmul + t_ew + t_vec + t_ops + comm
    return dict(total_s=total, matmul_s=t_matmul, elementwise_s=t_ew, vector_s=t_vec, ops_s=t_ops, n_ops=n_ops,
                elementwise_bytes=ew_bytes, tp_comm_s=t_tp, dp_comm_s=t_dp, scalar_comm_s=t_scalar, comm_s=comm,
                compute_s=t_matmul + t_ew + t_vec + t_ops, forward_flops=F)


def memory(m, tp, dp, work, dtype="float32", solver_dtype=None, curvature="ggn", mode="reuse", sharded=False,
           method="newton-cg", subset_fraction=1.0, fisher_rows=0):
    """Bytes per rank. forget_estimate.cpp's terms (weights; 11 / 9 / 5 solver vectors; Fisher store; reused graphs
    by its per-token count, without its measured calibration) plus what it leaves out (docs/scaling.md, "Memory"):
    the create_graph gradient held with every reused micro-batch (and Jᵀu for G·v), the product's per-micro-batch
    temporary and the DP sum's concatenation buffer (the forget set's gradient is a plain backward, no graph kept); under design 3.4 the vectors are 1/DP each, plus the gathered
    input and the full-size product before its reduce-scatter (in the compute dtype)."""
    s = DTYPE_BYTES[dtype]
    sv = DTYPE_BYTES[solver_dtype or dtype]
    P = m.params_local(tp)
    n_sub = P * subset_fraction
    weights = P * s
    nvec = {"gradient-ascent": 5, "newton-cg": 11}.get(method, 9)
    curv = method == "newton-cg" and curvature != "fisher"
    temp = n_sub * s if curv and work.microbatches > 1 else 0.0  # one micro-batch's product before it is added
    if sharded:
        vectors = nvec * n_sub * sv / dp
        workspace = 2 * n_sub * s + temp  # gathered v, the product accumulator
    else:
        vectors = nvec * n_sub * sv
        workspace = temp + (n_sub * sv if dp > 1 else 0.0)  # the DP sum's flattened buffer
    fisher = 0.0
    if method != "newton-cg" or curvature == "fisher":
        fisher = fisher_rows * n_sub * sv / (dp if sharded else 1) + fisher_rows ** 2 * 8
    graphs = grads = 0.0
    if curv:
        if mode == "reuse":
            graphs = m.saved_values(tp, work.tokens, work.attn, work.targets) * s
            grads = work.microbatches * (2 if curvature == "ggn" else 1) * n_sub * s
        else:
            graphs = m.saved_values(tp, work.mb_tokens, work.mb_attn, work.mb_targets) * s
            grads = (2 if curvature == "ggn" else 1) * n_sub * s
    total = weights + vectors + workspace + fisher + graphs + grads
    return dict(total_bytes=total, weights_bytes=weights, vectors_bytes=vectors, workspace_bytes=workspace,
                fisher_bytes=fisher, graph_bytes=graphs, graph_gradient_bytes=grads)


RUNTIME_BYTES = 256 << 20  # forget_estimate.cpp's kRuntimeBytes: LibTorch, MPI, BLAS, the dataset


def forget_estimate_memory(m, tp, dp, retain_tokens, dtype="float32", method="newton-cg", fisher_rows=0,
                           curvature="ggn", rows_per_batch=8, dp_chunks=1):
    """forget_estimate.cpp's memory, term for term and in its order of operations (for comparison and the unit test).
    dp_chunks: DP when the solver vectors and Fisher rows are split over DP (--solver-sharding dp)."""
    s = DTYPE_BYTES[dtype]
    P = m.params_local(tp)
    nvec = {"gradient-ascent": 5, "newton-cg": 11}.get(method, 9)
    chunked = dp_chunks > 1 and method != "gradient-ascent"
    whole, chunks = (4, nvec - 2) if chunked else (nvec, 0)
    chunk = -(-P // dp_chunks)
    fisher = method != "newton-cg" and method != "gradient-ascent" or (method == "newton-cg" and curvature == "fisher")
    per_token = 2.0 * m.L * (4 * m.d + 10 * m.d / tp + m.h / tp * m.seq) + 3.0 * m.V / tp
    kept = 3.3 if curvature == "ggn" else 2.3
    keeps_graphs = method == "newton-cg" and curvature != "fisher"
    graph = int(kept * per_token * (retain_tokens / dp) * s) if keeps_graphs else 0
    transient = int(1.3 * per_token * rows_per_batch * m.seq * s)
    fb = fisher_rows * (chunk if chunked else P) * s + fisher_rows ** 2 * 8 if fisher else 0
    return RUNTIME_BYTES + P * s + (whole * P + chunks * chunk) * s + fb + graph + transient

# --------------------------------------------------------------------------------------------------------------------
# validate


def read_comm(path):
    table = []
    for r in csv.DictReader(open(path)):
        table.append((int(r["bytes"]), float(r["median_us"]) * 1e-6))
    table.sort()
    return Link(table=table, table_ranks=int(r["ranks"]))


def read_machine_csv(path):
    out = {}
    if os.path.exists(path):
        for r in csv.DictReader(open(path)):
            out[r["key"]] = float(r["value"])
    return out


def interp(table, x):
    """Log-log interpolation in a sorted [(x, y)] table, clamped at the ends."""
    if x <= table[0][0] or len(table) == 1:
        return table[0][1] if x <= table[0][0] else table[-1][1]
    for (x0, y0), (x1, y1) in zip(table, table[1:]):
        if x <= x1:
            f = math.log(x / x0) / math.log(x1 / x0)
            return math.exp(math.log(y0) + f * (math.log(y1) - math.log(y0)))
    return table[-1][1]


def local_machine(mc, link, m, share=1.0, t_op=None, tp=1):
    """This machine for model m as measured in docs/scaling/machine.csv, given `share` of a core: linear products at
    the rate of the block's own linear layers at this TP (torch_rates: forward, input and weight gradient of each
    layer's local shape; TP > 2 uses the TP 2 rate; else `unlearn bench model`'s matmul), attention at its [64, hd]
    batched rate, elementwise ops at the torch.add slope, CG vectors at the numpy stream rate, t_op per op. A rank
    with half a core runs every compute term at half speed."""
    def table(prefix):
        return sorted((int(k[len(prefix):]), v * 1e9) for k, v in mc.items() if k.startswith(prefix))
    lin = ((table("linear_tp2_gflops_d") if tp > 1 else []) or table("linear_gflops_d") or table("matmul_gflops_d")
           or [(1, 50e9)])
    att = table("attn_gflops_hd")
    rate = interp(lin, m.d)
    attn = interp(att, m.hd) if att else rate
    mem_bw = mc.get("mem_bw_bytes_per_s_1thread", 10e9)
    ew_bw = mc.get("ew_bytes_per_s", mem_bw)
    t = mc.get("t_op_s", 0.0) if t_op is None else t_op
    return Machine("this machine", rate * share, mem_bw * share, link, link, 64, 0, t_op=t / share,
                   attn_flops=attn * share, ew_bw=ew_bw * share)


def row_model(r):
    return Model(r["name"], r["family"], int(r["d_model"]), int(r["n_layers"]), int(r["n_heads"]), int(r["d_ff"]),
                 int(r["vocab"]), int(r["seq"]), int(r["n_kv_heads"]))


def row_workloads(r):
    lists = [[int(x) for x in str(r[k]).split(";")] for k in ("tokens_per_dp", "attn_per_dp", "targets_per_dp",
                                                               "microbatches_per_dp")]
    return [Workload(tok, att, tgt, mb, tok / mb, att / mb, tgt / mb) for tok, att, tgt, mb in zip(*lists)]


def predict_row(r, mach):
    """The busiest DP rank's prediction (the DP sum is a barrier)."""
    m = row_model(r)
    best = None
    for w in row_workloads(r):
        p = cg_iteration(m, int(r["tp"]), int(r["dp"]), w, mach, dtype=r["dtype"], curvature=r["curvature"],
                         mode=r["graph_mode"])
        if best is None or p["total_s"] > best["total_s"]:
            best = p
    return best


def fit_t_op(rows, mc, link=None):
    """t_op from the d 16 microbenchmark (docs/scaling/overhead.csv), never from validation rows: the measured time
    per iteration minus the model's FLOP, byte and (zero) communication terms, against the counted ops of each run;
    least-squares slope = seconds per op, intercept = what the count misses per iteration (should be ~0)."""
    link = link or Link(0, float("inf"))
    xs, ys = [], []
    for r in rows:
        p = predict_row(r, local_machine(mc, link, row_model(r), t_op=0.0, tp=int(r["tp"])))
        xs.append(p["n_ops"])
        ys.append(float(r["measured_s"]) - p["total_s"])
    mx, my = statistics.mean(xs), statistics.mean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return dict(t_op_s=slope, intercept_s=my - slope * mx, n=len(xs))


def validate(args):
    """Predicts every measured row from machine.csv's microbenchmarks (no constant fitted to these rows). On this
    shared machine each run gets the share of a core its slowest rank actually had ((user + sys) / wall from
    time(1)); on a quiet machine that is ~1 up to 2 ranks and ~0.5 at 4 ranks on 2 cores."""
    link = read_comm(args.comm)
    mc = read_machine_csv(args.machine_csv)
    rows = []
    for r in csv.DictReader(open(args.csv)):
        m = row_model(r)
        tp, dp = int(r["tp"]), int(r["dp"])
        shares = [float(x) for x in r.get("cpu_share_per_rank", "").split(";") if x]
        share = min(1.0, min(shares)) if shares else 1.0
        best = predict_row(r, local_machine(mc, link, m, share, tp=int(r["tp"])))
        no_ops = predict_row(r, local_machine(mc, link, m, share, t_op=0.0, tp=int(r["tp"])))
        measured = float(r["measured_s"])
        rss = [int(x) for x in r["maxrss_kb_per_rank"].split(";") if x]
        ws = row_workloads(r)
        ft = int(r["forget_tokens"])
        w0 = Workload(ws[0].tokens, ws[0].attn, ws[0].targets, ws[0].microbatches, ws[0].mb_tokens, 0, 0, ft,
                      ft * int(r["seq"]))
        mem = memory(m, tp, dp, w0, dtype=r["dtype"], curvature=r["curvature"])
        cf = r.get("comm_fraction_mean") or ""
        rss_report = r.get("peak_rss_bytes_max") or ""
        rows.append(dict(name=r["name"], tp=tp, dp=dp, curvature=r["curvature"], params=m.params_global(), d_model=m.d,
                         predicted_s=best["total_s"], measured_s=measured, ratio=best["total_s"] / measured,
                         within_25pct=abs(best["total_s"] / measured - 1) <= 0.25, matmul_s=best["matmul_s"],
                         elementwise_s=best["elementwise_s"], vector_s=best["vector_s"], ops_s=best["ops_s"],
                         n_ops=best["n_ops"], comm_s=best["comm_s"], cpu_share=share,
                         predicted_comm_share=best["comm_s"] / best["total_s"],
                         measured_comm_fraction=float(cf) if cf else None,
                         no_ops_ratio=no_ops["total_s"] / measured,
                         load1=(float(r["load1_before"]) + float(r["load1_after"])) / 2,
                         predicted_mem_mib=mem["total_bytes"] / 2 ** 20,
                         maxrss_mib=(float(rss_report) / 2 ** 20 if rss_report else
                                     max(rss) / 1024 if rss else None)))
    return rows


def validate_md(rows):
    out = ["| run | params | TP x DP | curvature | load | CPU share | predicted s/iter (matmul + elementwise + vector "
           "+ ops + comm) | measured s/iter | predicted / measured | within 25% | without the ops term | comm share "
           "predicted / measured | model state MiB/rank | peak RSS MiB |",
           "|---|---:|---|---|---:|---:|---|---:|---:|---|---:|---|---:|---:|"]
    for r in rows:
        cf = "%.2f / %s" % (r["predicted_comm_share"], "%.2f" % r["measured_comm_fraction"]
                            if r["measured_comm_fraction"] is not None else "-")
        out.append("| %s | %.2fM | %dx%d | %s | %.1f | %.2f | %.3f (%.3f + %.3f + %.3f + %.3f + %.3f) | %.3f | %.2f | "
                   "%s | %.2f | %s | %.0f | %s |"
                   % (r["name"], r["params"] / 1e6, r["tp"], r["dp"], r["curvature"], r["load1"], r["cpu_share"],
                      r["predicted_s"], r["matmul_s"], r["elementwise_s"], r["vector_s"], r["ops_s"], r["comm_s"],
                      r["measured_s"], r["ratio"], "yes" if r["within_25pct"] else "**no**", r["no_ops_ratio"], cf,
                      r["predicted_mem_mib"], "%.0f" % r["maxrss_mib"] if r["maxrss_mib"] else "-"))
    ok = sum(r["within_25pct"] for r in rows)
    out.append("")
    out.append("%d of %d rows within 25%%; geometric mean ratio %.2f (without the ops term %.2f)." % (
        ok, len(rows), math.exp(statistics.mean(math.log(r["ratio"]) for r in rows)),
        math.exp(statistics.mean(math.log(r["no_ops_ratio"]) for r in rows))))
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------------------------
# project


def best_layout(m, n_gpus, args, mach, need=None):
    """The fastest layout (TP dividing the node, DP = n / TP) whose memory fits, and for it the graph mode and
    micro-batch rows (reuse if it fits, else recompute with the most rows per micro-batch that fit)."""
    best, smallest = None, None
    for tp in (1, 2, 4, 8, 16, 32, 64):
        if tp > args.max_tp or n_gpus % tp or not m.valid_tp(tp):
            continue
        dp = n_gpus // tp
        for mode in ("reuse", "recompute"):
            for rpb in (8, 4, 2, 1):
                w = Workload.rows(args.retain_rows, m.seq, rpb, dp, args.forget_rows)
                mem = memory(m, tp, dp, w, dtype=args.dtype, solver_dtype=args.solver_dtype,
                             curvature=args.curvature, mode=mode, sharded=not args.unsharded)
                if smallest is None or mem["total_bytes"] < smallest["total_bytes"]:
                    smallest = dict(tp=tp, dp=dp, mode=mode, rows_per_batch=rpb, **mem)
                if mem["total_bytes"] > mach.memory * args.memory_fraction:
                    continue
                t = cg_iteration(m, tp, dp, w, mach, dtype=args.dtype, solver_dtype=args.solver_dtype,
                                 curvature=args.curvature, mode=mode, sharded=not args.unsharded)
                cand = dict(model=m.name, params=m.params_global(), gpus=n_gpus, tp=tp, dp=dp, mode=mode,
                            rows_per_batch=rpb, **t, **mem)
                if best is None or cand["total_s"] < best["total_s"]:
                    best = cand
                break  # the largest micro-batch that fits is the fastest for this mode
    if best is None and need is not None:
        need.update(smallest or {})
    return best


def project(args):
    mach = h100(args.dtype, args.t_op_us * 1e-6)
    gpus = [int(x) for x in args.gpus.split(",")]
    table = []
    for key in args.models.split(","):
        m = PRESETS[key]
        if args.context:
            m = Model(m.name + " @%d" % args.context, m.family, m.d, m.L, m.h, m.ff, m.V, args.context, m.kv)
        for n in gpus:
            need = {}
            b = best_layout(m, n, args, mach, need)
            table.append(dict(b, fits=True) if b else dict(model=m.name, params=m.params_global(), gpus=n, fits=False,
                                                            least=need))
    largest = []
    for n in gpus:
        fit = None
        for key in LADDER:
            b = best_layout(PRESETS[key], n, args, mach)
            if b:
                fit = b
        scan = largest_by_layers(n, args, mach)
        largest.append(dict(gpus=n, preset=fit, scan=scan))
    return table, largest


LADDER = ["gpt2-xl", "llama-7b", "llama-13b", "llama-30b", "llama-65b", "llama-70b", "llama-405b"]


def largest_by_layers(n, args, mach):
    """The most layers of the LLaMA-2-70B shape (d 8192, GQA 8, d_ff 28672, vocab 32000) that fit on n GPUs."""
    lo, hi, best = 1, 400, None
    while lo <= hi:
        mid = (lo + hi) // 2
        m = Model("LLaMA-70B shape, %d layers" % mid, "llama", 8192, mid, 64, 28672, 32000, args.scan_seq, 8)
        b = best_layout(m, n, args, mach)
        if b:
            best, lo = b, mid + 1
        else:
            hi = mid - 1
    return best


def project_md(table, largest, args):
    out = ["Per CG iteration on H100 SXM 80 GB (assumptions in docs/scaling.md): %s weights and activations, %s "
           "solver vectors, %s, %s, retain sample %d rows x context, forget set %d rows; %.0f µs per op (eager "
           "launches); fits = under %.0f%% of 80 GB."
           % (args.dtype, args.solver_dtype or args.dtype, "G·v (GGN)" if args.curvature == "ggn" else "H·v (Hessian)",
              "vectors unsharded (today's code)" if args.unsharded else "vectors sharded over DP (design 3.4)",
              args.retain_rows, args.forget_rows, args.t_op_us, 100 * args.memory_fraction), "",
           "| model | params | GPUs | best TP x DP | graphs | rows / micro-batch | s / CG iteration | matmul | "
           "elementwise + vector | ops (launch) | TP comm | DP comm + scalars | GB / GPU (weights, vectors + workspace, "
           "graphs) |",
           "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in table:
        if not r["fits"]:
            n = r["least"]
            out.append("| %s | %.1fB | %d | does not fit: least %.0f GB at %dx%d %s, %d row(s) | | | | | | | | %.1f (%.1f, %.1f, "
                       "%.1f) |" % (r["model"], r["params"] / 1e9, r["gpus"], n["total_bytes"] / GB, n["tp"], n["dp"],
                                    n["mode"], n["rows_per_batch"], n["total_bytes"] / GB, n["weights_bytes"] / GB,
                                    (n["vectors_bytes"] + n["workspace_bytes"]) / GB,
                                    (n["graph_bytes"] + n["graph_gradient_bytes"]) / GB))
            continue
        out.append("| %s | %.1fB | %d | %dx%d | %s | %d | %.3g | %.3g | %.3g | %.3g | %.3g | %.3g | %.1f (%.1f, %.1f, %.1f) |"
                   % (r["model"], r["params"] / 1e9, r["gpus"], r["tp"], r["dp"], r["mode"], r["rows_per_batch"],
                      r["total_s"], r["matmul_s"], r["elementwise_s"] + r["vector_s"], r["ops_s"], r["tp_comm_s"],
                      r["dp_comm_s"] + r["scalar_comm_s"], r["total_bytes"] / GB, r["weights_bytes"] / GB,
                      (r["vectors_bytes"] + r["workspace_bytes"]) / GB, (r["graph_bytes"] + r["graph_gradient_bytes"]) / GB))
    out += ["", "Largest model per GPU count:", "",
            "| GPUs | largest published config that fits | layout | s / CG iteration | largest LLaMA-70B-shaped "
            "model (context %d) | layout | s / CG iteration |" % args.scan_seq,
            "|---:|---|---|---:|---|---|---:|"]
    for r in largest:
        p, s = r["preset"], r["scan"]
        out.append("| %d | %s | %s | %s | %s | %s | %s |" % (
            r["gpus"], "%s (%.1fB)" % (p["model"], p["params"] / 1e9) if p else "none",
            "%dx%d %s" % (p["tp"], p["dp"], p["mode"]) if p else "", "%.3g" % p["total_s"] if p else "",
            "%s (%.0fB)" % (s["model"], s["params"] / 1e9) if s else "none",
            "%dx%d %s" % (s["tp"], s["dp"], s["mode"]) if s else "", "%.3g" % s["total_s"] if s else ""))
    return "\n".join(out)

# --------------------------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    sub = ap.add_subparsers(dest="cmd", required=True)

    pr = sub.add_parser("predict", help="one model and layout")
    pr.add_argument("--preset", choices=sorted(PRESETS))
    pr.add_argument("--family", default="gpt2", choices=("gpt2", "llama"))
    for k, v in (("d-model", 768), ("n-layers", 12), ("n-heads", 12), ("n-kv-heads", 0), ("d-ff", 3072),
                 ("vocab", 50257), ("seq", 1024)):
        pr.add_argument("--" + k, type=int, default=v)
    pr.add_argument("--retain-tokens", type=int, default=65536, help="tokens per curvature product (all DP ranks)")
    pr.add_argument("--forget-tokens", type=int, default=8192, help="forget-set tokens whose graphs are held")
    pr.add_argument("--rows-per-batch", type=int, default=8)
    pr.add_argument("--tp", type=int, default=1)
    pr.add_argument("--dp", type=int, default=1)
    pr.add_argument("--dtype", default="float32", choices=sorted(DTYPE_BYTES))
    pr.add_argument("--solver-dtype", default=None, choices=sorted(DTYPE_BYTES))
    pr.add_argument("--curvature", default="ggn", choices=("ggn", "hessian"))
    pr.add_argument("--graph-mode", default="reuse", choices=("reuse", "recompute"))
    pr.add_argument("--sharded", action="store_true", help="design 3.4 ZeRO sharding of solver vectors")
    pr.add_argument("--method", default="newton-cg")
    pr.add_argument("--fisher-rows", type=int, default=0, help="Fisher store rows m")
    pr.add_argument("--subset-fraction", type=float, default=1.0, help="--params subset / all parameters")
    pr.add_argument("--machine", default="h100", choices=("h100", "custom"))
    pr.add_argument("--matmul-gflops", type=float, default=0, help="custom: matmul GFLOP/s per rank (achieved)")
    pr.add_argument("--mem-gbps", type=float, default=0, help="custom: memory GB/s per rank")
    pr.add_argument("--intra-gbps", type=float, default=400, help="custom: intra-node all-reduce bus GB/s")
    pr.add_argument("--intra-us", type=float, default=15)
    pr.add_argument("--inter-gbps", type=float, default=45, help="custom: inter-node all-reduce bus GB/s")
    pr.add_argument("--inter-us", type=float, default=30)
    pr.add_argument("--gpus-per-node", type=int, default=8)
    pr.add_argument("--memory-gb", type=float, default=80)
    pr.add_argument("--t-op-us", type=float, default=None, help="µs per ATen op (h100: 5, custom: 0)")

    va = sub.add_parser("validate", help="compare with the measured runs")
    va.add_argument("--csv", default=os.path.join(ROOT, "docs/scaling/validation.csv"))
    va.add_argument("--comm", default=os.path.join(ROOT, "docs/scaling/comm.csv"))
    va.add_argument("--machine-csv", default=os.path.join(ROOT, "docs/scaling/machine.csv"))

    pj = sub.add_parser("project", help="GPT-2 XL, LLaMA-7B, LLaMA-70B on 8-512 H100s")
    pj.add_argument("--models", default="gpt2-xl,llama-7b,llama-70b")
    pj.add_argument("--gpus", default="8,16,32,64,128,256,512")
    pj.add_argument("--dtype", default="bf16", choices=sorted(DTYPE_BYTES))
    pj.add_argument("--solver-dtype", default="float32", choices=sorted(DTYPE_BYTES))
    pj.add_argument("--curvature", default="ggn", choices=("ggn", "hessian"))
    pj.add_argument("--retain-rows", type=int, default=64, help="retain sample rows (cmd_forget's --retain-sample)")
    pj.add_argument("--forget-rows", type=int, default=8)
    pj.add_argument("--unsharded", action="store_true", help="today's code: vectors replicated over DP")
    pj.add_argument("--memory-fraction", type=float, default=0.9, help="usable share of 80 GB")
    pj.add_argument("--scan-seq", type=int, default=2048)
    pj.add_argument("--max-tp", type=int, default=8, help="largest TP (above 8 TP groups span nodes)")
    pj.add_argument("--context", type=int, default=0, help="rows of this many tokens instead of each model's context")
    pj.add_argument("--t-op-us", type=float, default=H100_T_OP * 1e6, help="µs per op (kernel launch); 0 = none")
    a = ap.parse_args()

    if a.cmd == "predict":
        m = PRESETS[a.preset] if a.preset else Model("custom", a.family, a.d_model, a.n_layers, a.n_heads, a.d_ff,
                                                     a.vocab, a.seq, a.n_kv_heads or None)
        if not m.valid_tp(a.tp):
            sys.exit("cost-model: --tp %d cannot split %s (config.cpp's rules)" % (a.tp, m.name))
        if a.machine == "h100":
            mach = h100(a.dtype, H100_T_OP if a.t_op_us is None else a.t_op_us * 1e-6)
        else:
            mach = Machine("custom", a.matmul_gflops * 1e9, a.mem_gbps * 1e9, Link(a.intra_us * 1e-6, a.intra_gbps * 1e9),
                           Link(a.inter_us * 1e-6, a.inter_gbps * 1e9), a.gpus_per_node, a.memory_gb * 1e9,
                           t_op=(a.t_op_us or 0.0) * 1e-6)
        rows = -(-a.retain_tokens // m.seq)
        w = Workload.rows(rows, m.seq, a.rows_per_batch, a.dp, -(-a.forget_tokens // m.seq))
        t = cg_iteration(m, a.tp, a.dp, w, mach, a.dtype, a.solver_dtype, a.curvature, a.graph_mode, a.sharded,
                         a.subset_fraction)
        mem = memory(m, a.tp, a.dp, w, a.dtype, a.solver_dtype, a.curvature, a.graph_mode, a.sharded, a.method,
                     a.subset_fraction, a.fisher_rows)
        res = dict(model=m.name, params=m.params_global(), params_local=m.params_local(a.tp), tp=a.tp, dp=a.dp,
                   machine=mach.name, **t, **mem,
                   forget_estimate_total_bytes=forget_estimate_memory(m, a.tp, a.dp, rows * m.seq, a.dtype, a.method,
                                                                      a.fisher_rows, a.curvature, a.rows_per_batch,
                                                                      a.dp if a.sharded else 1))
        if a.json:
            print(json.dumps(res, indent=1))
        else:
            print("| quantity | value |\n|---|---:|")
            for k, v in res.items():
                print("| %s | %s |" % (k, "%.4g" % v if isinstance(v, float) else v))
    elif a.cmd == "validate":
        rows = validate(a)
        print(json.dumps(rows, indent=1) if a.json else validate_md(rows))
    else:
        table, largest = project(a)
        print(json.dumps(dict(table=table, largest=largest), indent=1) if a.json else project_md(table, largest, a))


if __name__ == "__main__":
    main()
