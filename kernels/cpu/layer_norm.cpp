// fd::layer_norm_cpu, fd::layer_norm_grad_cpu (contract: kernels/nn.h). Rows in parallel over fixed
// blocks (parallel.h), so results never depend on the thread count. Per row everything stays in L1:
// forward reads x twice (mean, then squared deviations: two-pass, in double) and writes y once;
// backward reads dy, x, gamma for the two row sums (keeping dy * gamma in dx), then dy, x and dx again
// to write dx while adding dy * xhat and dy into its block's dgamma / dbeta partials (double). The partials are added
// in block order at the end: no atomics, the same bits for any thread count. With a bias and/or a
// residual the row's input s = (x + bias) + residual is recomputed on each read (two adds, in L1)
// rather than stored, and backward adds dx into a third partial, dbias.
#include <algorithm>
#include <new>
#include <vector>

#include "../nn.h"
#include "../nn_math.h"
#include "parallel.h"

namespace fd {
namespace {

// At most this many row blocks in backward: the dgamma / dbeta partials stay <= 2 x 256 x cols doubles.
constexpr int64_t kMaxGradBlocks = 256;

// The row's input, element i: x alone, or (x + bias) + residual with the adds rounded to float as
// the composite's separate adds round them. kBias / kRes pick the variant at compile time.
template <bool kBias, bool kRes>
struct RowInput {
  const float* __restrict x;
  const float* __restrict bias;
  const float* __restrict res;
  inline __attribute__((always_inline)) float operator()(int64_t i) const {
    float s = x[i];
    if (kBias) s = s + bias[i];
    if (kRes) s = s + res[i];
    return s;
  }
};

template <class In>
void row_forward(const In in, const float* __restrict gamma, const float* __restrict beta, int64_t n, float eps,
                 float* __restrict y, float* mean_out, float* rstd_out) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += in(i);
  const double mean = sum / static_cast<double>(n);
  double ss = 0.0;
#pragma omp simd reduction(+ : ss)
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(in(i)) - mean;
    ss += d * d;
  }
  const float m = static_cast<float>(mean);
  const float r = nn::layer_norm_rstd(ss / static_cast<double>(n), eps);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = nn::layer_norm_y(in(i), m, r, gamma[i], beta[i]);
  if (mean_out) *mean_out = m;
  if (rstd_out) *rstd_out = r;
}

// dbias (null: not wanted) receives dx, summed like dgamma and dbeta.
template <class In>
void row_backward(const float* __restrict dy, const In in, const float* __restrict gamma, float mean, float rstd,
                  int64_t n, float* __restrict dx, double* __restrict dgamma, double* __restrict dbeta,
                  double* __restrict dbias) {
  // Pass 1 keeps g = dy * gamma, rounded, in dx for pass 2 (see nn::layer_norm_dx).
  double s1 = 0.0, s2 = 0.0;  // sum(g), sum(g * xhat)
#pragma omp simd reduction(+ : s1, s2)
  for (int64_t i = 0; i < n; ++i) {
    const float g = dy[i] * gamma[i];
    dx[i] = g;
    s1 += g;
    s2 += g * nn::layer_norm_xhat(in(i), mean, rstd);
  }
  const float c1 = static_cast<float>(s1 / static_cast<double>(n));
  const float c2 = static_cast<float>(s2 / static_cast<double>(n));
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float xhat = nn::layer_norm_xhat(in(i), mean, rstd);
    dx[i] = nn::layer_norm_dx(dx[i], xhat, rstd, c1, c2);
    dgamma[i] += dy[i] * xhat;
    dbeta[i] += dy[i];
  }
  if (dbias) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dbias[i] += dx[i];
  }
}

// Calls f with the RowInput variant that a's bias / residual call for (f takes a RowInput factory
// from the row index).
template <class Args, class F>
void with_row_input(const Args& a, F&& f) {
  const int64_t cols = a.cols;
  auto make = [&](auto tag) {
    using In = decltype(tag);
    f([&](int64_t r) { return In{a.x + r * cols, a.bias, a.residual ? a.residual + r * cols : nullptr}; });
  };
  if (a.bias && a.residual)
    make(RowInput<true, true>{});
  else if (a.bias)
    make(RowInput<true, false>{});
  else if (a.residual)
    make(RowInput<false, true>{});
  else
    make(RowInput<false, false>{});
}

}  // namespace

Status layer_norm_cpu(const LayerNormArgs& a) {
  const int64_t rows = a.rows, cols = a.cols;
  if (rows <= 0 || cols <= 0) return kOk;
  with_row_input(a, [&](auto input) {
    // ~4 flops per element and pass: blocks of ~8K elements keep the threads' shares balanced.
    for_each_block(rows, block_rows(cols, 8192), rows * cols * 4, [&](int64_t, int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        row_forward(input(r), a.gamma, a.beta, cols, a.eps, a.y + r * cols, a.mean ? a.mean + r : nullptr,
                    a.rstd ? a.rstd + r : nullptr);
    });
  });
  return kOk;
}

Status layer_norm_grad_cpu(const LayerNormGradArgs& a) {
  const int64_t rows = a.rows, cols = a.cols;
  if (rows <= 0 || cols <= 0) return kOk;
  // Block boundaries depend on rows and cols only (never on the thread count).
  const int64_t block = std::max(block_rows(cols, 16384), (rows + kMaxGradBlocks - 1) / kMaxGradBlocks);
  const int64_t blocks = (rows + block - 1) / block;
  const int64_t sums = a.dbias ? 3 : 2;  // per block: dgamma [cols], dbeta [cols] (, dbias [cols])
  std::vector<double> partial;
  try {
    partial.assign(static_cast<size_t>(blocks * sums * cols), 0.0);
  } catch (const std::bad_alloc&) {
    return kNoMemory;
  }
  with_row_input(a, [&](auto input) {
    for_each_block(rows, block, rows * cols * 8, [&](int64_t b, int64_t begin, int64_t end) {
      double* pg = partial.data() + b * sums * cols;
      for (int64_t r = begin; r < end; ++r)
        row_backward(a.dy + r * cols, input(r), a.gamma, a.mean[r], a.rstd[r], cols, a.dx + r * cols, pg, pg + cols,
                     a.dbias ? pg + 2 * cols : nullptr);
    });
  });
  // Block partials in block order; the first block's are the running sum.
  double* __restrict sum = partial.data();
  for (int64_t b = 1; b < blocks; ++b) {
    const double* __restrict p = partial.data() + b * sums * cols;
#pragma omp simd
    for (int64_t i = 0; i < sums * cols; ++i) sum[i] += p[i];
  }
  for (int64_t i = 0; i < cols; ++i) {
    a.dgamma[i] = static_cast<float>(sum[i]);
    a.dbeta[i] = static_cast<float>(sum[cols + i]);
    if (a.dbias) a.dbias[i] = static_cast<float>(sum[2 * cols + i]);
  }
  return kOk;
}

}  // namespace fd
