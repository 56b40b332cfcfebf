// Per-element math of LayerNorm and GELU (kernels/nn.h), shared by the CPU and CUDA kernels so the
// two compute the same formulas in the same order. Row sums and their order are each side's own.
#pragma once
#include <math.h>

#include "fd_math.h"  // FD_HD

namespace fd {
namespace nn {

// Math.SQRT2 rounded to float: the scalar tfjs's composite divides by (cross_encoder.ts's old GELU).
constexpr float kSqrt2 = 1.41421356237309504880f;
constexpr float kInvSqrt2Pi = 0.398942280401432677941f;

// GELU in erf form, written exactly as the composite it replaces, (x * 0.5) * (1 + erf(x / sqrt2)),
// so with the same erf it gives the same bits. M supplies erf and exp (elementwise_math.h's on the
// CPU, CUDA's erff / expf on the GPU). gelu(-inf) = -inf * 0 = NaN, as the composite.
template <class M>
FD_HD float gelu(float x) {
  return (x * 0.5f) * (1.0f + M::erf(x / kSqrt2));
}

// d gelu / dx * dy = dy * (Phi(x) + x phi(x)). phi(x) underflows to 0 beyond |x| = 15 (e^-112.5 is
// below the smallest float); the select also keeps +-inf * 0 out, so gelu'(+inf) = 1, gelu'(-inf) = 0.
// A NaN x gives a NaN Phi, so NaN still propagates.
// e = erf(x / sqrt2), computed here or kept from forward (gelu_erf): the same value either way, so
// the same bits.
template <class M>
FD_HD float gelu_grad_from_erf(float dy, float x, float e) {
  const float cdf = 0.5f * (1.0f + e);
  const float ax = x < 0.0f ? -x : x;
  const float xpdf = ax < 15.0f ? x * (M::exp(-0.5f * (x * x)) * kInvSqrt2Pi) : 0.0f;
  return dy * (cdf + xpdf);
}

template <class M>
FD_HD float gelu_grad(float dy, float x) {
  return gelu_grad_from_erf<M>(dy, x, M::erf(x / kSqrt2));
}

// gelu from erf(x / sqrt2) (e): forward keeps e for backward.
FD_HD float gelu_from_erf(float x, float e) { return (x * 0.5f) * (1.0f + e); }
template <class M>
FD_HD float gelu_erf(float x) {
  return M::erf(x / kSqrt2);
}

// 1 / sqrt(var + eps) from the row's double variance, rounded once to float.
FD_HD float layer_norm_rstd(double var, float eps) {
  return static_cast<float>(1.0 / sqrt(var + static_cast<double>(eps)));
}

FD_HD float layer_norm_y(float x, float mean, float rstd, float gamma, float beta) {
  return (x - mean) * rstd * gamma + beta;
}

// xhat = (x - mean) * rstd, the normalised input, as forward computed it.
FD_HD float layer_norm_xhat(float x, float mean, float rstd) { return (x - mean) * rstd; }

// dx for one element from g = dy * gamma, given the row's c1 = mean(g) and c2 = mean(g * xhat).
// g must be the product rounded to float, the same value the row sums added: computed here, the
// compiler may contract dy * gamma - c1 into an FMA, whose unrounded product does not cancel against
// c1 (cols = 1 then gives rstd times a rounding error instead of exactly 0).
FD_HD float layer_norm_dx(float g, float xhat, float rstd, float c1, float c2) { return rstd * (g - c1 - xhat * c2); }

}  // namespace nn
}  // namespace fd
