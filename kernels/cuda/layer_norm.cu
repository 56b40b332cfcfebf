// fd::layer_norm_cuda, fd::layer_norm_grad_cuda (contract: kernels/nn.h; per-element math:
// kernels/nn_math.h, shared with the CPU kernels).
//
// A warp per row: lanes stride the row (coalesced), row sums in double by warp butterflies (a fixed
// order: the same bits every run). Forward reads x for the mean, again for the squared deviations
// (two-pass, as the CPU) and once more to write y; the re-reads of a row hit L1/L2.
//
// Backward is one launch. Block b owns a contiguous range of rows (the split depends on rows only,
// never on the device); its warps take the rows in turn, write dx, and add dy * xhat and dy into
// per-warp dgamma / dbeta accumulators (shared memory, or a global scratch slice for very long rows),
// lane-owned columns so no two threads touch one entry. The block then adds its warps' accumulators
// in warp order into its partial row, and the last block to finish (an integer ticket) adds the
// partials in block order, in double: no float atomics, the same bits every run.
//
// With a bias and/or a residual, every read of x is of s = (x + bias) + residual (row_in: adds
// rounded, never fused), and backward keeps a third accumulator, dbias = the sum of dx.
#include <algorithm>

#include "../nn.h"
#include "../nn_math.h"
#include "cuda_common.cuh"

namespace fd {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kMaxGradBlocks = 1024;  // partials: at most 1024 x 2 x cols floats
constexpr int kMinRowsPerBlock = 16;  // 2 rows per warp at least
// Per-warp accumulators in shared memory up to this size (cols <= 1536, 1024 with dbias; above 48 KB the kernel opts
// in through coresident_blocks; sm_90 allows 227 KB), else in global scratch.
constexpr size_t kSmemLimit = 96 * 1024;
constexpr size_t kTicketBytes = 256;

// Element c of row r's input: (x + bias) + residual, each add rounded, where those are given.
template <class A>
__device__ __forceinline__ float row_in(const A& a, int64_t r, int64_t c) {
  float s = a.x[r * a.cols + c];
  if (a.bias) s = __fadd_rn(s, __ldg(a.bias + c));
  if (a.residual) s = __fadd_rn(s, a.residual[r * a.cols + c]);
  return s;
}

__global__ void __launch_bounds__(kThreads) layer_norm_kernel(LayerNormArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t cols = a.cols;
  for (int64_t r = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5); r < a.rows; r += int64_t(gridDim.x) * kWarps) {
    double sum = 0.0;
    for (int64_t i = lane; i < cols; i += 32) sum += row_in(a, r, i);
    const double mean = cuda::warp_sum(sum) / double(cols);
    double ss = 0.0;
    for (int64_t i = lane; i < cols; i += 32) {
      const double d = double(row_in(a, r, i)) - mean;
      ss += d * d;
    }
    const float m = float(mean);
    const float rs = nn::layer_norm_rstd(cuda::warp_sum(ss) / double(cols), a.eps);
    float* __restrict__ y = a.y + r * cols;
    for (int64_t i = lane; i < cols; i += 32)
      y[i] = nn::layer_norm_y(row_in(a, r, i), m, rs, __ldg(a.gamma + i), __ldg(a.beta + i));
    if (lane == 0) {
      if (a.mean) a.mean[r] = m;
      if (a.rstd) a.rstd[r] = rs;
    }
  }
}

struct GradParams {
  LayerNormGradArgs a;
  int64_t rows_per_block;
  int64_t sums;     // accumulators per column: 2 (dgamma, dbeta), 3 with dbias
  float* partial;   // [gridDim.x][sums * cols]
  float* warp_acc;  // [gridDim.x * kWarps][sums * cols] when the accumulators are not in shared memory
  unsigned* ticket;
};

__global__ void __launch_bounds__(kThreads) layer_norm_grad_kernel(GradParams p) {
  extern __shared__ float smem[];
  const LayerNormGradArgs& a = p.a;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t cols = a.cols, width = p.sums * cols;
  float* const acc_base = p.warp_acc ? p.warp_acc + size_t(blockIdx.x) * kWarps * width : smem;
  // [dgamma cols][dbeta cols]([dbias cols]), column c owned by lane c % 32
  float* const acc = acc_base + size_t(warp) * width;
  for (int64_t c = lane; c < width; c += 32) acc[c] = 0.0f;
  const int64_t begin = int64_t(blockIdx.x) * p.rows_per_block;
  const int64_t end = begin + p.rows_per_block < a.rows ? begin + p.rows_per_block : a.rows;
  for (int64_t r = begin + warp; r < end; r += kWarps) {
    const float* __restrict__ dy = a.dy + r * cols;
    const float mean = a.mean[r], rstd = a.rstd[r];
    double s1 = 0.0, s2 = 0.0;  // sum(dy * gamma), sum(dy * gamma * xhat)
    for (int64_t c = lane; c < cols; c += 32) {
      const float g = __fmul_rn(dy[c], __ldg(a.gamma + c));  // rounded, never contracted (nn::layer_norm_dx)
      s1 += g;
      s2 += g * nn::layer_norm_xhat(row_in(a, r, c), mean, rstd);
    }
    const float c1 = float(cuda::warp_sum(s1) / double(cols));
    const float c2 = float(cuda::warp_sum(s2) / double(cols));
    float* __restrict__ dx = a.dx + r * cols;
    for (int64_t c = lane; c < cols; c += 32) {
      const float d = dy[c];
      const float xhat = nn::layer_norm_xhat(row_in(a, r, c), mean, rstd);
      const float g = nn::layer_norm_dx(__fmul_rn(d, __ldg(a.gamma + c)), xhat, rstd, c1, c2);
      dx[c] = g;
      acc[c] += d * xhat;
      acc[cols + c] += d;
      if (a.dbias) acc[2 * cols + c] += g;
    }
  }
  __syncthreads();  // every warp's accumulators (shared or global) visible to the block
  float* const partial = p.partial + size_t(blockIdx.x) * width;
  for (int64_t c = threadIdx.x; c < width; c += kThreads) {
    float s = acc_base[c];
    for (int w = 1; w < kWarps; ++w) s += acc_base[size_t(w) * width + c];
    partial[c] = s;
  }
  __threadfence();  // this thread's partials before the block's arrival
  __shared__ bool is_last;
  __syncthreads();
  if (threadIdx.x == 0) is_last = atomicAdd(p.ticket, 1u) == gridDim.x - 1;
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  for (int64_t c = threadIdx.x; c < width; c += kThreads) {
    double s = 0.0;
    for (unsigned b = 0; b < gridDim.x; ++b) s += __ldcg(p.partial + size_t(b) * width + c);
    if (c < cols)
      a.dgamma[c] = float(s);
    else if (c < 2 * cols)
      a.dbeta[c - cols] = float(s);
    else
      a.dbias[c - 2 * cols] = float(s);
  }
  if (threadIdx.x == 0) *p.ticket = 0;  // ready for the next launch
}

device::Scratch g_scratch;

}  // namespace

Status layer_norm_cuda(const LayerNormArgs& args) {
  FD_TRY(device::init());
  if (args.rows <= 0 || args.cols <= 0) return kOk;
  const int64_t grid = std::min<int64_t>((args.rows + kWarps - 1) / kWarps, 65535);
  LayerNormArgs a = args;
  void* kargs[] = {&a};
  return device::launch(reinterpret_cast<const void*>(&layer_norm_kernel), int(grid), kThreads, 0, kargs, false);
}

Status layer_norm_grad_cuda(const LayerNormGradArgs& args) {
  FD_TRY(device::init());
  if (args.rows <= 0 || args.cols <= 0) return kOk;
  const int64_t cols = args.cols;
  const int64_t per_block = std::max<int64_t>(kMinRowsPerBlock, (args.rows + kMaxGradBlocks - 1) / kMaxGradBlocks);
  const int64_t grid = (args.rows + per_block - 1) / per_block;
  const int64_t sums = args.dbias ? 3 : 2;
  const size_t acc_bytes = size_t(kWarps) * size_t(sums) * size_t(cols) * sizeof(float);
  const bool in_smem = acc_bytes <= kSmemLimit;
  const size_t partial_bytes = size_t(grid) * size_t(sums) * size_t(cols) * sizeof(float);
  void* base = nullptr;
  FD_TRY(device::scratch(g_scratch, kTicketBytes + partial_bytes + (in_smem ? 0 : size_t(grid) * acc_bytes), &base));
  GradParams p;
  p.a = args;
  p.rows_per_block = per_block;
  p.sums = sums;
  p.ticket = static_cast<unsigned*>(base);
  p.partial = reinterpret_cast<float*>(static_cast<char*>(base) + kTicketBytes);
  p.warp_acc = in_smem ? nullptr : p.partial + size_t(grid) * size_t(sums) * size_t(cols);
  const void* kernel = reinterpret_cast<const void*>(&layer_norm_grad_kernel);
  const size_t smem = in_smem ? acc_bytes : 0;
  int fit = 0;
  FD_TRY(device::coresident_blocks(kernel, kThreads, smem, &fit));  // raises the shared memory limit for smem
  void* kargs[] = {&p};
  return device::launch(kernel, int(grid), kThreads, smem, kargs, false);
}

}  // namespace fd
