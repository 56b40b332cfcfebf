// One query's candidate row, as every CPU row function sees it. kMasked is a template parameter so
// the unmasked case has no mask test in its inner loops.
#pragma once
#include <cstdint>

namespace fd {

struct Row {
  const float* s;  // student scores
  const float* t;  // teacher scores (may be null if no term reads it)
  const float* y;  // labels (may be null if no term reads it)
  const float* m;  // 0/1 mask (null when unmasked)
  int64_t n;
};

// Row functions copy the pointers they use into __restrict locals first: read through the struct,
// GCC vectorizes the loops with gathers (it cannot prove the stores leave the pointers alone).
#define FD_ROW_POINTERS(r)           \
  const float* __restrict s = (r).s; \
  const float* __restrict t = (r).t; \
  const float* __restrict y = (r).y; \
  const float* __restrict m = (r).m; \
  const int64_t n = (r).n;           \
  (void)s, (void)t, (void)y, (void)m, (void)n

template <bool kMasked>
inline bool valid(const float* __restrict m, int64_t i) {
  return !kMasked || m[i] != 0.0f;
}

template <bool kMasked>
inline int64_t count_valid(const Row& r) {
  if (!kMasked) return r.n;
  const float* __restrict m = r.m;
  int64_t c = 0;
#pragma omp simd reduction(+ : c)
  for (int64_t i = 0; i < r.n; ++i) c += m[i] != 0.0f;
  return c;
}

}  // namespace fd
