// Attention kernels (see attention_kernels.h): batched products straight to the BLAS, a softmax with fused backward
// passes.
#include "unlearn/model/attention_kernels.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "unlearn/util/error.h"

#ifndef UNLEARN_HAVE_BLAS
#define UNLEARN_HAVE_BLAS 0
#endif

#if UNLEARN_HAVE_BLAS
extern "C" {
// Fortran BLAS (LP64), from the libblas.so.3 that LibTorch links too.
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc);
}
#endif

namespace unlearn {
namespace {

// How the column-major BLAS reads a row-major [rows, cols] matrix with strides (sr, sc): with contiguous rows it is
// the transpose stored column-major ('N', leading dimension sr); with contiguous columns it is the matrix itself
// stored column-major, so the BLAS transposes it ('T', leading dimension sc). Only dense matrices are read in place:
// a head of a [B, T, H, hd] tensor (leading dimension H·hd, often a power of two) ran the product 2x slower than a
// copy of it did, and the copy costs O(rows·cols) against the product's O(rows·cols·n).
struct BlasOperand {
  char trans = 'N';
  int ld = 0;
  bool ok = false;
};

BlasOperand blas_operand(std::int64_t rows, std::int64_t cols, std::int64_t sr, std::int64_t sc) {
  const std::int64_t r1 = std::max<std::int64_t>(rows, 1), c1 = std::max<std::int64_t>(cols, 1);
  if ((sc == 1 || cols == 1) && (rows == 1 || sr == c1)) return {'N', static_cast<int>(c1), true};
  if ((sr == 1 || rows == 1) && (cols == 1 || sc == r1)) return {'T', static_cast<int>(r1), true};
  return {};
}

// A dense copy that keeps the unit-stride dimension (a column-contiguous matrix stays column-major: no transposing
// copy).
at::Tensor dense(const at::Tensor& x) {
  if (x.stride(-2) == 1 && x.size(-2) > 1) return x.transpose(-2, -1).contiguous().transpose(-2, -1);
  return x.contiguous();
}

/// `x` itself when the BLAS can read its matrices in place, else a dense copy.
at::Tensor compact(const at::Tensor& x) {
  return blas_operand(x.size(-2), x.size(-1), x.stride(-2), x.stride(-1)).ok ? x : dense(x);
}

#if UNLEARN_HAVE_BLAS
void gemm(char ta, char tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb,
          float* c, int ldc) {
  const float beta = 0;
  sgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}
void gemm(char ta, char tb, int m, int n, int k, double alpha, const double* a, int lda, const double* b, int ldb,
          double* c, int ldc) {
  const double beta = 0;
  dgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}

at::Tensor blas_product(const at::Tensor& a, const at::Tensor& b, double alpha) {
  const std::int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  std::vector<std::int64_t> shape(a.sizes().begin(), a.sizes().end());
  shape.back() = n;
  at::Tensor c = at::empty(shape, a.options());
  if (c.numel() == 0) return c;
  if (k == 0) return c.zero_();

  at::Tensor aa = a, bb = b;
  BlasOperand A = blas_operand(m, k, a.stride(-2), a.stride(-1));
  if (!A.ok) aa = dense(a), A = blas_operand(m, k, aa.stride(-2), aa.stride(-1));
  BlasOperand B = blas_operand(k, n, b.stride(-2), b.stride(-1));
  if (!B.ok) bb = dense(b), B = blas_operand(k, n, bb.stride(-2), bb.stride(-1));

  // Element offset of every matrix of the batch (strides may be anything, 0 for expanded dims).
  const std::int64_t batch_dims = a.dim() - 2, count = c.numel() / (m * n);
  std::vector<std::int64_t> off_a(static_cast<std::size_t>(count)), off_b(off_a.size());
  for (std::int64_t i = 0; i < count; ++i) {
    std::int64_t rest = i, oa = 0, ob = 0;
    for (std::int64_t d = batch_dims - 1; d >= 0; --d) {
      const std::int64_t idx = rest % a.size(d);
      rest /= a.size(d);
      oa += idx * aa.stride(d);
      ob += idx * bb.stride(d);
    }
    off_a[static_cast<std::size_t>(i)] = oa;
    off_b[static_cast<std::size_t>(i)] = ob;
  }
  // C = A B row-major is Cᵀ = Bᵀ Aᵀ column-major: the BLAS gets b first. One matrix per call, single-threaded
  // inside ATen's parallel region (the OpenMP BLAS does not nest), so small products do not pay a thread fork each.
  const std::int64_t grain = std::max<std::int64_t>(1, (std::int64_t{1} << 18) / std::max<std::int64_t>(1, m * n * k));
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "batched_matmul", [&] {
    const scalar_t* pa = aa.data_ptr<scalar_t>();
    const scalar_t* pb = bb.data_ptr<scalar_t>();
    scalar_t* pc = c.data_ptr<scalar_t>();
    const auto s = static_cast<scalar_t>(alpha);
    at::parallel_for(0, count, grain, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i) {
        const auto j = static_cast<std::size_t>(i);
        gemm(B.trans, A.trans, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), s, pb + off_b[j], B.ld,
             pa + off_a[j], A.ld, pc + i * m * n, static_cast<int>(n));
      }
    });
  });
  return c;
}

#endif  // UNLEARN_HAVE_BLAS

at::Tensor product_values(const at::Tensor& a, const at::Tensor& b, double alpha) {
  UNLEARN_CHECK(a.dim() >= 2 && a.dim() == b.dim() && a.size(-1) == b.size(-2) &&
                    a.sizes().slice(0, a.dim() - 2) == b.sizes().slice(0, b.dim() - 2),
                "batched_matmul: shapes " << a.sizes() << " and " << b.sizes() << " do not multiply");
#if UNLEARN_HAVE_BLAS
  if (cpu_kernels_apply({a, b}) && a.size(-2) < INT_MAX && a.size(-1) < INT_MAX && b.size(-1) < INT_MAX)
    return blas_product(a, b, alpha);
#endif
  at::Tensor c = at::matmul(a, b);
  return alpha == 1.0 ? c : c.mul_(alpha);
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct BatchedMatmul : public torch::autograd::Function<BatchedMatmul> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b, double alpha) {
    ctx->save_for_backward({a, b});
    ctx->saved_data["alpha"] = alpha;
    return product_values(a, b, alpha);
  }
  // d(alpha A B) = alpha (dA B + A dB): both gradients are the same product again, so the backward is
  // differentiable by this Function too.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const double alpha = ctx->saved_data["alpha"].toDouble();
    at::Tensor ga, gb;
    if (!grads[0].defined()) return {ga, gb, at::Tensor()};
    // Compacted once here rather than inside both products (attention's output gradient arrives head-interleaved).
    const at::Tensor g = compact(grads[0]);
    if (ctx->needs_input_grad(0)) ga = BatchedMatmul::apply(g, saved[1].transpose(-2, -1), alpha);
    if (ctx->needs_input_grad(1)) gb = BatchedMatmul::apply(saved[0].transpose(-2, -1), g, alpha);
    return {ga, gb, at::Tensor()};
  }
};

// ---- softmax ----

/// f(first, n) for every row of the last dimension, rows spread over ATen's threads.
template <typename F>
void for_rows(std::int64_t rows, std::int64_t n, F f) {
  at::parallel_for(0, rows, std::max<std::int64_t>(1, 16384 / n), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r) f(r * n);
  });
}

/// ds = p ⊙ (dp - <p, dp>) per row.
at::Tensor softmax_grad_values(const at::Tensor& p, const at::Tensor& dp) {
  if (!cpu_kernels_apply({p, dp}) || p.dim() == 0 || p.size(-1) == 0)
    return at::_softmax_backward_data(dp, p, -1, p.scalar_type());
  const at::Tensor pc = p.contiguous(), dc = dp.contiguous();
  at::Tensor out = at::empty_like(pc, at::MemoryFormat::Contiguous);
  const std::int64_t n = p.size(-1);
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "softmax_grad", [&] {
    const scalar_t* P = pc.data_ptr<scalar_t>();
    const scalar_t* D = dc.data_ptr<scalar_t>();
    scalar_t* O = out.data_ptr<scalar_t>();
    for_rows(p.numel() / n, n, [&](std::int64_t row) {
      scalar_t r = 0;
      for (std::int64_t i = row; i < row + n; ++i) r += P[i] * D[i];
      for (std::int64_t i = row; i < row + n; ++i) O[i] = P[i] * (D[i] - r);
    });
  });
  return out;
}

struct SoftmaxGrad : public torch::autograd::Function<SoftmaxGrad> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& p, const at::Tensor& dp) {
    ctx->save_for_backward({p, dp});
    return softmax_grad_values(p, dp);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &p = saved[0], &dp = saved[1], &g = grads[0];
    const bool need_p = ctx->needs_input_grad(0), need_dp = ctx->needs_input_grad(1);
    at::Tensor gp, gdp;
    if (!g.defined()) return {gp, gdp};
    if (at::GradMode::is_enabled() || !cpu_kernels_apply({p, dp, g}) || p.dim() == 0 || p.size(-1) == 0) {
      // Composite, so that a further derivative sees every term.
      if (need_dp) gdp = SoftmaxGrad::apply(p, g);
      if (need_p) gp = g * (dp - (p * dp).sum(-1, true)) - dp * (g * p).sum(-1, true);
      return {gp, gdp};
    }
    const at::Tensor pc = p.contiguous(), dc = dp.contiguous(), gc = g.contiguous();
    if (need_p) gp = at::empty_like(pc, at::MemoryFormat::Contiguous);
    if (need_dp) gdp = at::empty_like(pc, at::MemoryFormat::Contiguous);
    const std::int64_t n = p.size(-1);
    AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "softmax_grad_backward", [&] {
      const scalar_t* P = pc.data_ptr<scalar_t>();
      const scalar_t* D = dc.data_ptr<scalar_t>();
      const scalar_t* G = gc.data_ptr<scalar_t>();
      scalar_t* GP = need_p ? gp.data_ptr<scalar_t>() : nullptr;
      scalar_t* GD = need_dp ? gdp.data_ptr<scalar_t>() : nullptr;
      for_rows(p.numel() / n, n, [&](std::int64_t row) {
        scalar_t gp_dot = 0, p_dp = 0;  // <g, p>, <p, dp>
        for (std::int64_t i = row; i < row + n; ++i) gp_dot += G[i] * P[i], p_dp += P[i] * D[i];
        if (GD)
          for (std::int64_t i = row; i < row + n; ++i) GD[i] = P[i] * (G[i] - gp_dot);
        if (GP)
          for (std::int64_t i = row; i < row + n; ++i) GP[i] = G[i] * (D[i] - p_dp) - D[i] * gp_dot;
      });
    });
    return {gp, gdp};
  }
};

struct Softmax : public torch::autograd::Function<Softmax> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& s) {
    at::Tensor p = at::_softmax(s, -1, false);
    ctx->save_for_backward({p});
    return p;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor()};
    return {SoftmaxGrad::apply(ctx->get_saved_variables()[0], grads[0])};
  }
};

}  // namespace

bool cpu_kernels_apply(std::initializer_list<at::Tensor> tensors) {
  const at::Tensor* first = nullptr;
  for (const at::Tensor& t : tensors) {
    if (!t.defined()) continue;
    if (!first) first = &t;
    if (!t.device().is_cpu() || t.scalar_type() != first->scalar_type()) return false;
  }
  return first && (first->scalar_type() == at::kFloat || first->scalar_type() == at::kDouble);
}

at::Tensor softmax_last_dim(const at::Tensor& s) { return Softmax::apply(s); }

at::Tensor batched_matmul(const at::Tensor& a, const at::Tensor& b, double alpha) {
  return BatchedMatmul::apply(a, b, alpha);
}

}  // namespace unlearn
