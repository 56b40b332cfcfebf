// Softmax and log-softmax over the last axis, rows in parallel. Per row, two passes over data that
// stays in L1 for any real row length: the max (NaN-propagating, as tfjs's Max), then e = exp(x - max)
// stored and summed, then one scaling pass. exp is fd_math's polynomial (vectorised; ~2 ulp), its
// argument is <= 0 after the max is subtracted, so nothing overflows: rows of +-1e30 are fine. A row
// with a NaN, with +Inf (Inf - Inf), or of only -Inf (-Inf - -Inf) gives NaN everywhere, as tfjs does.
#include <cmath>

#include "../fd_math.h"
#include "../softmax.h"
#include "parallel.h"

namespace fd {
namespace {

constexpr int kLanes = 16;

// NaN-propagating max (as tfjs's Max): a plain simd max plus a "saw a NaN" flag (max ignoring NaN
// is order-independent, so OpenMP's reduction order does not matter).
float row_max(const float* __restrict x, int64_t n) {
  float m = -kInf;
  int32_t any_nan = 0;
#pragma omp simd reduction(max : m) reduction(| : any_nan)
  for (int64_t i = 0; i < n; ++i) {
    m = x[i] > m ? x[i] : m;
    any_nan |= x[i] != x[i];
  }
  return any_nan ? bits_float(0x7fc00000) : m;
}

// out[i] = exp(x[i] - m); returns the sum (16 float lanes, combined in a fixed order).
float exp_and_sum(const float* __restrict x, int64_t n, float m, float* __restrict out) {
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const float e = fast_exp_nonpositive(x[i + j] - m);
      out[i + j] = e;
      lanes[j] += e;
    }
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) lanes[j] += lanes[j + w];
  float s = lanes[0];
  for (; i < n; ++i) {
    const float e = fast_exp_nonpositive(x[i] - m);
    out[i] = e;
    s += e;
  }
  return s;
}

// Sum of exp(x[i] - m) without storing (log-softmax needs only the sum).
float sum_exp(const float* __restrict x, int64_t n, float m) {
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lanes[j] += fast_exp_nonpositive(x[i + j] - m);
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) lanes[j] += lanes[j + w];
  float s = lanes[0];
  for (; i < n; ++i) s += fast_exp_nonpositive(x[i] - m);
  return s;
}

void softmax_row(const float* x, int64_t n, float* out) {
  const float m = row_max(x, n);
  const float s = exp_and_sum(x, n, m, out);
  const float inv = 1.0f / s;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] *= inv;
}

void log_softmax_row(const float* x, int64_t n, float* out) {
  const float m = row_max(x, n);
  const float log_sum = static_cast<float>(std::log(static_cast<double>(sum_exp(x, n, m))));
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] - m) - log_sum;  // as tfjs's logSoftmax: (x - max) - log(sum)
}

}  // namespace

void scaled_softmax_row(float* row, int64_t n, float scale, const float* __restrict bias) {
  float m = -kInf;
  int32_t any_nan = 0;
#pragma omp simd reduction(max : m) reduction(| : any_nan)
  for (int64_t k = 0; k < n; ++k) {
    const float x = row[k] * scale + bias[k];
    row[k] = x;
    m = x > m ? x : m;
    any_nan |= x != x;
  }
  if (any_nan) m = bits_float(0x7fc00000);
  // exp_and_sum's loop in place (its pointers are restrict): the same lanes, the same order.
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const float e = fast_exp_nonpositive(row[i + j] - m);
      row[i + j] = e;
      lanes[j] += e;
    }
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) lanes[j] += lanes[j + w];
  float s = lanes[0];
  for (; i < n; ++i) {
    const float e = fast_exp_nonpositive(row[i] - m);
    row[i] = e;
    s += e;
  }
  const float inv = 1.0f / s;
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) row[k] *= inv;
}

void softmax_cpu(const float* x, int64_t rows, int64_t cols, float* out, bool log) {
  // ~10 flops per element for exp: blocks of ~4K elements keep the threads' shares balanced.
  const int64_t block = block_rows(cols, 4096);
  const int64_t work = rows * cols * 8;
  for_each_block(rows, block, work, [&](int64_t, int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      if (log)
        log_softmax_row(x + r * cols, cols, out + r * cols);
      else
        softmax_row(x + r * cols, cols, out + r * cols);
    }
  });
}

}  // namespace fd
