// fd::gelu_cuda, fd::gelu_grad_cuda (contract: kernels/nn.h): a grid-stride elementwise pass with
// the per-element math of kernels/nn_math.h (shared with the CPU kernels), on CUDA's erff / expf
// (<= 2 ulp; the CPU side uses elementwise_math.h's, so the two agree to a few ulp, not bit for bit).
// y may be x and dx may be dy: each element is read before it is written, so no __restrict__.
#include "../nn.h"
#include "../nn_math.h"
#include "cuda_common.cuh"

namespace fd {
namespace {

constexpr int kThreads = 256;

struct CudaMath {
  static __device__ __forceinline__ float erf(float x) { return erff(x); }
  static __device__ __forceinline__ float exp(float x) { return expf(x); }
};

__global__ void __launch_bounds__(kThreads) gelu_kernel(const float* x, float* y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(gridDim.x) * kThreads)
    y[i] = nn::gelu<CudaMath>(x[i]);
}

__global__ void __launch_bounds__(kThreads) gelu_grad_kernel(const float* dy, const float* x, float* dx, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(gridDim.x) * kThreads)
    dx[i] = nn::gelu_grad<CudaMath>(dy[i], x[i]);
}

// Enough blocks to fill the device (grid-stride beyond that).
Status grid_for(const void* kernel, int64_t n, int* grid) {
  int fit = 0;
  FD_TRY(device::coresident_blocks(kernel, kThreads, 0, &fit));
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  *grid = static_cast<int>(wanted < fit ? wanted : fit);
  return kOk;
}

}  // namespace

Status gelu_cuda(const float* x, float* y, int64_t n) {
  FD_TRY(device::init());
  if (n <= 0) return kOk;
  const void* kernel = reinterpret_cast<const void*>(&gelu_kernel);
  int grid = 0;
  FD_TRY(grid_for(kernel, n, &grid));
  void* args[] = {const_cast<float**>(&x), &y, &n};
  return device::launch(kernel, grid, kThreads, 0, args, false);
}

Status gelu_grad_cuda(const float* dy, const float* x, float* dx, int64_t n) {
  FD_TRY(device::init());
  if (n <= 0) return kOk;
  const void* kernel = reinterpret_cast<const void*>(&gelu_grad_kernel);
  int grid = 0;
  FD_TRY(grid_for(kernel, n, &grid));
  void* args[] = {const_cast<float**>(&dy), const_cast<float**>(&x), &dx, &n};
  return device::launch(kernel, grid, kThreads, 0, args, false);
}

}  // namespace fd
