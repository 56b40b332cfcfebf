// Soft-label (teacher) losses: KL with temperature, Margin-MSE, score MSE.
#pragma once
#include <algorithm>

#include "../fd_math.h"
#include "rows.h"

namespace fd {

// T^2 * KL(p || q), p = softmax(t/T), q = softmax(s/T) over the valid entries; d/ds_i = T (q_i - p_i).
// scratch holds 2n floats (the exponentials, so the last pass needs none).
//
// The logits are shifted before they are scaled, (t_i - max t) / T rather than t_i / T - max(t / T):
// the latter contracts to an fma that keeps the product's rounding error, so a row's largest entry
// got a residual of ~1e-8 instead of 0 and a one-candidate row (p = q = 1) a KL of +-1e-7. Shifted
// first, log p_i - log q_i is the difference of one expression applied to t and to s: exactly 0
// where p == q (one valid entry, or t == s).
template <bool kMasked>
inline double distill_kl_row(const Row& r, float temperature, float coef, float* __restrict g,
                             float* __restrict scratch) {
  FD_ROW_POINTERS(r);
  const float inv_t = 1.0f / temperature;
  float mt = -kInf, ms = -kInf;
#pragma omp simd reduction(max : mt, ms)
  for (int64_t i = 0; i < n; ++i) {
    const bool ok = valid<kMasked>(m, i);
    mt = std::max(mt, ok ? t[i] : -kInf);
    ms = std::max(ms, ok ? s[i] : -kInf);
  }
  float* __restrict et = scratch;
  float* __restrict es = scratch + n;
  float zt = 0.0f, zs = 0.0f;
#pragma omp simd reduction(+ : zt, zs)
  for (int64_t i = 0; i < n; ++i) {
    const bool ok = valid<kMasked>(m, i);
    // Sum the values, not et[i] / es[i] read back: a 512-bit load of a just-stored vector does not
    // forward on every core (measured: 28% of this kernel's time stalled on that reload).
    const float e_t = ok ? fast_exp_nonpositive((t[i] - mt) * inv_t) : 0.0f;
    const float e_s = ok ? fast_exp_nonpositive((s[i] - ms) * inv_t) : 0.0f;
    et[i] = e_t;
    es[i] = e_s;
    zt += e_t;
    zs += e_s;
  }
  const float lzt = fast_log(zt), lzs = fast_log(zs);
  const float inv_zt = 1.0f / zt, inv_zs = 1.0f / zs;
  const float gcoef = coef * temperature;
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    const bool ok = valid<kMasked>(m, i);
    const float p = et[i] * inv_zt;
    const float log_ratio = ((t[i] - mt) * inv_t - lzt) - ((s[i] - ms) * inv_t - lzs);
    // p == 0 contributes 0 (not 0 * -inf); a NaN p still reaches the sum.
    sum += ok && p != 0.0f ? p * log_ratio : 0.0f;
    g[i] += ok ? gcoef * softmax_difference(es[i], inv_zs, et[i], inv_zt) : 0.0f;
  }
  return static_cast<double>(sum) * temperature * temperature;
}

// ((s_0 - s_j) - (t_0 - t_j))^2 for valid j >= 1 (nothing when entry 0 is masked).
template <bool kMasked>
inline double margin_mse_row(const Row& r, float coef, float* __restrict g) {
  FD_ROW_POINTERS(r);
  if (!valid<kMasked>(m, 0)) return 0.0;
  const float s0 = s[0], t0 = t[0];
  float sum = 0.0f, g0 = 0.0f;
#pragma omp simd reduction(+ : sum, g0)
  for (int64_t j = 1; j < n; ++j) {
    const bool ok = valid<kMasked>(m, j);
    const float d = (s0 - s[j]) - (t0 - t[j]);
    sum += ok ? d * d : 0.0f;
    const float dj = ok ? 2.0f * coef * d : 0.0f;
    g0 += dj;
    g[j] -= dj;
  }
  g[0] += g0;
  return sum;
}

template <bool kMasked>
inline double score_mse_row(const Row& r, float coef, float* __restrict g) {
  FD_ROW_POINTERS(r);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    const bool ok = valid<kMasked>(m, i);
    const float d = s[i] - t[i];
    sum += ok ? d * d : 0.0f;
    g[i] += ok ? 2.0f * coef * d : 0.0f;
  }
  return sum;
}

}  // namespace fd
