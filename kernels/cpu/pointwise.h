// Pointwise hard-label loss: BCE on logits. Row functions return the row's unnormalized loss sum and
// add coef * d(sum)/ds into g.
#pragma once
#include "../fd_math.h"
#include "rows.h"

namespace fd {

template <bool kMasked>
inline double pointwise_bce_row(const Row& r, float coef, float* __restrict g) {
  FD_ROW_POINTERS(r);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    const bool ok = valid<kMasked>(m, i);
    const SoftplusSigmoid sp = softplus_sigmoid(s[i]);
    sum += ok ? sp.softplus - y[i] * s[i] : 0.0f;
    g[i] += ok ? coef * (sp.sigmoid - y[i]) : 0.0f;
  }
  return sum;
}

}  // namespace fd
