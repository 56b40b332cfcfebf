// fd::gelu_cpu, fd::gelu_grad_cpu (contract: kernels/nn.h): one vectorised pass over fixed blocks
// (parallel.h; results never depend on the thread count). erf and exp are elementwise_math.h's, the
// ones the 'native' backend's Erf kernel uses, so gelu_cpu gives the same bits as the composite
// (x * 0.5) * (1 + erf(x / sqrt2)) run on that backend.
#include "../elementwise_math.h"
#include "../nn.h"
#include "../nn_math.h"
#include "parallel.h"

namespace fd {
namespace {

constexpr int64_t kBlock = 1 << 14;

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

}  // namespace fd
