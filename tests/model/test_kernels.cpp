// The model's hand-written autograd kernels against LibTorch's own operators (float64): batched products for every
// operand layout attention produces, the softmax and LayerNorm with fused double backwards, GELU with its kept
// derivatives, each through its first, second and (composite path) third derivative.
#include <gtest/gtest.h>
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>

#include <functional>
#include <limits>

#include "unlearn/model/attention_kernels.h"
#include "unlearn/model/tp_layers.h"
#include "unlearn/util/error.h"

namespace unlearn::testing {
namespace {

using Fn = std::function<at::Tensor(const std::vector<at::Tensor>&)>;

at::Tensor randn(at::IntArrayRef shape, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(shape, gen, at::TensorOptions().dtype(at::kDouble));
}

/// Relative difference; absolute when the reference is zero.
double rel(const at::Tensor& got, const at::Tensor& want) {
  const double scale = want.norm().item<double>();
  return (got - want).norm().item<double>() / (scale > 0 ? scale : 1.0);
}

std::vector<at::Tensor> leaves(const std::vector<at::Tensor>& xs) {
  std::vector<at::Tensor> out;
  for (const auto& x : xs) out.push_back(x.detach().clone().requires_grad_(true));
  return out;
}

/// Value and `orders` derivatives of <f(x), seed> for ours and LibTorch's function on the same inputs: the gradient,
/// then the gradient of <previous, random> (a second derivative), and so on; each must agree within tol.
void expect_same_derivatives(const Fn& ours, const Fn& theirs, const std::vector<at::Tensor>& inputs, int orders,
                             double tol) {
  std::vector<at::Tensor> results[2];
  const Fn* fns[2] = {&ours, &theirs};
  for (int which = 0; which < 2; ++which) {
    const auto x = leaves(inputs);
    const at::Tensor y = (*fns[which])(x);
    results[which].push_back(y.detach());
    at::Tensor scalar = (y * randn(y.sizes(), 11)).sum();
    for (int order = 1; order <= orders; ++order) {
      // Unused inputs (a bias beyond the first derivative) have zero derivatives: compared as zeros.
      auto d = torch::autograd::grad({scalar}, x, {}, true, order < orders, /*allow_unused=*/true);
      scalar = at::zeros({}, at::kDouble);
      for (std::size_t i = 0; i < d.size(); ++i) {
        if (!d[i].defined()) d[i] = at::zeros_like(x[i]);
        results[which].push_back(d[i].detach());
        if (order < orders) scalar = scalar + (d[i] * randn(d[i].sizes(), 20 * order + i)).sum();
      }
    }
  }
  ASSERT_EQ(results[0].size(), results[1].size());
  for (std::size_t i = 0; i < results[0].size(); ++i)
    EXPECT_LE(rel(results[0][i], results[1][i]), tol) << "result " << i << " (the value, then each order's grads)";
}

TEST(BatchedMatmul, EqualsMatmulForEveryOperandLayout) {
  const at::Tensor base = randn({2, 5, 3, 4}, 1);  // [B, T, H, hd]
  const at::Tensor other = randn({2, 5, 3, 4}, 2);
  struct Case {
    const char* name;
    at::Tensor a, b;
  };
  const std::vector<Case> cases = {
      {"contiguous", base.transpose(1, 2).contiguous(), other.transpose(1, 2).contiguous().transpose(-2, -1)},
      {"head-interleaved views", base.transpose(1, 2), other.transpose(1, 2).transpose(-2, -1)},
      {"transposed left", other.transpose(1, 2).contiguous().transpose(-2, -1), base.transpose(1, 2).contiguous()},
      {"expanded batch (GQA)", base.transpose(1, 2).contiguous().view({2, 3, 1, 5, 4}).expand({2, 3, 2, 5, 4}),
       other.transpose(1, 2).unsqueeze(2).expand({2, 3, 2, 5, 4}).transpose(-2, -1)},
      {"strided slice", randn({2, 3, 5, 9}, 3).narrow(-1, 2, 4), randn({2, 3, 8, 6}, 4).narrow(-2, 1, 4)},
      {"single row and column", randn({3, 1, 4}, 5), randn({3, 4, 1}, 6)},
      {"empty inner dimension", randn({2, 3, 0}, 7), randn({2, 0, 4}, 8)},
  };
  for (const auto& c : cases) {
    const at::Tensor want = at::matmul(c.a, c.b) * 0.5;
    const at::Tensor got = batched_matmul(c.a, c.b, 0.5);
    ASSERT_EQ(got.sizes(), want.sizes()) << c.name;
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-14) << c.name;
    const at::Tensor got32 = batched_matmul(c.a.to(at::kFloat), c.b.to(at::kFloat), 0.5);
    EXPECT_LE((got32.to(at::kDouble) - want).abs().max().item<double>(), 1e-5) << c.name << " (float32)";
  }
  EXPECT_THROW(batched_matmul(randn({2, 3, 4}, 1), randn({3, 4, 2}, 2)), Error);  // batch dims differ
}

TEST(BatchedMatmul, DerivativesEqualMatmul) {
  const Fn ours = [](const std::vector<at::Tensor>& x) {
    return batched_matmul(x[0].transpose(1, 2), x[1].transpose(1, 2).transpose(-2, -1), 0.25);
  };
  const Fn theirs = [](const std::vector<at::Tensor>& x) {
    return at::matmul(x[0].transpose(1, 2), x[1].transpose(1, 2).transpose(-2, -1)) * 0.25;
  };
  expect_same_derivatives(ours, theirs, {randn({2, 6, 3, 4}, 1), randn({2, 6, 3, 4}, 2)}, 2, 1e-13);  // bilinear
}

TEST(SoftmaxLastDim, DerivativesEqualSoftmaxWithMaskedEntries) {
  // Scores with a causal -inf mask, as attention builds them: the masked entries carry no probability or gradient.
  const at::Tensor mask = at::ones({7, 7}, at::kBool).tril().logical_not();
  const Fn ours = [&](const std::vector<at::Tensor>& x) {
    return softmax_last_dim(x[0].masked_fill(mask, -std::numeric_limits<double>::infinity()));
  };
  const Fn theirs = [&](const std::vector<at::Tensor>& x) {
    return at::softmax(x[0].masked_fill(mask, -std::numeric_limits<double>::infinity()), -1);
  };
  expect_same_derivatives(ours, theirs, {randn({2, 3, 7, 7}, 3)}, 3, 1e-12);
}

TEST(GeluTanh, DerivativesEqualGeluTanh) {
  const Fn ours = [](const std::vector<at::Tensor>& x) { return gelu_tanh(x[0]); };
  const Fn theirs = [](const std::vector<at::Tensor>& x) { return at::gelu(x[0], "tanh"); };
  // The last order of each run takes the no-graph path (cached gelu' and grad·gelu''), the earlier ones the
  // differentiable path: orders 1, 2 and 3 cover both at every level.
  for (int orders = 1; orders <= 3; ++orders)
    expect_same_derivatives(ours, theirs, {randn({4, 5, 6}, 12) * 2.0}, orders, 1e-12);
}

TEST(GeluTanh, RepeatedProductsOnOneGraphEqualFreshOnes) {
  // As a Newton step runs them: one differentiable gradient, then several H·v and backward passes on the same graph,
  // the later ones from the derivatives the first kept.
  const at::Tensor x0 = randn({3, 8}, 13) * 2.0, seed = randn({3, 8}, 14);
  auto products = [&](bool ours) {
    const at::Tensor x = x0.clone().requires_grad_(true);
    const at::Tensor y = ours ? gelu_tanh(x) : at::gelu(x, "tanh");
    const at::Tensor g = torch::autograd::grad({(y * seed).sum()}, {x}, {}, true, true)[0];
    std::vector<at::Tensor> out;
    for (std::uint64_t k = 0; k < 3; ++k) {
      out.push_back(torch::autograd::grad({(g * randn({3, 8}, 20 + k)).sum()}, {x}, {}, true)[0]);  // H·v
      out.push_back(torch::autograd::grad({y}, {x}, {randn({3, 8}, 30 + k)}, true)[0]);             // Jᵀu
    }
    return out;
  };
  const auto got = products(true), want = products(false);
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_LE(rel(got[i], want[i]), 1e-13) << "product " << i;
}

TEST(LayerNorm, DerivativesEqualLayerNorm) {
  const Fn ours = [](const std::vector<at::Tensor>& x) { return layer_norm(x[0], x[1], x[2], 1e-5); };
  const Fn theirs = [](const std::vector<at::Tensor>& x) { return at::layer_norm(x[0], {6}, x[1], x[2], 1e-5); };
  // Second order only: LibTorch 1.13's layer_norm double backward takes the mean and rstd as constants, so its third
  // derivative is not a reference (ours is checked against finite differences below).
  expect_same_derivatives(ours, theirs, {randn({3, 4, 6}, 4), randn({6}, 5) + 1.0, randn({6}, 6)}, 2, 1e-11);
}

TEST(LayerNorm, ThirdDerivativeMatchesFiniteDifferences) {
  const at::Tensor w = randn({6}, 5) + 1.0, b = randn({6}, 6), seed = randn({3, 6}, 7), v = randn({3, 6}, 8);
  const at::Tensor u = randn({3, 6}, 9), e = randn({3, 6}, 10);
  // S(x) = <∇<∇<LN(x), seed>, v>, u>: a second derivative of LN contracted; its gradient is a third derivative.
  auto S = [&](const at::Tensor& x0, bool keep) {
    const at::Tensor x = x0.detach().clone().requires_grad_(true);
    const at::Tensor g = torch::autograd::grad({(layer_norm(x, w, b, 1e-5) * seed).sum()}, {x}, {}, true, true)[0];
    const at::Tensor h = torch::autograd::grad({(g * v).sum()}, {x}, {}, true, true)[0];
    const at::Tensor s = (h * u).sum();
    return keep ? torch::autograd::grad({s}, {x})[0] : s.detach();
  };
  const at::Tensor x = randn({3, 6}, 4);
  const double eps = 1e-4;
  const double fd = (S(x + eps * e, false) - S(x - eps * e, false)).item<double>() / (2 * eps);
  const double ad = (S(x, true) * e).sum().item<double>();
  EXPECT_NEAR(ad, fd, 1e-5 * std::abs(fd));  // central differences: O(eps²) truncation, ~2e-6 here
}

TEST(LayerNorm, FusedDoubleBackwardEqualsItsCompositeForm) {
  const at::Tensor x = randn({5, 9}, 1) * 3.0 + 1.0, w = randn({9}, 2), dy = randn({5, 9}, 3);
  const at::Tensor A = randn({5, 9}, 4), C = randn({9}, 5);
  for (const auto& [a, c] : {std::pair{A, C}, std::pair{A, at::Tensor()}, std::pair{at::Tensor(), C}}) {
    const auto fused = detail::layer_norm_double_backward(x, w, dy, a, c, 1e-5, true);
    const auto composite = detail::layer_norm_double_backward(x, w, dy, a, c, 1e-5, false);
    for (int i = 0; i < 3; ++i) EXPECT_LE(rel(fused[i], composite[i]), 1e-13) << "output " << i;
  }
}

}  // namespace
}  // namespace unlearn::testing
