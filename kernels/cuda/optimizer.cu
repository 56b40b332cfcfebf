// AdamW's element update and the sum of squares on the device (kernels/optimizer.h). The update is
// memory-bound, so it computes in double like the CPU (kernels/cpu/optimizer.cpp) with every
// operation an explicitly rounded intrinsic (__dmul_rn etc. are never contracted into FMAs): the
// result is bit-identical to adamw_update_cpu and to the float64 JS formula.
#include "cuda_common.cuh"
#include "optimizer.h"

namespace fd {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) adamw_kernel(AdamWArgs a) {
  const double b1 = a.beta1, b2 = a.beta2, c1 = 1 - a.beta1, c2 = 1 - a.beta2;  // as the CPU: 1 - beta, one rounding
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < a.n; i += stride) {
    const double gi = __dmul_rn(static_cast<double>(a.g[i]), a.scale);
    const float m = __double2float_rn(__dadd_rn(__dmul_rn(b1, a.m[i]), __dmul_rn(c1, gi)));
    const float v = __double2float_rn(__dadd_rn(__dmul_rn(b2, a.v[i]), __dmul_rn(__dmul_rn(c2, gi), gi)));
    a.m_out[i] = m;
    a.v_out[i] = v;
    const double denom = __dadd_rn(__ddiv_rn(__dsqrt_rn(static_cast<double>(v)), a.sqrt_bc2), a.eps);
    const double p = __dsub_rn(__dmul_rn(static_cast<double>(a.p[i]), a.decay),
                               __ddiv_rn(__dmul_rn(a.step_size, m), denom));
    a.out[i] = __double2float_rn(p);
  }
}

// Pass 1: each block's sum of x^2 over a grid-stride share into partials[block].
__global__ void __launch_bounds__(kThreads) sum_squares_blocks(const float* x, int64_t n, double* partials) {
  double v[1] = {0.0};
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
    const double xi = x[i];
    v[0] = __dadd_rn(v[0], __dmul_rn(xi, xi));
  }
  cuda::block_sum(v);
  if (threadIdx.x == 0) partials[blockIdx.x] = v[0];
}

// Pass 2: one block adds the partials (fixed order) into *out.
__global__ void __launch_bounds__(kThreads) sum_squares_total(const double* partials, int count, double* out) {
  double v[1] = {0.0};
  for (int b = threadIdx.x; b < count; b += kThreads) v[0] += partials[b];
  cuda::block_sum(v);
  if (threadIdx.x == 0) *out = v[0];
}

int grid_for(int64_t n, int cap) {
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  return static_cast<int>(wanted < cap ? wanted : cap);
}

device::Scratch g_partials;  // sum_squares: kMaxBlocks partials, then the total
std::mutex g_sum_mu;

}  // namespace

Status adamw_update_cuda(const AdamWArgs& a) {
  FD_TRY(device::init());
  if (a.n <= 0) return kOk;
  int fit = 0;
  const void* kernel = reinterpret_cast<const void*>(&adamw_kernel);
  FD_TRY(device::coresident_blocks(kernel, kThreads, 0, &fit));
  AdamWArgs copy = a;
  void* args[] = {&copy};
  return device::launch(kernel, grid_for(a.n, fit), kThreads, 0, args, false);
}

Status sum_squares_cuda(const float* x, int64_t n, double* out_host) {
  FD_TRY(device::init());
  *out_host = 0;
  if (n <= 0) return kOk;
  // A fixed grid (not the occupancy's, which depends on the device): the same tree order, the same bits.
  constexpr int kMaxBlocks = 1024;
  int blocks = grid_for(n, kMaxBlocks);
  // One caller at a time queues its passes: another's launches in between would reuse the partials.
  std::lock_guard<std::mutex> lock(g_sum_mu);
  void* scratch = nullptr;
  FD_TRY(device::scratch(g_partials, (kMaxBlocks + 1) * sizeof(double), &scratch));
  double* partials = static_cast<double*>(scratch);
  double* total = partials + kMaxBlocks;
  void* args1[] = {const_cast<float**>(&x), &n, &partials};
  FD_TRY(device::launch(reinterpret_cast<const void*>(&sum_squares_blocks), blocks, kThreads, 0, args1, false));
  void* args2[] = {&partials, &blocks, &total};
  FD_TRY(device::launch(reinterpret_cast<const void*>(&sum_squares_total), 1, kThreads, 0, args2, false));
  FD_CUDA_TRY(cudaMemcpyAsync(out_host, total, sizeof(double), cudaMemcpyDeviceToHost, device::stream()));
  FD_CUDA_TRY(cudaStreamSynchronize(device::stream()));
  return kOk;
}

}  // namespace fd
