// Listwise hard-label loss: softmax cross-entropy against the row's label distribution y / sum(y).
#pragma once
#include <algorithm>

#include "../fd_math.h"
#include "rows.h"

namespace fd {

template <bool kMasked>
inline float label_sum(const Row& r) {
  FD_ROW_POINTERS(r);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += valid<kMasked>(m, i) ? y[i] : 0.0f;
  return sum;
}

// A row is in the set unless sum(y) <= 0 (rows with sum(y) <= 0 add nothing and get no gradient);
// a NaN label makes the sum NaN, which keeps the row in, so the NaN reaches the loss and the gradient.
template <bool kMasked>
inline bool listwise_row_in_set(const Row& r) {
  return !(label_sum<kMasked>(r) <= 0.0f);
}

// loss = lse(s) - sum_i y_i s_i / Y  (because sum_i y_i / Y = 1); d/ds_i = softmax(s)_i - y_i / Y.
template <bool kMasked>
inline double listwise_softmax_ce_row(const Row& r, float coef, float* __restrict g) {
  FD_ROW_POINTERS(r);
  const float y_sum = label_sum<kMasked>(r);
  if (y_sum <= 0.0f) return 0.0;
  float mx = -kInf;
#pragma omp simd reduction(max : mx)
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, valid<kMasked>(m, i) ? s[i] : -kInf);
  float z = 0.0f, ys = 0.0f;
#pragma omp simd reduction(+ : z, ys)
  for (int64_t i = 0; i < n; ++i) {
    const bool ok = valid<kMasked>(m, i);
    z += ok ? fast_exp_nonpositive(s[i] - mx) : 0.0f;
    ys += ok ? y[i] * s[i] : 0.0f;
  }
  const float inv_y = 1.0f / y_sum, inv_z = 1.0f / z;
  const float lse = mx + fast_log(z);
  // softmax as exp(s - max) / z, not exp(s - lse): lse rounded to float loses ~1e-3 relative at |s| ~ 1e4.
#pragma omp simd
  for (int64_t i = 0; i < n; ++i)
    g[i] += valid<kMasked>(m, i) ? coef * (fast_exp_nonpositive(s[i] - mx) * inv_z - y[i] * inv_y) : 0.0f;
  return static_cast<double>(lse) - static_cast<double>(ys) * inv_y;
}

}  // namespace fd
