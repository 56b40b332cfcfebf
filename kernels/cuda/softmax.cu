// fd::softmax_cuda: row-wise softmax / log-softmax over x [rows, cols], the CPU's math
// (kernels/cpu/softmax.cpp): m = the row max, NaN-propagating; e = fast_exp_nonpositive(x - m)
// (fd_math.h, the same code as the CPU); softmax = e * (1 / sum e); log-softmax = (x - m) - log(sum e)
// with the log in double. So a row holding NaN or +Inf, or of only -Inf, gives NaN everywhere, as
// on the CPU and in tfjs.
//
// The sum is accumulated in float (as the CPU, whose 16 lanes give a different order): per thread
// serially, then a fixed tree (warp butterfly, then the warps in order), so results are run-to-run
// identical and within a few float ulp of the CPU's.
//   cols <= 1024: a warp per row, the row held in registers (one read of x);
//   longer rows:  a block per row, three passes over the row (max; sum; write), the re-reads from L2.
// out may be x itself: every element is read before its own write, and a row is only written after
// its last read of x (the block version synchronises before writing).
#include "../fd_math.h"
#include "../softmax.h"
#include "tensor_common.cuh"

namespace fd {
namespace {

using cuda::kBlockThreads;
using cuda::kFullMask;

// NaN if either is NaN, else the larger (a when equal, so the result is the earlier operand's zero).
__device__ __forceinline__ float nan_max(float a, float b) { return a != a ? a : ((b != b || b > a) ? b : a); }

// The warp's max, lane 0's tree result broadcast to every lane (so all lanes use the same bits).
__device__ __forceinline__ float warp_nan_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_down_sync(kFullMask, v, o));
  return __shfl_sync(kFullMask, v, 0);
}

// K values per lane: lane l holds columns l, l + 32, ..., l + 32 (K - 1).
template <int K>
__global__ void __launch_bounds__(kBlockThreads)
    softmax_warp_kernel(const float* x, int64_t rows, int64_t cols, float* out, bool log) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t r = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); r < rows; r += warps) {
    const float* xr = x + r * cols;
    float v[K];
    float m = -kInf;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t c = lane + 32 * k;
      v[k] = c < cols ? xr[c] : -kInf;
      if (c < cols) m = nan_max(m, v[k]);
    }
    m = warp_nan_max(m);
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t c = lane + 32 * k;
      const float e = fast_exp_nonpositive(v[k] - m);
      if (c < cols) {
        v[k] = e;
        s += e;
      }
    }
    s = cuda::warp_sum(s);  // butterfly: every lane holds the same bits
    float* orow = out + r * cols;
    if (log) {
      const float log_sum = static_cast<float>(::log(static_cast<double>(s)));
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int64_t c = lane + 32 * k;
        if (c < cols) orow[c] = (xr[c] - m) - log_sum;  // x re-read: v holds e now (L1 hit)
      }
    } else {
      const float inv = 1.0f / s;
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int64_t c = lane + 32 * k;
        if (c < cols) orow[c] = v[k] * inv;
      }
    }
  }
}

template <int kThreads>
__global__ void __launch_bounds__(kThreads)
    softmax_block_kernel(const float* x, int64_t rows, int64_t cols, float* out, bool log) {
  __shared__ float red[32];
  __shared__ float shared_m, shared_s;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  constexpr int kWarps = kThreads / 32;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * cols;
    float m = -kInf;
    for (int64_t c = threadIdx.x; c < cols; c += kThreads) m = nan_max(m, xr[c]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = nan_max(m, __shfl_down_sync(kFullMask, m, o));
    if (lane == 0) red[warp] = m;
    __syncthreads();
    if (threadIdx.x == 0) {
      float t = red[0];
      for (int w = 1; w < kWarps; ++w) t = nan_max(t, red[w]);
      shared_m = t;
    }
    __syncthreads();
    m = shared_m;
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += kThreads) s += fast_exp_nonpositive(xr[c] - m);
    s = cuda::warp_sum(s);
    if (lane == 0) red[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
      float t = red[0];
      for (int w = 1; w < kWarps; ++w) t += red[w];
      shared_s = t;
    }
    __syncthreads();  // also: every read of x's row is done before out (maybe x) is written
    s = shared_s;
    float* orow = out + r * cols;
    if (log) {
      const float log_sum = static_cast<float>(::log(static_cast<double>(s)));
      for (int64_t c = threadIdx.x; c < cols; c += kThreads) orow[c] = (xr[c] - m) - log_sum;
    } else {
      const float inv = 1.0f / s;
      for (int64_t c = threadIdx.x; c < cols; c += kThreads) orow[c] = fast_exp_nonpositive(xr[c] - m) * inv;
    }
    __syncthreads();  // red / shared_* are reused by the next row
  }
}

template <int K>
Status launch_warp(const float* x, int64_t rows, int64_t cols, float* out, bool log) {
  softmax_warp_kernel<K>
      <<<cuda::blocks_for(rows, kBlockThreads / 32), kBlockThreads, 0, device::stream()>>>(x, rows, cols, out, log);
  return cuda::check_launch("softmax_warp_kernel");
}

}  // namespace

Status softmax_cuda(const float* x, int64_t rows, int64_t cols, float* out, bool log) {
  FD_TRY(device::init());
  if (rows <= 0 || cols <= 0) return kOk;
  if (cols <= 32) return launch_warp<1>(x, rows, cols, out, log);
  if (cols <= 64) return launch_warp<2>(x, rows, cols, out, log);
  if (cols <= 128) return launch_warp<4>(x, rows, cols, out, log);
  if (cols <= 256) return launch_warp<8>(x, rows, cols, out, log);
  if (cols <= 512) return launch_warp<16>(x, rows, cols, out, log);
  if (cols <= 1024) return launch_warp<32>(x, rows, cols, out, log);
  constexpr int kThreads = 512;
  softmax_block_kernel<kThreads><<<cuda::blocks_for(rows, 1), kThreads, 0, device::stream()>>>(x, rows, cols, out, log);
  return cuda::check_launch("softmax_block_kernel");
}

}  // namespace fd
