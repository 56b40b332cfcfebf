// The optimizer update of the training loop (src/distill/optimizer.ts), natively: AdamW over one
// parameter's float32 arrays. Arithmetic is float64 per element with every intermediate rounded
// where the JS definition rounds it (m and v stored as float32 before use), FMA contraction off, so
// the result is bit-identical to evaluating the same formula in JS.
#pragma once
#include <cstdint>

#include "status.h"

namespace fd {

struct AdamWArgs {
  const float* p;  // parameter (read)
  const float* g;  // gradient (read)
  const float* m;  // first moment (read)
  const float* v;  // second moment (read)
  float* out;      // new parameter (may be p)
  float* m_out;    // new first moment (may be m)
  float* v_out;    // new second moment (may be v)
  int64_t n;
  double beta1, beta2, eps;
  double decay;      // 1 - lr * weight_decay, or 1
  double step_size;  // lr / (1 - beta1^t)
  double sqrt_bc2;   // sqrt(1 - beta2^t)
  double scale;      // gradient clipping factor
};

// g' = g * scale; m_out = b1 m + (1-b1) g'; v_out = b2 v + (1-b2) g'^2;
// out = p * decay - step_size * m_out / (sqrt(v_out)/sqrt_bc2 + eps)
void adamw_update_cpu(const AdamWArgs& a);

// Sum of x[i]^2 in float64, in a fixed tree (kernels/cpu/optimizer.cpp): the same bits for any
// thread count.
double sum_squares_cpu(const float* x, int64_t n);

// ---- CUDA (kernels/cuda/optimizer.cu; kernels/cuda/no_cuda.cpp in CPU builds): device pointers ----
// The same update, bit-identical to adamw_update_cpu (float64, no contraction). Queued, not synchronised.
Status adamw_update_cuda(const AdamWArgs& a);
// *out_host = sum of x[i]^2 (float64 accumulation, a fixed tree order: deterministic, but not the
// bits of the sequential CPU sum); synchronises (it returns a host value).
Status sum_squares_cuda(const float* x, int64_t n, double* out_host);

}  // namespace fd
