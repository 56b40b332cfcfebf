// Random fills on the device (kernels/random.h): thread c computes Philox block c (kernels/philox.h,
// shared with kernels/cpu/random.cpp) and writes elements 4c .. 4c+3, so each element depends on
// (seed, index) only and matches the host's.
#include "cuda_common.cuh"
#include "philox.h"
#include "random.h"

namespace fd {
namespace {

constexpr int kThreads = 256;

template <bool kNormal>
__global__ void __launch_bounds__(kThreads) random_kernel(float* out, int64_t n, float p0, float p1, uint64_t seed) {
  const int64_t blocks = (n + 3) / 4;
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  for (int64_t c = int64_t(blockIdx.x) * kThreads + threadIdx.x; c < blocks; c += stride) {
    const uint64_t first = uint64_t(c) * 4;
    const philox::Block b = philox::block_for(seed, first);
    for (int k = 0; k < 4 && int64_t(first) + k < n; ++k)
      out[first + k] = kNormal ? philox::normal_at(b, first + k, p0, p1) : philox::uniform(b.w[k], p0, p1);
  }
}

template <bool kNormal>
Status fill(float* out, int64_t n, float p0, float p1, uint64_t seed) {
  FD_TRY(device::init());
  if (n <= 0) return kOk;
  const void* kernel = reinterpret_cast<const void*>(&random_kernel<kNormal>);
  int fit = 0;
  FD_TRY(device::coresident_blocks(kernel, kThreads, 0, &fit));
  const int64_t wanted = ((n + 3) / 4 + kThreads - 1) / kThreads;
  const int grid = static_cast<int>(wanted < fit ? wanted : fit);
  void* args[] = {&out, &n, &p0, &p1, &seed};
  return device::launch(kernel, grid, kThreads, 0, args, false);
}

}  // namespace

Status random_uniform_cuda(float* out, int64_t n, float lo, float hi, uint64_t seed) {
  return fill<false>(out, n, lo, hi, seed);
}
Status random_normal_cuda(float* out, int64_t n, float mean, float stddev, uint64_t seed) {
  return fill<true>(out, n, mean, stddev, seed);
}

}  // namespace fd
