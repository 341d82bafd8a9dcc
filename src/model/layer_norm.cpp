// GPT-2's LayerNorm with a fused double backward (see tp_layers.h). LibTorch 1.13's own double backward of
// layer_norm is ~40 elementwise passes per call; a 5M model's H·v spent an eighth of its time there.
//
// Per row of length n, with x̂ = (x - μ) r, r = 1 / sqrt(var + eps), g = dy ⊙ w, the first backward is
//   dx = r (g - mean(g) - x̂ mean(g x̂)) =: P(g),   dw = Σ_rows dy ⊙ x̂   (db = Σ_rows dy is linear: plain autograd).
// P is symmetric, so with cotangents A (of dx) and C (of dw) its backward is
//   ∂/∂dy = w ⊙ P(A) + C ⊙ x̂,   ∂/∂w = Σ_rows dy ⊙ P(A),
//   ∂/∂x  = P(C ⊙ dy) + r² [(3 m mean(A x̂) - mean(A g) + mean(A) mean(g)) x̂ - mean(A x̂) (g - mean(g))
//                           - m (A - mean(A))],   m = mean(g x̂),
// where the bracket differentiates r and x̂ inside dx (r depends on x through the variance, x̂ through x - μ and r).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "unlearn/model/attention_kernels.h"
#include "unlearn/model/tp_layers.h"

namespace unlearn {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Terms {
  at::Tensor gx, gw, gdy;
};

/// The formulas above in tensor operations, from x itself, so every term stays differentiable (a third derivative)
/// and any device works. A or C may be undefined (zero).
Terms double_backward_composite(const at::Tensor& x, const at::Tensor& w, const at::Tensor& dy, const at::Tensor& A_in,
                                const at::Tensor& C_in, double eps) {
  auto mean = [](const at::Tensor& t) { return t.mean(-1, true); };
  const at::Tensor h = x - mean(x);
  const at::Tensor r = at::rsqrt(mean(h * h) + eps);
  const at::Tensor xh = h * r, g = dy * w;
  const at::Tensor A = A_in.defined() ? A_in : at::zeros_like(x);
  const at::Tensor C = C_in.defined() ? C_in : at::zeros_like(w);
  auto P = [&](const at::Tensor& u) { return r * (u - mean(u) - xh * mean(u * xh)); };
  const at::Tensor PA = P(A), g_bar = mean(g), m = mean(g * xh), A_bar = mean(A), A_xh = mean(A * xh);
  Terms t;
  t.gdy = w * PA + C * xh;
  t.gw = (dy * PA).reshape({-1, x.size(-1)}).sum(0);
  t.gx = P(C * dy) +
         r * r * ((3.0 * m * A_xh - mean(A * g) + A_bar * g_bar) * xh - A_xh * (g - g_bar) - m * (A - A_bar));
  return t;
}

/// The same in two passes over each row (sums, then outputs), with μ and r from the forward.
Terms double_backward_fused(const at::Tensor& x, const at::Tensor& w, const at::Tensor& dy, const at::Tensor& A,
                            const at::Tensor& C, const at::Tensor& mean, const at::Tensor& rstd, bool need_x,
                            bool need_w, bool need_dy) {
  const std::int64_t n = x.size(-1), rows = x.numel() / n;
  const at::Tensor xc = x.contiguous(), wc = w.contiguous(), dyc = dy.contiguous(), mc = mean.contiguous(),
                   rc = rstd.contiguous();
  const at::Tensor Ac = A.defined() ? A.contiguous() : A, Cc = C.defined() ? C.contiguous() : C;
  Terms t;
  at::Tensor gw_rows;
  if (need_x) t.gx = at::empty_like(xc);
  if (need_dy) t.gdy = at::empty_like(xc);
  if (need_w) gw_rows = at::empty_like(xc);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "layer_norm_double_backward", [&] {
    const scalar_t *X = xc.data_ptr<scalar_t>(), *W = wc.data_ptr<scalar_t>(), *D = dyc.data_ptr<scalar_t>();
    const scalar_t *M = mc.data_ptr<scalar_t>(), *R = rc.data_ptr<scalar_t>();
    const scalar_t* PA = Ac.defined() ? Ac.data_ptr<scalar_t>() : nullptr;
    const scalar_t* PC = Cc.defined() ? Cc.data_ptr<scalar_t>() : nullptr;
    scalar_t* GX = need_x ? t.gx.data_ptr<scalar_t>() : nullptr;
    scalar_t* GD = need_dy ? t.gdy.data_ptr<scalar_t>() : nullptr;
    scalar_t* GW = need_w ? gw_rows.data_ptr<scalar_t>() : nullptr;
    const double inv_n = 1.0 / static_cast<double>(n);
    at::parallel_for(0, rows, std::max<std::int64_t>(1, 8192 / n), [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t row = lo; row < hi; ++row) {
        const std::int64_t o = row * n;
        const double mu = M[row], r = R[row];
        double sg = 0, sgx = 0, sa = 0, sax = 0, sag = 0, su = 0, sux = 0;
        for (std::int64_t i = 0; i < n; ++i) {
          const double xh = (X[o + i] - mu) * r, g = D[o + i] * W[i];
          const double a = PA ? PA[o + i] : 0.0, u = PC ? PC[i] * D[o + i] : 0.0;
          sg += g, sgx += g * xh, sa += a, sax += a * xh, sag += a * g, su += u, sux += u * xh;
        }
        const double g_bar = sg * inv_n, m = sgx * inv_n, A_bar = sa * inv_n, A_xh = sax * inv_n;
        const double u_bar = su * inv_n, u_xh = sux * inv_n;
        const double k_xh = r * r * (3.0 * m * A_xh - sag * inv_n + A_bar * g_bar);
        for (std::int64_t i = 0; i < n; ++i) {
          const double xh = (X[o + i] - mu) * r, g = D[o + i] * W[i];
          const double a = PA ? PA[o + i] : 0.0, c = PC ? PC[i] : 0.0, u = c * D[o + i];
          const double pa = r * (a - A_bar - xh * A_xh);
          if (GD) GD[o + i] = static_cast<scalar_t>(W[i] * pa + c * xh);
          if (GW) GW[o + i] = static_cast<scalar_t>(D[o + i] * pa);
          if (GX)
            GX[o + i] = static_cast<scalar_t>(r * (u - u_bar - xh * u_xh) + k_xh * xh -
                                              r * r * (A_xh * (g - g_bar) + m * (a - A_bar)));
        }
      }
    });
  });
  if (need_w) t.gw = gw_rows.view({rows, n}).sum(0);
  return t;
}

/// (dx, dw) of y = LN(x) w + b for the incoming dy; mean and rstd are x's (from the forward), not inputs.
struct LayerNormGrad : public torch::autograd::Function<LayerNormGrad> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& dy,
                               const at::Tensor& mean, const at::Tensor& rstd, double eps) {
    ctx->save_for_backward({x, w, dy, mean, rstd});
    ctx->saved_data["eps"] = eps;
    auto out = at::native_layer_norm_backward(dy, x, {x.size(-1)}, mean, rstd, w, at::Tensor(), {true, true, false});
    return {std::get<0>(out), std::get<1>(out)};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const at::Tensor &x = s[0], &w = s[1], &dy = s[2];
    const bool need_x = ctx->needs_input_grad(0), need_w = ctx->needs_input_grad(1), need_dy = ctx->needs_input_grad(2);
    Terms t;
    const bool fused =
        !at::GradMode::is_enabled() && x.numel() > 0 && cpu_kernels_apply({x, w, dy, grads[0], grads[1]});
    if (!grads[0].defined() && !grads[1].defined()) {
      // nothing flows back
    } else if (fused) {
      t = double_backward_fused(x, w, dy, grads[0], grads[1], s[3], s[4], need_x, need_w, need_dy);
    } else {
      t = double_backward_composite(x, w, dy, grads[0], grads[1], ctx->saved_data["eps"].toDouble());
    }
    return {need_x ? t.gx : at::Tensor(), need_w ? t.gw : at::Tensor(), need_dy ? t.gdy : at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct LayerNorm : public torch::autograd::Function<LayerNorm> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                            double eps) {
    auto out = at::native_layer_norm(x, {x.size(-1)}, w, b, eps);
    ctx->save_for_backward({x, w, std::get<1>(out), std::get<2>(out)});
    ctx->saved_data["eps"] = eps;
    return std::get<0>(out);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor& dy = grads[0];
    at::Tensor dx, dw, db;
    if (!dy.defined()) return {dx, dw, db, at::Tensor()};
    const auto s = ctx->get_saved_variables();
    if (ctx->needs_input_grad(0) || ctx->needs_input_grad(1)) {
      const auto d = LayerNormGrad::apply(s[0], s[1], dy, s[2], s[3], ctx->saved_data["eps"].toDouble());
      if (ctx->needs_input_grad(0)) dx = d[0];
      if (ctx->needs_input_grad(1)) dw = d[1];
    }
    if (ctx->needs_input_grad(2)) db = dy.reshape({-1, dy.size(-1)}).sum(0);
    return {dx, dw, db, at::Tensor()};
  }
};

}  // namespace

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  return LayerNorm::apply(x, weight, bias, eps);
}

namespace detail {
std::vector<at::Tensor> layer_norm_double_backward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& dy,
                                                   const at::Tensor& A, const at::Tensor& C, double eps, bool fused) {
  if (!fused) {
    const Terms t = double_backward_composite(x, w, dy, A, C, eps);
    return {t.gx, t.gw, t.gdy};
  }
  const auto stats = at::native_layer_norm(x, {x.size(-1)}, w, at::Tensor(), eps);
  const Terms t = double_backward_fused(x, w, dy, A, C, std::get<1>(stats), std::get<2>(stats), true, true, true);
  return {t.gx, t.gw, t.gdy};
}
}  // namespace detail

}  // namespace unlearn
