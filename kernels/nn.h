// The kernel contract of the fused network layers the cross-encoder uses: LayerNorm over the last
// axis (optionally of x + bias + residual: a dense layer's bias and the residual branch folded in)
// and GELU (erf form, optionally of x + bias), each forward and backward in one pass. kernels/cpu/ and kernels/cuda/
// implement the same functions; the per-element math they share is kernels/nn_math.h. No N-API, no JS.
#pragma once
#include <cstdint>

#include "status.h"

namespace fd {

// y = (x - mean) * rstd * gamma + beta over each row of x [rows, cols] (BERT's LayerNorm, PyTorch's
// native_layer_norm): mean = the row's mean, rstd = 1 / sqrt(var + eps) with var the biased mean of
// squared deviations (two-pass, accumulated in double). gamma and beta are [cols]. mean and rstd
// ([rows] each) receive the row statistics backward needs; either may be null when not wanted.
// y must not overlap any input. mean is stored (and used) as a float, as PyTorch does: where a row's
// mean is large against its spread, y is accurate to about one ulp of x times rstd.
// With bias ([cols]) and/or residual ([rows, cols]), the row normalised is s = (x + bias) + residual,
// each add rounded to float: the bits of the composite LayerNorm(add(add(x, bias), residual)).
struct LayerNormArgs {
  const float* x = nullptr;
  const float* bias = nullptr;      // [cols] or null
  const float* residual = nullptr;  // [rows, cols] or null
  const float* gamma = nullptr;
  const float* beta = nullptr;
  int64_t rows = 0, cols = 0;
  float eps = 0.0f;  // >= 0
  float* y = nullptr;
  float* mean = nullptr;  // [rows] or null
  float* rstd = nullptr;  // [rows] or null
};

// Backward of layer_norm from its saved mean and rstd. With xhat = (x - mean) * rstd, g = dy * gamma:
//   dx     = rstd * (g - mean_row(g) - xhat * mean_row(g * xhat))
//   dgamma = sum over rows of dy * xhat,  dbeta = sum over rows of dy
// dgamma and dbeta are summed per block of rows and the block partials added in block order (no
// atomics): the same bits for any thread count. Outputs must not overlap the inputs or each other.
// With bias / residual (as forward had them) xhat is of s = (x + bias) + residual, recomputed; the
// gradient of s is dx, which is also residual's; dbias (when not null) = sum over rows of dx.
struct LayerNormGradArgs {
  const float* dy = nullptr;
  const float* x = nullptr;
  const float* bias = nullptr;      // [cols] or null
  const float* residual = nullptr;  // [rows, cols] or null
  const float* gamma = nullptr;
  const float* mean = nullptr;
  const float* rstd = nullptr;
  int64_t rows = 0, cols = 0;
  float* dx = nullptr;
  float* dgamma = nullptr;  // [cols]
  float* dbeta = nullptr;   // [cols]
  float* dbias = nullptr;   // [cols] or null
};

// ---- CPU (kernels/cpu/layer_norm.cpp, gelu.cpp) ----
// kNoMemory when the dgamma/dbeta partials cannot be allocated; kOk otherwise.
Status layer_norm_cpu(const LayerNormArgs& args);
Status layer_norm_grad_cpu(const LayerNormGradArgs& args);
// y = 0.5 x (1 + erf(x / sqrt 2)), evaluated as tfjs's composite (x * 0.5) * (1 + erf(x / sqrt2f)).
// y may be x.
void gelu_cpu(const float* x, float* y, int64_t n);
// dx = dy * (Phi(x) + x phi(x)), Phi/phi the standard normal cdf/pdf (gelu'(+-inf) = 1 / 0).
// dx may be dy.
void gelu_grad_cpu(const float* dy, const float* x, float* dx, int64_t n);
// y = gelu(x + bias) over x [rows, cols], bias [cols] (x + bias rounded to float: the bits of the
// composite gelu(add(x, bias))). y may be x. erf_out (null: not wanted) receives erf((x + bias) /
// sqrt2), the part of the gradient forward already computes (it must not overlap x or y).
struct BiasGeluArgs {
  const float* x = nullptr;
  const float* bias = nullptr;  // [cols]
  int64_t rows = 0, cols = 0;
  float* y = nullptr;
  float* erf_out = nullptr;  // [rows, cols] or null
};
void bias_gelu_cpu(const BiasGeluArgs& args);
// dx = gelu_grad(dy, x + bias), dbias = sum over rows of dx (per block of rows in double, blocks
// added in block order: the same bits for any thread count). dx may be dy. With erf (forward's
// erf_out) backward computes no erf of its own: the same bits, about 40% less work.
// kNoMemory when the partials cannot be allocated.
struct BiasGeluGradArgs {
  const float* dy = nullptr;
  const float* x = nullptr;
  const float* bias = nullptr;  // [cols]
  const float* erf = nullptr;   // [rows, cols] or null
  int64_t rows = 0, cols = 0;
  float* dx = nullptr;
  float* dbias = nullptr;  // [cols]
};
Status bias_gelu_grad_cpu(const BiasGeluGradArgs& args);

// ---- CUDA (kernels/cuda/layer_norm.cu, gelu.cu; kNoCuda stubs in CPU builds) ----
// Device pointers, the same semantics; queued on fd::device::stream(), no synchronisation.
Status layer_norm_cuda(const LayerNormArgs& args);
Status layer_norm_grad_cuda(const LayerNormGradArgs& args);
Status gelu_cuda(const float* x, float* y, int64_t n);
Status gelu_grad_cuda(const float* dy, const float* x, float* dx, int64_t n);
// dbias: one thread per column adds the rows in order in double (deterministic; not the CPU's bits).
Status bias_gelu_cuda(const BiasGeluArgs& args);
Status bias_gelu_grad_cuda(const BiasGeluGradArgs& args);

}  // namespace fd
