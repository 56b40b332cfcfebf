// fd::gelu_cpu, fd::gelu_grad_cpu (contract: kernels/nn.h): one vectorised pass over fixed blocks
// (parallel.h; results never depend on the thread count). erf and exp are elementwise_math.h's, the
// ones the 'native' backend's Erf kernel uses, so gelu_cpu gives the same bits as the composite
// (x * 0.5) * (1 + erf(x / sqrt2)) run on that backend.
#include <algorithm>
#include <new>
#include <vector>

#include "../elementwise_math.h"
#include "../nn.h"
#include "../nn_math.h"
#include "parallel.h"

namespace fd {
namespace {

constexpr int64_t kBlock = 1 << 14;
// At most this many row blocks in bias_gelu_grad_cpu: the dbias partials stay <= 256 x cols doubles.
constexpr int64_t kMaxGradBlocks = 256;

struct CpuMath {
  static inline __attribute__((always_inline)) float erf(float x) { return em::erf(x); }
  static inline __attribute__((always_inline)) float exp(float x) { return em::exp(x); }
};

}  // namespace

// y may be x: each element is read before it is written.
void gelu_cpu(const float* x, float* y, int64_t n) {
  if (n <= 0) return;
  for_each_block(n, kBlock, n * 8, [&](int64_t, int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) y[i] = nn::gelu<CpuMath>(x[i]);
  });
}

// dx may be dy.
void gelu_grad_cpu(const float* dy, const float* x, float* dx, int64_t n) {
  if (n <= 0) return;
  for_each_block(n, kBlock, n * 12, [&](int64_t, int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) dx[i] = nn::gelu_grad<CpuMath>(dy[i], x[i]);
  });
}

// y may be x: each element is read before it is written.
void bias_gelu_cpu(const float* x, const float* bias, int64_t rows, int64_t cols, float* y) {
  if (rows <= 0 || cols <= 0) return;
  for_each_block(rows, block_rows(cols, kBlock), rows * cols * 8, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
#pragma omp simd
      for (int64_t i = 0; i < cols; ++i) yr[i] = nn::gelu<CpuMath>(xr[i] + bias[i]);
    }
  });
}

// dx may be dy. Rows in fixed blocks (boundaries from rows and cols only); each block adds its dx
// into its own dbias partial in double, and the partials are added in block order.
Status bias_gelu_grad_cpu(const float* dy, const float* x, const float* bias, int64_t rows, int64_t cols, float* dx,
                          float* dbias) {
  if (rows <= 0 || cols <= 0) return kOk;
  const int64_t block = std::max(block_rows(cols, kBlock), (rows + kMaxGradBlocks - 1) / kMaxGradBlocks);
  const int64_t blocks = (rows + block - 1) / block;
  std::vector<double> partial;
  try {
    partial.assign(static_cast<size_t>(blocks * cols), 0.0);
  } catch (const std::bad_alloc&) {
    return kNoMemory;
  }
  for_each_block(rows, block, rows * cols * 12, [&](int64_t b, int64_t begin, int64_t end) {
    double* __restrict pb = partial.data() + b * cols;
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x + r * cols;
      const float* dyr = dy + r * cols;
      float* dxr = dx + r * cols;
#pragma omp simd
      for (int64_t i = 0; i < cols; ++i) {
        const float d = nn::gelu_grad<CpuMath>(dyr[i], xr[i] + bias[i]);
        dxr[i] = d;
        pb[i] += d;
      }
    }
  });
  double* __restrict sum = partial.data();
  for (int64_t b = 1; b < blocks; ++b) {
    const double* __restrict p = partial.data() + b * cols;
#pragma omp simd
    for (int64_t i = 0; i < cols; ++i) sum[i] += p[i];
  }
  for (int64_t i = 0; i < cols; ++i) dbias[i] = static_cast<float>(sum[i]);
  return kOk;
}

}  // namespace fd
