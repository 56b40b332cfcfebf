// fd::hidden_mse_cuda, fd::attention_mse_cuda: masked squared error, loss and gradient in ONE launch.
//
// Memory-bound: a and b are read once and the gradient written once, as float4 where the row length
// and the pointers allow, by a persistent grid-stride kernel. Entries whose token is masked are
// neither read nor used (0 gradient).
//
// N (the mean's denominator) is known on the host without a mask. With one it is counted first from
// token_mask (a few KB): each block counts a strided share (integer atomics), then a grid barrier,
// after which every block knows N for the gradient. The loss is summed per thread (float), per block
// (double, warp order), and across blocks by the last block to finish, in block order: deterministic.
#include <climits>

#include "cuda_common.cuh"
#include "losses.h"

namespace fd {
namespace {

constexpr int kThreads = 256;

struct Header {
  unsigned long long count;
  unsigned barrier;
  unsigned ticket;
};
constexpr size_t kHeaderBytes = 256;

// n / d and n % d for the index arithmetic. 32-bit: a multiply-high (Granlund-Montgomery, as in
// PyTorch's IntDivider), valid for n < 2^31; 64-bit: plain division.
template <class I>
struct Divider;

template <>
struct Divider<uint32_t> {
  uint32_t d, m, shift;
  explicit Divider(uint64_t divisor) : d(static_cast<uint32_t>(divisor)) {
    for (shift = 0; shift < 32; ++shift)
      if ((uint64_t(1) << shift) >= d) break;
    const uint64_t one = 1;
    m = static_cast<uint32_t>(((one << 32) * ((one << shift) - d)) / d + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, m) + n) >> shift; }
};

template <>
struct Divider<uint64_t> {
  uint64_t d;
  explicit Divider(uint64_t divisor) : d(divisor) {}
  __device__ __forceinline__ uint64_t div(uint64_t n) const { return n / d; }
};

template <class I>
struct FeatParams {
  const float* a;
  const float* b;
  const float* mask;  // [batch, len] or null
  float* grad;        // or null
  float* loss;
  I nvec;                  // vectors of V floats
  I tokens;                // batch * len (hidden) or batch (attention: rows of the mask)
  int64_t len, per_count;  // attention: mask row length; N = per_count * count
  double n_host;           // N without a mask
  Divider<I> row_len;      // hidden / V or len / V: vectors per innermost row
  Divider<I> div1;         // hidden: batch * len (row -> token); attention: len (row -> q, b*heads + h)
  Divider<I> div2;         // attention: heads (b*heads + h -> b)
  Header* hdr;
  double* partials;
};

template <int V>
struct Vec;
template <>
struct Vec<4> {
  using T = float4;
};
template <>
struct Vec<1> {
  using T = float;
};

__device__ __forceinline__ float lane_of(const float4& v, int j) {
  return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}
__device__ __forceinline__ float lane_of(float v, int) { return v; }
__device__ __forceinline__ void set_lane(float4& v, int j, float x) {
  if (j == 0) v.x = x;
  if (j == 1) v.y = x;
  if (j == 2) v.z = x;
  if (j == 3) v.w = x;
}
__device__ __forceinline__ void set_lane(float& v, int, float x) { v = x; }

// kAttn: attention layout [batch, heads, len, len] (valid: query and key token), else hidden
// [layers, batch, len, hidden] (valid: the token). V: floats per load (4 or 1). I: index type.
template <bool kAttn, int V, class I>
__global__ void __launch_bounds__(kThreads) feature_kernel(const FeatParams<I> p) {
  using T = typename Vec<V>::T;
  const I tid = I(blockIdx.x) * kThreads + threadIdx.x;
  const I nthreads = I(gridDim.x) * kThreads;

  // N: from the host, or counted from the mask before any gradient is written.
  double n_total = p.n_host;
  if (p.mask) {
    unsigned long long cnt[1] = {0};
    if (!kAttn) {
      for (I i = tid; i < p.tokens; i += nthreads) cnt[0] += __ldg(p.mask + i) != 0.0f;
      cuda::block_sum(cnt);
    } else {
      // Sum over batch rows b of n_b^2: a block per mask row.
      for (I b = blockIdx.x; b < p.tokens; b += gridDim.x) {
        unsigned long long nb[1] = {0};
        for (int64_t l = threadIdx.x; l < p.len; l += kThreads) nb[0] += __ldg(p.mask + b * p.len + l) != 0.0f;
        cuda::block_sum(nb);
        cnt[0] += nb[0] * nb[0];
      }
    }
    if (threadIdx.x == 0 && cnt[0] != 0) atomicAdd(&p.hdr->count, cnt[0]);
    cuda::grid_barrier(&p.hdr->barrier);
    n_total = double(cuda::load_volatile(&p.hdr->count)) * double(p.per_count);
  }
  const float coef = n_total > 0.0 ? static_cast<float>(2.0 / n_total) : 0.0f;

  const T* a = reinterpret_cast<const T*>(p.a);
  const T* b = reinterpret_cast<const T*>(p.b);
  T* g = reinterpret_cast<T*>(p.grad);
  float sum = 0.0f;
  for (I v = tid; v < p.nvec; v += nthreads) {
    // Which of the V entries take part.
    bool ok[V];
#pragma unroll
    for (int j = 0; j < V; ++j) ok[j] = true;
    bool any = true;
    if (p.mask) {
      const I row = p.row_len.div(v);
      if (!kAttn) {
        const I tok = row - p.div1.div(row) * p.tokens;
        const bool t = __ldg(p.mask + tok) != 0.0f;
#pragma unroll
        for (int j = 0; j < V; ++j) ok[j] = t;
        any = t;
      } else {
        const I k0 = (v - row * p.row_len.d) * V;
        const I bh = p.div1.div(row);
        const I q = row - bh * I(p.len);
        const I bi = p.div2.div(bh);
        const float* m = p.mask + bi * I(p.len);
        const bool qok = __ldg(m + q) != 0.0f;
        any = false;
        if (qok) {
          const T mk = *reinterpret_cast<const T*>(m + k0);
#pragma unroll
          for (int j = 0; j < V; ++j) {
            ok[j] = lane_of(mk, j) != 0.0f;
            any = any || ok[j];
          }
        } else {
#pragma unroll
          for (int j = 0; j < V; ++j) ok[j] = false;
        }
      }
    }
    T gv;
#pragma unroll
    for (int j = 0; j < V; ++j) set_lane(gv, j, 0.0f);
    if (any) {
      const T av = __ldcs(a + v), bv = __ldcs(b + v);  // streamed: read once
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float d = lane_of(av, j) - lane_of(bv, j);
        sum += ok[j] ? d * d : 0.0f;
        set_lane(gv, j, ok[j] ? coef * d : 0.0f);
      }
    }
    if (g) __stcs(g + v, gv);
  }

  double total[1] = {sum};
  cuda::block_sum(total);
  if (!cuda::last_block_sum(total, p.partials, &p.hdr->ticket)) return;
  if (threadIdx.x == 0) {
    *p.loss = n_total > 0.0 ? static_cast<float>(total[0] / n_total) : 0.0f;
    p.hdr->count = 0;
    p.hdr->barrier = 0;
  }
}

device::Scratch g_scratch;

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <bool kAttn, int V, class I>
Status launch_feature(const FeatureArgs& f, float* grad, float* loss, int64_t total, int64_t inner) {
  const void* kernel = reinterpret_cast<const void*>(&feature_kernel<kAttn, V, I>);
  int fit = 0;
  FD_TRY(device::coresident_blocks(kernel, kThreads, 0, &fit));
  const int64_t nvec = total / V;
  const int64_t wanted = (nvec + kThreads - 1) / kThreads;
  const int grid = static_cast<int>(wanted < fit ? wanted : fit);

  void* base = nullptr;
  FD_TRY(device::scratch(g_scratch, kHeaderBytes + size_t(grid) * sizeof(double), &base));

  FeatParams<I> p{f.a,
                  f.b,
                  f.token_mask,
                  grad,
                  loss,
                  I(nvec),
                  I(0),
                  f.len,
                  0,
                  double(total),
                  Divider<I>(uint64_t(inner / V)),
                  Divider<I>(1),
                  Divider<I>(1),
                  static_cast<Header*>(base),
                  reinterpret_cast<double*>(static_cast<char*>(base) + kHeaderBytes)};
  if (!kAttn) {
    p.tokens = I(f.batch * f.len);
    p.per_count = f.layers * f.hidden;
    p.div1 = Divider<I>(uint64_t(f.batch * f.len));
  } else {
    p.tokens = I(f.batch);
    p.per_count = f.heads;
    p.div1 = Divider<I>(uint64_t(f.len));
    p.div2 = Divider<I>(uint64_t(f.heads));
  }
  void* args[] = {&p};
  return device::launch(kernel, grid, kThreads, 0, args, f.token_mask != nullptr);
}

template <bool kAttn>
Status feature_mse(const FeatureArgs& f, float* grad, float* loss) {
  FD_TRY(device::init());
  const int64_t inner = kAttn ? f.len : f.hidden;
  const int64_t total = kAttn ? f.batch * f.heads * f.len * f.len : f.layers * f.batch * f.len * f.hidden;
  if (total <= 0) {
    FD_CUDA_TRY(cudaMemsetAsync(loss, 0, sizeof(float), device::stream()));
    return kOk;
  }
  // float4 when rows split into whole vectors and every pointer read that way is 16-byte aligned.
  const bool vec = inner % 4 == 0 && aligned16(f.a) && aligned16(f.b) && (!grad || aligned16(grad)) &&
                   (!kAttn || !f.token_mask || aligned16(f.token_mask));
  // 32-bit indices while every index (and the tokens' rows) stays below 2^31.
  const bool small = total < (int64_t(1) << 31);
  if (vec)
    return small ? launch_feature<kAttn, 4, uint32_t>(f, grad, loss, total, inner)
                 : launch_feature<kAttn, 4, uint64_t>(f, grad, loss, total, inner);
  return small ? launch_feature<kAttn, 1, uint32_t>(f, grad, loss, total, inner)
               : launch_feature<kAttn, 1, uint64_t>(f, grad, loss, total, inner);
}

}  // namespace

Status hidden_mse_cuda(const FeatureArgs& args, float* grad_dev, float* loss_dev) {
  return feature_mse<false>(args, grad_dev, loss_dev);
}

Status attention_mse_cuda(const FeatureArgs& args, float* grad_dev, float* loss_dev) {
  return feature_mse<true>(args, grad_dev, loss_dev);
}

}  // namespace fd
