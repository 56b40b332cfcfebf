// fd::gelu_cuda, fd::gelu_grad_cuda (contract: kernels/nn.h): a grid-stride elementwise pass with
// the per-element math of kernels/nn_math.h (shared with the CPU kernels), on CUDA's erff / expf
// (<= 2 ulp; the CPU side uses elementwise_math.h's, so the two agree to a few ulp, not bit for bit).
// y may be x and dx may be dy: each element is read before it is written, so no __restrict__.
// With a bias (x [rows, cols], bias [cols]) the element is x + bias, forward may keep erf(x / sqrt2)
// for backward (which then computes no erf), and the bias gradient is a second launch, a thread per
// column adding the rows of dx in order in double (deterministic).
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

__global__ void __launch_bounds__(kThreads) bias_gelu_kernel(BiasGeluArgs a) {
  const int64_t n = a.rows * a.cols;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(gridDim.x) * kThreads) {
    const float s = __fadd_rn(a.x[i], __ldg(a.bias + i % a.cols));
    const float e = nn::gelu_erf<CudaMath>(s);
    if (a.erf_out) a.erf_out[i] = e;
    a.y[i] = nn::gelu_from_erf(s, e);
  }
}

__global__ void __launch_bounds__(kThreads) bias_gelu_grad_kernel(BiasGeluGradArgs a) {
  const int64_t n = a.rows * a.cols;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(gridDim.x) * kThreads) {
    const float s = __fadd_rn(a.x[i], __ldg(a.bias + i % a.cols));
    const float e = a.erf ? a.erf[i] : nn::gelu_erf<CudaMath>(s);
    a.dx[i] = nn::gelu_grad_from_erf<CudaMath>(a.dy[i], s, e);
  }
}

// out[c] = sum over rows of x[r, c], in row order in double: adjacent threads read adjacent columns.
__global__ void __launch_bounds__(kThreads)
    column_sum_kernel(const float* __restrict__ x, int64_t rows, int64_t cols, float* __restrict__ out) {
  const int64_t c = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (c >= cols) return;
  double s = 0.0;
  for (int64_t r = 0; r < rows; ++r) s += x[r * cols + c];
  out[c] = float(s);
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

Status bias_gelu_cuda(const BiasGeluArgs& args) {
  FD_TRY(device::init());
  const int64_t n = args.rows * args.cols;
  if (n <= 0) return kOk;
  const void* kernel = reinterpret_cast<const void*>(&bias_gelu_kernel);
  int grid = 0;
  FD_TRY(grid_for(kernel, n, &grid));
  BiasGeluArgs a = args;
  void* kargs[] = {&a};
  return device::launch(kernel, grid, kThreads, 0, kargs, false);
}

Status bias_gelu_grad_cuda(const BiasGeluGradArgs& args) {
  FD_TRY(device::init());
  int64_t rows = args.rows, cols = args.cols;
  if (rows * cols <= 0) return kOk;
  const void* kernel = reinterpret_cast<const void*>(&bias_gelu_grad_kernel);
  int grid = 0;
  FD_TRY(grid_for(kernel, rows * cols, &grid));
  BiasGeluGradArgs a = args;
  void* kargs[] = {&a};
  FD_TRY(device::launch(kernel, grid, kThreads, 0, kargs, false));
  const float* dx = args.dx;
  float* dbias = args.dbias;
  void* sum_args[] = {const_cast<float**>(&dx), &rows, &cols, &dbias};
  const int64_t sum_grid = (cols + kThreads - 1) / kThreads;
  return device::launch(reinterpret_cast<const void*>(&column_sum_kernel), int(sum_grid), kThreads, 0, sum_args, false);
}

}  // namespace fd
