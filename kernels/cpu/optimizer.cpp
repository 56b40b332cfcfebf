// AdamW's element update (kernels/optimizer.h). Elements are independent, so blocks run in parallel
// with no effect on the result; the sum of squares stays one sequential loop (its order is its bits).
#include "../optimizer.h"

#include <cmath>

#include "parallel.h"

namespace fd {

namespace {
// Contraction into FMAs would round differently from JS's separate multiply and add. A function of
// its own (not the lambda below, which does not inherit the attribute) and never inlined into code
// compiled with -ffp-contract=fast.
__attribute__((optimize("fp-contract=off"), noinline)) void adamw_block(const AdamWArgs& a, int64_t begin, int64_t end) {
  const double b1 = a.beta1, b2 = a.beta2, c1 = 1 - a.beta1, c2 = 1 - a.beta2;
  for (int64_t i = begin; i < end; ++i) {
    const double gi = static_cast<double>(a.g[i]) * a.scale;
    a.m[i] = static_cast<float>(b1 * a.m[i] + c1 * gi);
    a.v[i] = static_cast<float>(b2 * a.v[i] + c2 * gi * gi);
    const double mi = a.m[i], vi = a.v[i];
    a.out[i] = static_cast<float>(static_cast<double>(a.p[i]) * a.decay - (a.step_size * mi) / (std::sqrt(vi) / a.sqrt_bc2 + a.eps));
  }
}
}  // namespace

void adamw_update_cpu(const AdamWArgs& a) {
  constexpr int64_t kBlock = 1 << 15;
  for_each_block(a.n, kBlock, a.n * 8, [&](int64_t, int64_t begin, int64_t end) { adamw_block(a, begin, end); });
}

__attribute__((optimize("fp-contract=off"))) double sum_squares_cpu(const float* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

}  // namespace fd
