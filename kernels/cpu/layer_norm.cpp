// fd::layer_norm_cpu, fd::layer_norm_grad_cpu (contract: kernels/nn.h). Rows in parallel over fixed
// blocks (parallel.h), so results never depend on the thread count. Per row everything stays in L1:
// forward reads x twice (mean, then squared deviations: two-pass, in double) and writes y once;
// backward reads dy, x, gamma for the two row sums (keeping dy * gamma in dx), then dy, x and dx again
// to write dx while adding dy * xhat and dy into its block's dgamma / dbeta partials (double). The partials are added
// in block order at the end: no atomics, the same bits for any thread count.
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

void row_forward(const float* __restrict x, const float* __restrict gamma, const float* __restrict beta, int64_t n,
                 float eps, float* __restrict y, float* mean_out, float* rstd_out) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / static_cast<double>(n);
  double ss = 0.0;
#pragma omp simd reduction(+ : ss)
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - mean;
    ss += d * d;
  }
  const float m = static_cast<float>(mean);
  const float r = nn::layer_norm_rstd(ss / static_cast<double>(n), eps);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = nn::layer_norm_y(x[i], m, r, gamma[i], beta[i]);
  if (mean_out) *mean_out = m;
  if (rstd_out) *rstd_out = r;
}

void row_backward(const float* __restrict dy, const float* __restrict x, const float* __restrict gamma, float mean,
                  float rstd, int64_t n, float* __restrict dx, double* __restrict dgamma, double* __restrict dbeta) {
  // Pass 1 keeps g = dy * gamma, rounded, in dx for pass 2 (see nn::layer_norm_dx).
  double s1 = 0.0, s2 = 0.0;  // sum(g), sum(g * xhat)
#pragma omp simd reduction(+ : s1, s2)
  for (int64_t i = 0; i < n; ++i) {
    const float g = dy[i] * gamma[i];
    dx[i] = g;
    s1 += g;
    s2 += g * nn::layer_norm_xhat(x[i], mean, rstd);
  }
  const float c1 = static_cast<float>(s1 / static_cast<double>(n));
  const float c2 = static_cast<float>(s2 / static_cast<double>(n));
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float xhat = nn::layer_norm_xhat(x[i], mean, rstd);
    dx[i] = nn::layer_norm_dx(dx[i], xhat, rstd, c1, c2);
    dgamma[i] += dy[i] * xhat;
    dbeta[i] += dy[i];
  }
}

}  // namespace

Status layer_norm_cpu(const LayerNormArgs& a) {
  const int64_t rows = a.rows, cols = a.cols;
  if (rows <= 0 || cols <= 0) return kOk;
  // ~4 flops per element and pass: blocks of ~8K elements keep the threads' shares balanced.
  for_each_block(rows, block_rows(cols, 8192), rows * cols * 4, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      row_forward(a.x + r * cols, a.gamma, a.beta, cols, a.eps, a.y + r * cols, a.mean ? a.mean + r : nullptr,
                  a.rstd ? a.rstd + r : nullptr);
  });
  return kOk;
}

Status layer_norm_grad_cpu(const LayerNormGradArgs& a) {
  const int64_t rows = a.rows, cols = a.cols;
  if (rows <= 0 || cols <= 0) return kOk;
  // Block boundaries depend on rows and cols only (never on the thread count).
  const int64_t block = std::max(block_rows(cols, 16384), (rows + kMaxGradBlocks - 1) / kMaxGradBlocks);
  const int64_t blocks = (rows + block - 1) / block;
  std::vector<double> partial;  // per block: dgamma [cols], then dbeta [cols]
  try {
    partial.assign(static_cast<size_t>(blocks * 2 * cols), 0.0);
  } catch (const std::bad_alloc&) {
    return kNoMemory;
  }
  for_each_block(rows, block, rows * cols * 8, [&](int64_t b, int64_t begin, int64_t end) {
    double* pg = partial.data() + b * 2 * cols;
    for (int64_t r = begin; r < end; ++r)
      row_backward(a.dy + r * cols, a.x + r * cols, a.gamma, a.mean[r], a.rstd[r], cols, a.dx + r * cols, pg,
                   pg + cols);
  });
  // Block partials in block order; the first block's are the running sum.
  double* __restrict sum = partial.data();
  for (int64_t b = 1; b < blocks; ++b) {
    const double* __restrict p = partial.data() + b * 2 * cols;
#pragma omp simd
    for (int64_t i = 0; i < 2 * cols; ++i) sum[i] += p[i];
  }
  for (int64_t i = 0; i < cols; ++i) {
    a.dgamma[i] = static_cast<float>(sum[i]);
    a.dbeta[i] = static_cast<float>(sum[cols + i]);
  }
  return kOk;
}

}  // namespace fd
