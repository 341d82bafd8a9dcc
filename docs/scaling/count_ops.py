#!/usr/bin/python3
"""Counts the ATen operations and the elementwise bytes of one curvature product per layer and per micro-batch, for
tools/cost-model.py's per-operation and elementwise terms (docs/scaling.md, 1.2).

LibTorch cannot be profiled from outside the `unlearn` binary, so this re-states, op for op, the TP = 1 GPT-2 path
of transformer.cpp / tp_layers.cpp / curvature.cpp in Debian's python3-torch (1.13, the same ATen): TP mappings are
the identity at TP = 1 (tp_mappings.cpp returns its input), GeluTanh / GeluTanhGrad are the same custom Functions.
The profiler records every dispatched op of one reused-graph product (after a warm-up product); ops per layer =
count(L = 2) - count(L = 1), the rest is per micro-batch. Counting only: no timing is taken from here.

    /usr/bin/python3 docs/scaling/count_ops.py [--json] [--write]   (--write: docs/scaling/ops.json, read by the tool)
"""
import json
import math
import sys

import torch

K = 2.0 * 0.7978845608028654
A_ = 0.044715
# No data movement (views, metadata, allocation without a fill).
VIEWS = {"aten::view", "aten::transpose", "aten::t", "aten::reshape", "aten::_reshape_alias", "aten::expand",
         "aten::as_strided", "aten::narrow", "aten::slice", "aten::squeeze", "aten::unsqueeze", "aten::detach",
         "aten::empty", "aten::empty_strided", "aten::alias", "aten::select", "aten::permute", "aten::resize_",
         "aten::lift_fresh", "aten::result_type", "aten::_unsafe_view", "aten::expand_as", "aten::contiguous",
         "aten::numpy_T", "aten::empty_like", "detach", "aten::to", "aten::zero_", "aten::resolve_conj",
         "aten::resolve_neg", "aten::conj", "aten::view_as", "aten::reshape_as"}
MATMUL = {"aten::mm", "aten::bmm", "aten::addmm", "aten::dot", "aten::matmul", "aten::linear", "aten::baddbmm"}
REDUCE = ("sum", "mean", "max", "amax", "dot", "norm", "nonzero")


def gelu2(x):
    x2 = x * x
    s = torch.sigmoid(K * x * (1.0 + A_ * x2))
    s1 = s * (1.0 - s)
    ku = K * (1.0 + 3.0 * A_ * x2)
    return s1 * (2.0 * ku + x * ((1.0 - 2.0 * s) * ku * ku + (K * 6.0 * A_) * x))


class GeluGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, g):
        ctx.save_for_backward(x, g)
        return torch.ops.aten.gelu_backward(g, x, approximate="tanh")

    @staticmethod
    def backward(ctx, gg):
        x, g = ctx.saved_tensors
        return gg * g * gelu2(x), torch.ops.aten.gelu_backward(gg, x, approximate="tanh")


class Gelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.nn.functional.gelu(x, approximate="tanh")

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return GeluGrad.apply(x, g)


def make(d, L, h, V, T):
    ps, layers = [], []

    def p(*shape):
        t = (torch.randn(*shape) * 0.02).requires_grad_(True)
        ps.append(t)
        return t
    wte, wpe = p(V, d), p(T, d)
    for _ in range(L):
        layers.append(dict(n1w=p(d), n1b=p(d), q=p(d, d), qb=p(d), k=p(d, d), kb=p(d), v=p(d, d), vb=p(d), o=p(d, d),
                           ob=p(d), n2w=p(d), n2b=p(d), up=p(4 * d, d), upb=p(4 * d), down=p(d, 4 * d), downb=p(d)))
    fw, fb = p(d), p(d)
    return ps, (wte, wpe, layers, fw, fb, d, h, V)


def forward(model, tokens, targets, segments, positions):
    wte, wpe, layers, fw, fb, d, h, V = model
    B, T = tokens.shape
    hd = d // h
    flat = tokens.reshape(-1)
    mine = flat.ge(0).logical_and(flat.lt(V))
    local = (flat - 0).masked_fill(mine.logical_not(), 0)
    x = (wte.index_select(0, local) * mine.unsqueeze(1).to(wte.dtype)).view(B, T, d)
    x = x + wpe.index_select(0, positions.reshape(-1)).view(B, T, d)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    allowed = segments.unsqueeze(2).eq(segments.unsqueeze(1)).logical_or(segments.lt(0).unsqueeze(1))
    allowed = allowed.logical_and(causal).unsqueeze(1)
    for l in layers:
        a = torch.layer_norm(x, [d], l["n1w"], l["n1b"], 1e-5)
        q = torch.nn.functional.linear(a, l["q"], l["qb"]).view(B, T, h, hd).transpose(1, 2)
        k = torch.nn.functional.linear(a, l["k"], l["kb"]).view(B, T, h, hd).transpose(1, 2)
        v = torch.nn.functional.linear(a, l["v"], l["vb"]).view(B, T, h, hd).transpose(1, 2)
        sc = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        sc = sc.masked_fill(allowed.logical_not(), -math.inf)
        att = torch.matmul(torch.softmax(sc, -1), v).transpose(1, 2).reshape(B, T, d)
        x = x + (torch.nn.functional.linear(att, l["o"]) + l["ob"])
        hh = torch.layer_norm(x, [d], l["n2w"], l["n2b"], 1e-5)
        inner = Gelu.apply(torch.nn.functional.linear(hh, l["up"], l["upb"]))
        x = x + (torch.nn.functional.linear(inner, l["down"]) + l["downb"])
    x = torch.layer_norm(x, [d], fw, fb, 1e-5)
    ft = targets.reshape(-1)
    rows = ft.ge(0).nonzero().view(-1)
    logits = torch.nn.functional.linear(x.reshape(B * T, d).index_select(0, rows), wte)
    tg = ft.index_select(0, rows)
    mx = logits.detach().max(1, True)[0].contiguous()
    shifted = logits - mx
    sum_exp = shifted.exp().sum(1)
    mine = tg.ge(0).logical_and(tg.lt(V))
    loc = (tg - 0).masked_fill(mine.logical_not(), 0)
    picked = shifted.gather(1, loc.unsqueeze(1)).squeeze(1) * mine.to(shifted.dtype)
    return logits, (sum_exp.log() - picked).sum()


def seed(a, v):
    s = None
    for ai, vi in zip(a, v):
        term = (ai * vi).sum()
        s = term if s is None else s + term
    return s


def softmax_hessian(z, r):
    z = z.detach()
    e = (z - z.max(1, True)[0].contiguous()).exp()
    p = e / e.sum(1, True).contiguous()
    return p * r - p * (p * r).sum(1, True).contiguous()


def count(events):
    """(dispatched aten ops, leaf ops that move data = kernels on a GPU, their bytes, matmul ops)."""
    ids = {id(e) for e in events}
    aten = [e for e in events if e.name.startswith("aten::")]
    parents = set()
    for e in aten:
        if e.name in VIEWS:  # an allocation or view inside an op does not make it a composite
            continue
        par = e.cpu_parent
        while par is not None and not par.name.startswith("aten::"):
            par = par.cpu_parent
        if par is not None:
            parents.add(id(par))
    n_all = len(aten)
    leaf = [e for e in aten if id(e) not in parents and e.name not in VIEWS]
    nbytes = 0
    for e in leaf:
        if e.name in MATMUL:
            continue
        sizes = [math.prod(s) for s in e.input_shapes if isinstance(s, list) and s]
        if not sizes:
            continue
        out = 0 if any(r in e.name for r in REDUCE) else max(sizes)  # elementwise: one output of the largest input
        nbytes += 4 * (sum(sizes) + out)
    return n_all, len(leaf), nbytes, sum(1 for e in leaf if e.name in MATMUL)


def product_counts(d, L, h, T, B, curvature, V=256):
    torch.manual_seed(0)
    ps, model = make(d, L, h, V, T)
    tokens = torch.randint(V, (B, T))
    targets = torch.randint(V, (B, T))
    segments = torch.zeros(B, T, dtype=torch.long)
    positions = torch.arange(T).expand(B, T).contiguous()
    logits, loss = forward(model, tokens, targets, segments, positions)
    n = B * T
    g = torch.autograd.grad(loss / n, ps, retain_graph=True, create_graph=True, allow_unused=True)
    u = torch.zeros_like(logits).requires_grad_(True)
    jtu = torch.autograd.grad(logits, ps, u, retain_graph=True, create_graph=True, allow_unused=True)
    v = [torch.randn_like(t) for t in ps]

    def product():
        if curvature == "hessian":
            out = torch.autograd.grad(seed(g, v), ps, retain_graph=True, allow_unused=True)
        else:
            jv = torch.autograd.grad(seed(jtu, v), [u], retain_graph=True, allow_unused=True)[0]
            y = softmax_hessian(logits, jv) / float(n)
            out = torch.autograd.grad(logits, ps, y, retain_graph=True, allow_unused=True)
        return [t.add_(0.0) for t in out]  # the accumulation's add_ of every micro-batch after the first
    product()
    with torch.autograd.profiler.profile(record_shapes=True) as prof:
        product()
    return count(prof.function_events)


def main():
    torch.set_num_threads(1)
    res = {}
    B, h = 8, 4
    for curv in ("ggn", "hessian"):
        c = {}
        for d, T in ((64, 64), (128, 64), (64, 32)):
            # Median of 3 profiles: the profiler's parent links (which op is nested in which) vary a little.
            med3 = lambda L: [sorted(x)[1] for x in zip(*[product_counts(d, L, h, T, B, curv) for _ in range(3)])]
            one, two = med3(1), med3(2)
            c[(d, T)] = dict(layer=[b - a for a, b in zip(one, two)], mb=[2 * a - b for a, b in zip(one, two)])
        lay = c[(64, 64)]["layer"]
        # Elementwise bytes per layer = a N d + b h A (N = B T tokens, A = B T²): solved from T 64 and T 32 at d 64,
        # checked against d 128.
        (n1, a1, y1), (n2, a2, y2) = [(B * T * 64, h * B * T * T, c[(64, T)]["layer"][2]) for T in (64, 32)]
        det = n1 * a2 - n2 * a1
        a_coef, b_coef = (y1 * a2 - y2 * a1) / det, (n1 * y2 - n2 * y1) / det
        chk = a_coef * B * 64 * 128 + b_coef * h * B * 64 * 64
        # Per micro-batch outside the layers (embedding, final norm, head, loss / softmax Hessian): bytes per target
        # row of the vocabulary-sized logits, from the d 64 T 64 case (n = B T targets).
        mb = c[(64, 64)]["mb"]
        med = lambda key, i: sorted(v[key][i] for v in c.values())[1]  # the profiler's nesting varies a little
        res[curv] = dict(ops_per_layer=med("layer", 0), kernels_per_layer=med("layer", 1), matmuls_per_layer=lay[3],
                         ops_per_microbatch=med("mb", 0), kernels_per_microbatch=med("mb", 1),
                         ew_bytes_per_token_d=a_coef, ew_bytes_per_head_T2=b_coef,
                         ew_bytes_check_d128=[c[(128, 64)]["layer"][2], round(chk)],
                         ew_bytes_microbatch_d64_T64=mb[2], raw={"%dx%d" % k: v for k, v in c.items()})
    res["how"] = ("docs/scaling/count_ops.py: torch %s profiler over one reused-graph product of a TP = 1 GPT-2 "
                  "re-statement (B 8, h 4; d 64/128, T 64/32; L 1 and 2); kernels = ops that move data (no views)"
                  % torch.__version__)
    if "--write" in sys.argv:
        with open(__file__.replace("count_ops.py", "ops.json"), "w") as f:
            json.dump({k: ({a: b for a, b in v.items() if a != "raw"} if isinstance(v, dict) else v)
                       for k, v in res.items()}, f, indent=1)
    if "--json" in sys.argv:
        print(json.dumps(res, indent=1))
    else:
        for k, v in res.items():
            print(k, {a: b for a, b in v.items() if a != "raw"} if isinstance(v, dict) else v)


if __name__ == "__main__":
    main()
