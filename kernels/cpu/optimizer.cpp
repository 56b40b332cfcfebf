// AdamW's element update (kernels/optimizer.h). Elements are independent, so blocks run in parallel
// with no effect on the result; the sum of squares adds in a fixed tree (its order is its bits).
#include "../optimizer.h"

#include <cmath>
#include <vector>

#include "parallel.h"

namespace fd {

namespace {
// Contraction into FMAs would round differently from JS's separate multiply and add. A function of
// its own (not the lambda below, which does not inherit the attribute) and never inlined into code
// compiled with -ffp-contract=fast.
// `omp simd`: each output is its own input or overlaps none of the others (native/optimizer_ops.cc
// checks), so there is no dependence between elements; without it the compiler, unable to rule out a
// partial overlap, left the loop scalar: one sqrt and two divisions in double per element, ~5 ns, the
// update's whole cost (its memory traffic takes ~2 ns per element). Vector sqrt and division round
// as the scalar ones do: the same bits.
__attribute__((optimize("fp-contract=off"), noinline)) void adamw_block(const AdamWArgs& a, int64_t begin,
                                                                        int64_t end) {
  const double b1 = a.beta1, b2 = a.beta2, c1 = 1 - a.beta1, c2 = 1 - a.beta2;
  const double scale = a.scale, decay = a.decay, step_size = a.step_size, sqrt_bc2 = a.sqrt_bc2, eps = a.eps;
  const float *p = a.p, *g = a.g, *m_in = a.m, *v_in = a.v;
  float *out = a.out, *m_out = a.m_out, *v_out = a.v_out;
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) {
    const double gi = static_cast<double>(g[i]) * scale;
    const float m = static_cast<float>(b1 * m_in[i] + c1 * gi);
    const float v = static_cast<float>(b2 * v_in[i] + c2 * gi * gi);
    m_out[i] = m;
    v_out[i] = v;
    const double mi = m, vi = v;
    out[i] = static_cast<float>(static_cast<double>(p[i]) * decay -
                                (step_size * mi) / (std::sqrt(vi) / sqrt_bc2 + eps));
  }
}
}  // namespace

void adamw_update_cpu(const AdamWArgs& a) {
  constexpr int64_t kBlock = 1 << 15;
  for_each_block(a.n, kBlock, a.n * 8, [&](int64_t, int64_t begin, int64_t end) { adamw_block(a, begin, end); });
}

// A fixed summation tree, so the bits depend on n only: blocks of kSumBlock elements, each summed in
// 8 interleaved float64 lanes (one AVX-512 vector; a single sequential chain ran at one add per
// 4-cycle latency, ~10 ms for BERT-mini's 11M gradients), lanes added pairwise, block sums added in
// block order. Blocks run in parallel with no effect on the result.
__attribute__((optimize("fp-contract=off"), noinline)) double sum_squares_block(const float* x, int64_t n) {
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lane[j] += static_cast<double>(x[i + j]) * x[i + j];
  for (int j = 0; i < n; ++i, ++j) lane[j] += static_cast<double>(x[i]) * x[i];
  return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

double sum_squares_cpu(const float* x, int64_t n) {
  constexpr int64_t kSumBlock = 1 << 14;
  if (n <= 0) return 0;
  std::vector<double> partial(static_cast<size_t>((n + kSumBlock - 1) / kSumBlock));
  for_each_block(n, kSumBlock, n, [&](int64_t b, int64_t begin, int64_t end) {
    partial[b] = sum_squares_block(x + begin, end - begin);
  });
  double s = 0;
  for (double p : partial) s += p;
  return s;
}

}  // namespace fd
