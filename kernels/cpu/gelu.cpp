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
// bias_gelu_grad_cpu's row blocks: ~64K elements each (BERT-mini's [2048, 1024]: 32 blocks of dbias
// partials, 256 KB), at most 256 of them.
constexpr int64_t kGradBlock = 1 << 16;
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
void bias_gelu_cpu(const BiasGeluArgs& a) {
  const int64_t rows = a.rows, cols = a.cols;
  if (rows <= 0 || cols <= 0) return;
  for_each_block(rows, block_rows(cols, kBlock), rows * cols * 8, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = a.x + r * cols;
      const float* __restrict bias = a.bias;
      float* yr = a.y + r * cols;
      if (a.erf_out) {
        float* __restrict er = a.erf_out + r * cols;
#pragma omp simd
        for (int64_t i = 0; i < cols; ++i) {
          const float s = xr[i] + bias[i];
          const float e = nn::gelu_erf<CpuMath>(s);
          er[i] = e;
          yr[i] = nn::gelu_from_erf(s, e);
        }
      } else {
#pragma omp simd
        for (int64_t i = 0; i < cols; ++i) yr[i] = nn::gelu<CpuMath>(xr[i] + bias[i]);
      }
    }
  });
}

// dx may be dy. Rows in fixed blocks (boundaries from rows and cols only); each block adds its dx
// into its own dbias partial in double, and the partials are added in block order.
Status bias_gelu_grad_cpu(const BiasGeluGradArgs& a) {
  const int64_t rows = a.rows, cols = a.cols;
  if (rows <= 0 || cols <= 0) return kOk;
  const int64_t block = std::max(block_rows(cols, kGradBlock), (rows + kMaxGradBlocks - 1) / kMaxGradBlocks);
  const int64_t blocks = (rows + block - 1) / block;
  std::vector<double> partial;
  try {
    partial.assign(static_cast<size_t>(blocks * cols), 0.0);
  } catch (const std::bad_alloc&) {
    return kNoMemory;
  }
  for_each_block(rows, block, rows * cols * 12, [&](int64_t b, int64_t begin, int64_t end) {
    double* __restrict pb = partial.data() + b * cols;
    const float* __restrict bias = a.bias;
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = a.x + r * cols;
      const float* dyr = a.dy + r * cols;
      float* dxr = a.dx + r * cols;
      if (a.erf) {
        const float* __restrict er = a.erf + r * cols;
#pragma omp simd
        for (int64_t i = 0; i < cols; ++i) {
          const float d = nn::gelu_grad_from_erf<CpuMath>(dyr[i], xr[i] + bias[i], er[i]);
          dxr[i] = d;
          pb[i] += d;
        }
      } else {
#pragma omp simd
        for (int64_t i = 0; i < cols; ++i) {
          const float d = nn::gelu_grad<CpuMath>(dyr[i], xr[i] + bias[i]);
          dxr[i] = d;
          pb[i] += d;
        }
      }
    }
  });
  double* __restrict sum = partial.data();
  for (int64_t b = 1; b < blocks; ++b) {
    const double* __restrict p = partial.data() + b * cols;
#pragma omp simd
    for (int64_t i = 0; i < cols; ++i) sum[i] += p[i];
  }
  for (int64_t i = 0; i < cols; ++i) a.dbias[i] = static_cast<float>(sum[i]);
  return kOk;
}

}  // namespace fd
