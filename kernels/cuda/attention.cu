// fd::attention_cuda, fd::attention_grad_cuda (contract: kernels/attention.h).
//
// The products are cuBLAS strided batched sgemms (sgemm_cuda), one call per head over the batch:
// head h of batch entry b of a [batch, len, hidden] operand starts at b * len * hidden + h * dh with
// row stride hidden, a strided batch over b (stride len * hidden, ld hidden), so no transposes, and
// `heads` calls per product, not `batch` (the small students are launch-bound on a GPU). Between them
// one warp per score row: forward scales, adds the key bias and takes the softmax in place (the max
// NaN-propagating and the exps fd_math's fast_exp_nonpositive, as kernels/cpu/softmax.cpp);
// backward forms G = P * (dP - rowsum(dP * P)) in place, then one thread per (b, key) sums G's
// column over heads and rows in order for the key bias gradient (no atomics: the same bits every
// run) and scales G to dS. Workspaces (the scores when probs are not kept, dP) are kept across calls.
#include <algorithm>

#include "../attention.h"
#include "../fd_math.h"
#include "cuda_common.cuh"

namespace fd {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kMaxGrid = 1 << 16;  // grid-stride beyond this

__device__ __forceinline__ float nan_max(float a, float b) { return a != a ? a : ((b != b || b > a) ? b : a); }

__device__ __forceinline__ float warp_nan_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(cuda::kFullMask, v, o));
  return v;
}

// s [rows = batch * heads * len, len] in place: x = s * scale + bias[b], then softmax over the row.
__global__ void __launch_bounds__(kThreads)
    scores_softmax_kernel(float* s, const float* __restrict__ bias, int64_t rows, int64_t len, int64_t rows_per_batch,
                          float scale) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5); r < rows; r += int64_t(gridDim.x) * kWarps) {
    float* row = s + r * len;
    const float* __restrict__ br = bias + (r / rows_per_batch) * len;
    float m = -kInf;
    for (int64_t j = lane; j < len; j += 32) {
      const float x = row[j] * scale + __ldg(br + j);
      row[j] = x;
      m = nan_max(m, x);
    }
    m = warp_nan_max(m);
    float sum = 0.0f;
    for (int64_t j = lane; j < len; j += 32) {
      const float e = fast_exp_nonpositive(row[j] - m);
      row[j] = e;
      sum += e;
    }
    const float inv = 1.0f / cuda::warp_sum(sum);
    for (int64_t j = lane; j < len; j += 32) row[j] *= inv;
  }
}

// w [rows, len] holds dP; becomes G = P * (dP - rowsum(dP * P)), times scale unless unscaled.
__global__ void __launch_bounds__(kThreads)
    softmax_grad_kernel(const float* __restrict__ p, float* w, int64_t rows, int64_t len, float scale, bool unscaled) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5); r < rows; r += int64_t(gridDim.x) * kWarps) {
    const float* __restrict__ pr = p + r * len;
    float* wr = w + r * len;
    double dot = 0.0;
    for (int64_t j = lane; j < len; j += 32) dot += double(wr[j]) * pr[j];
    const float rs = float(cuda::warp_sum(dot));
    for (int64_t j = lane; j < len; j += 32) {
      const float g = pr[j] * (wr[j] - rs);
      wr[j] = unscaled ? g : g * scale;
    }
  }
}

// One thread per (b, j): dbias[b, j] = sum over heads h and rows i of G[b, h, i, j] (in that order,
// in double), and G scaled to dS in the same pass.
__global__ void __launch_bounds__(kThreads)
    key_bias_grad_kernel(float* w, float* dbias, int64_t batch, int64_t heads, int64_t len, float scale) {
  const int64_t n = batch * len;
  for (int64_t t = int64_t(blockIdx.x) * kThreads + threadIdx.x; t < n; t += int64_t(gridDim.x) * kThreads) {
    const int64_t b = t / len, j = t % len;
    double sum = 0.0;
    for (int64_t h = 0; h < heads; ++h) {
      float* col = w + ((b * heads + h) * len) * len + j;
      for (int64_t i = 0; i < len; ++i) {
        const float g = col[i * len];
        sum += g;
        col[i * len] = g * scale;
      }
    }
    dbias[t] = float(sum);
  }
}

int grid_for(int64_t units, int per_block) {
  return static_cast<int>(std::min<int64_t>((units + per_block - 1) / per_block, kMaxGrid));
}

// One head's products over the batch as a strided batch: C_b = op(A_b) op(B_b) for b < batch.
Status batch_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, int64_t batch, const float* a, int64_t lda,
                  int64_t sa, const float* b, int64_t ldb, int64_t sb, float* c, int64_t ldc, int64_t sc,
                  GemmPrecision precision) {
  GemmArgs g;
  g.trans_a = ta;
  g.trans_b = tb;
  g.m = m;
  g.n = n;
  g.k = k;
  g.batch = batch;
  g.a = a;
  g.lda = lda;
  g.stride_a = sa;
  g.b = b;
  g.ldb = ldb;
  g.stride_b = sb;
  g.c = c;
  g.ldc = ldc;
  g.stride_c = sc;
  g.precision = precision;
  return sgemm_cuda(g);
}

bool valid_shape(int64_t batch, int64_t len, int64_t hidden, int64_t heads) {
  return batch > 0 && len > 0 && hidden > 0 && heads > 0 && hidden % heads == 0;
}

device::Scratch g_scores;  // forward's scores when probs are not kept
device::Scratch g_dp;      // backward's dP / G / dS

}  // namespace

Status attention_cuda(const AttentionArgs& a) {
  FD_TRY(device::init());
  if (!valid_shape(a.batch, a.len, a.hidden, a.heads)) return device::fail_with(kBadShape, "attention_cuda: shape");
  const int64_t L = a.len, H = a.hidden, A = a.heads, dh = H / A, LL = L * L;
  float* s = a.probs;
  if (!s) {
    void* ptr = nullptr;
    FD_TRY(device::scratch(g_scores, size_t(a.batch * A * LL) * sizeof(float), &ptr));
    s = static_cast<float*>(ptr);
  }
  // Head h: the operands at h * dh (batch stride L * H), its scores at h * LL (batch stride A * LL).
  const int64_t sx = L * H, sp = A * LL;
  for (int64_t h = 0; h < A; ++h)
    FD_TRY(batch_gemm(false, true, L, L, dh, a.batch, a.q + h * dh, H, sx, a.k + h * dh, H, sx, s + h * LL, L, sp,
                      a.precision));
  int64_t rows = a.batch * A * L, len = L, rows_per_batch = A * L;
  float scale = a.scale;
  const float* bias = a.key_bias;
  void* args[] = {&s, const_cast<float**>(&bias), &rows, &len, &rows_per_batch, &scale};
  FD_TRY(device::launch(reinterpret_cast<const void*>(&scores_softmax_kernel), grid_for(rows, kWarps), kThreads, 0,
                        args, false));
  for (int64_t h = 0; h < A; ++h)
    FD_TRY(batch_gemm(false, false, L, dh, L, a.batch, s + h * LL, L, sp, a.v + h * dh, H, sx, a.out + h * dh, H, sx,
                      a.precision));
  return kOk;
}

Status attention_grad_cuda(const AttentionGradArgs& a) {
  FD_TRY(device::init());
  if (!valid_shape(a.batch, a.len, a.hidden, a.heads))
    return device::fail_with(kBadShape, "attention_grad_cuda: shape");
  const int64_t L = a.len, H = a.hidden, A = a.heads, dh = H / A, LL = L * L;
  void* ptr = nullptr;
  FD_TRY(device::scratch(g_dp, size_t(a.batch * A * LL) * sizeof(float), &ptr));
  float* w = static_cast<float*>(ptr);
  const int64_t sx = L * H, sp = A * LL;
  for (int64_t h = 0; h < A; ++h) {
    const int64_t x = h * dh;
    // dV = P^T dO, dP = dO V^T
    FD_TRY(batch_gemm(true, false, L, dh, L, a.batch, a.probs + h * LL, L, sp, a.dout + x, H, sx, a.dv + x, H, sx,
                      a.precision));
    FD_TRY(
        batch_gemm(false, true, L, L, dh, a.batch, a.dout + x, H, sx, a.v + x, H, sx, w + h * LL, L, sp, a.precision));
  }
  int64_t rows = a.batch * A * L, len = L;
  float scale = a.scale;
  bool unscaled = a.dkey_bias != nullptr;
  const float* probs = a.probs;
  void* args[] = {const_cast<float**>(&probs), &w, &rows, &len, &scale, &unscaled};
  FD_TRY(device::launch(reinterpret_cast<const void*>(&softmax_grad_kernel), grid_for(rows, kWarps), kThreads, 0, args,
                        false));
  if (a.dkey_bias) {
    int64_t batch = a.batch, heads = A;
    float* dbias = a.dkey_bias;
    void* bargs[] = {&w, &dbias, &batch, &heads, &len, &scale};
    FD_TRY(device::launch(reinterpret_cast<const void*>(&key_bias_grad_kernel), grid_for(batch * L, kThreads), kThreads,
                          0, bargs, false));
  }
  for (int64_t h = 0; h < A; ++h) {
    const int64_t x = h * dh;
    // dQ = dS K, dK = dS^T Q
    FD_TRY(
        batch_gemm(false, false, L, dh, L, a.batch, w + h * LL, L, sp, a.k + x, H, sx, a.dq + x, H, sx, a.precision));
    FD_TRY(batch_gemm(true, false, L, dh, L, a.batch, w + h * LL, L, sp, a.q + x, H, sx, a.dk + x, H, sx, a.precision));
  }
  return kOk;
}

}  // namespace fd
