// fd::ranking_objective_cuda: the seven prediction-layer terms, loss and gradient, in ONE launch.
//
// A persistent kernel: the grid is at most the blocks that fit on the GPU at once, each warp (rows of
// <= 1024 columns, values held in registers) or each block (longer rows, re-read from global memory)
// walks rows with a grid stride.
//
// The gradient needs each term's count N_k (the mean's denominator, over ALL rows) before it can be
// written, and some counts depend on the data: the pairs, ListCE's rows, and every set under a mask.
// With a gradient and such a count the kernel runs two phases, split by a grid barrier (an atomic
// counter, cuda::grid_barrier; launched with cudaLaunchCooperativeKernel so all blocks are resident):
//   1. count (integer atomics: exact) and do the pairwise terms in full: their O(G^2) work is too
//      costly to do twice, so their loss sums are kept and their gradient, still to be divided by
//      N_pairs, is parked in grad;
//   2. with coef_k = w_k / N_k, the O(G) terms, plus the parked pairwise gradient / N_pairs.
// Otherwise (no gradient, or every count known on the host) one phase does it all.
//
// Determinism: no float atomics. Each thread sums in a fixed order (double across rows), warps by
// butterfly, blocks in warp order; each block leaves one double per term and the last block to finish
// adds those in block order. The grid depends only on the device and the shape.
#include <climits>
#include <type_traits>

#include "cuda_common.cuh"
#include "fd_math.h"
#include "losses.h"

namespace fd {
namespace {

using cuda::kFullMask;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxWarpCols = 1024;               // longer rows: a block per row
constexpr size_t kMaxBlockPairSmem = 96 * 1024;  // longer rows keep their pair buffers in global scratch

// The sets the means run over; RankNet and Hinge share the pairs, BCE and ScoreMSE the valid entries.
enum CountId : int { kNValid, kNPairs, kNListRows, kNKLRows, kNMargin, kNumCounts };

__host__ __device__ constexpr int count_id(int term) {
  return term == kPairwiseRankNet || term == kPairwiseHinge ? kNPairs
         : term == kListwiseSoftmaxCE                       ? kNListRows
         : term == kDistillKL                               ? kNKLRows
         : term == kMarginMSE                               ? kNMargin
                                                            : kNValid;
}

// Start of the scratch buffer: zero between launches (the last block resets what it used).
struct Header {
  unsigned long long count[kNumCounts];
  unsigned barrier;
  unsigned ticket;
};
constexpr size_t kHeaderBytes = 256;

struct Params {
  const float* s;
  const float* t;
  const float* y;
  const float* mask;
  float* grad;
  float* result;
  int64_t rows;
  int cols;
  unsigned on;  // bit k: weight[k] != 0
  float w[kNumTerms];
  float coef[kNumTerms];  // w_k / N_k, from the host when every count is known there (one phase)
  float temperature, inv_t, sigma, margin;
  bool two_phase;
  Header* hdr;
  double* partials;  // [grid][kNumTerms]
  float* rowbuf;     // block-per-row pair buffers when they do not fit in shared memory
};

constexpr unsigned bit(int k) { return 1u << k; }
constexpr unsigned kPairBits = bit(kPairwiseRankNet) | bit(kPairwiseHinge);
constexpr unsigned kNeedsT = bit(kDistillKL) | bit(kMarginMSE) | bit(kScoreMSE);
constexpr unsigned kNeedsY = bit(kPointwiseBCE) | kPairBits | bit(kListwiseSoftmaxCE);
constexpr unsigned kPointwise = bit(kPointwiseBCE) | bit(kListwiseSoftmaxCE) | kNeedsT;

struct Acc {
  double loss[kNumTerms];
  long long n[kNumCounts];
};

__device__ __forceinline__ float quiet_nan() { return bits_float(0x7fc00000); }

// A masked entry's label in the pair buffers: a NaN whose bits no valid label keeps (pair_label
// stores a valid NaN label as quiet_nan()), so pair_term can tell padding from a NaN label.
constexpr int32_t kMaskedLabelBits = int32_t(0xffc0fd00u);
__device__ __forceinline__ float pair_label(bool valid, float y) {
  return valid ? (y != y ? quiet_nan() : y) : bits_float(kMaskedLabelBits);
}
__device__ __forceinline__ bool masked_label(float y) { return float_bits(y) == kMaskedLabelBits; }

// ---- how a row is held and reduced ----

// Warp per row: lane owns entries lane + 32c (c < E), loaded once into registers. Masked entries
// read as 0 and carry a clear valid bit; every use selects on it.
template <int E>
struct WarpRow {
  static constexpr bool kCacheExp = E <= 16;  // keep KL's exponentials (E = 32 would spill)
  int cols, lane;
  unsigned vbits;
  float s_[E], t_[E], y_[E];
  float es[E], et[E];

  __device__ __forceinline__ int idx(int c) const { return lane + 32 * c; }
  template <class F>
  __device__ __forceinline__ void each(F&& f) {
#pragma unroll
    for (int c = 0; c < E; ++c)
      if (idx(c) < cols) f(c, idx(c));
  }
  __device__ __forceinline__ bool v(int c, int) const { return (vbits >> c) & 1u; }
  __device__ __forceinline__ float s(int c, int) const { return s_[c]; }
  __device__ __forceinline__ float t(int c, int) const { return t_[c]; }
  __device__ __forceinline__ float y(int c, int) const { return y_[c]; }

  // Asks L2 for a row this warp will load later (one 128-byte line per lane and array), so that its
  // DRAM reads overlap the current row's math instead of following it.
  __device__ __forceinline__ static void prefetch(const Params& p, int64_t row, bool ls, bool lt, bool ly) {
    const int64_t base = row * p.cols;
    for (int off = (threadIdx.x & 31) * 32; off < p.cols; off += 32 * 32) {
      if (p.mask) cuda::prefetch_l2(p.mask + base + off);
      if (ls) cuda::prefetch_l2(p.s + base + off);
      if (lt) cuda::prefetch_l2(p.t + base + off);
      if (ly) cuda::prefetch_l2(p.y + base + off);
    }
  }

  __device__ __forceinline__ void load(const Params& p, int64_t row, bool ls, bool lt, bool ly) {
    cols = p.cols;
    lane = threadIdx.x & 31;
    const int64_t base = row * p.cols;
    vbits = 0;
#pragma unroll
    for (int c = 0; c < E; ++c) {
      const int i = idx(c);
      const bool in = i < cols;
      // All loads issue before any is used: the mask does not gate the value loads.
      const float m = in && p.mask ? __ldg(p.mask + base + i) : 1.0f;
      const float sv = in && ls ? __ldg(p.s + base + i) : 0.0f;
      const float tv = in && lt ? __ldg(p.t + base + i) : 0.0f;
      const float yv = in && ly ? __ldg(p.y + base + i) : 0.0f;
      const bool ok = in && m != 0.0f;
      vbits |= unsigned(ok) << c;
      s_[c] = ok ? sv : 0.0f;
      t_[c] = ok ? tv : 0.0f;
      y_[c] = ok ? yv : 0.0f;
    }
  }
};

// Block per row: thread owns entries tid + blockDim*c, read from global memory at each use (rows
// this long stay in L1/L2 across the passes).
struct BlockRow {
  static constexpr bool kCacheExp = false;
  int cols;
  const float *s_, *t_, *y_, *m_;
  float es[1], et[1];  // unused

  template <class F>
  __device__ __forceinline__ void each(F&& f) {
    int c = 0;
    for (int i = threadIdx.x; i < cols; i += blockDim.x, ++c) f(c, i);
  }
  __device__ __forceinline__ bool v(int, int i) const { return m_ == nullptr || __ldg(m_ + i) != 0.0f; }
  __device__ __forceinline__ float s(int c, int i) const { return v(c, i) ? __ldg(s_ + i) : 0.0f; }
  __device__ __forceinline__ float t(int c, int i) const { return v(c, i) ? __ldg(t_ + i) : 0.0f; }
  __device__ __forceinline__ float y(int c, int i) const { return v(c, i) ? __ldg(y_ + i) : 0.0f; }

  __device__ __forceinline__ static void prefetch(const Params&, int64_t, bool, bool, bool) {}

  __device__ __forceinline__ void load(const Params& p, int64_t row, bool, bool, bool) {
    cols = p.cols;
    const int64_t base = row * p.cols;
    s_ = p.s + base;
    t_ = p.t ? p.t + base : nullptr;
    y_ = p.y ? p.y + base : nullptr;
    m_ = p.mask ? p.mask + base : nullptr;
  }
};

struct WarpGroup {
  __device__ __forceinline__ static bool leader() { return (threadIdx.x & 31) == 0; }
  template <int N>
  __device__ __forceinline__ static void sum(float (&x)[N]) {
#pragma unroll
    for (int n = 0; n < N; ++n) x[n] = cuda::warp_sum(x[n]);
  }
  template <int N>
  __device__ __forceinline__ static void max(float (&x)[N]) {
#pragma unroll
    for (int n = 0; n < N; ++n) x[n] = cuda::warp_max(x[n]);
  }
  __device__ __forceinline__ static bool any(bool b) { return __any_sync(kFullMask, b); }
  // The value held by the owner of entry 0 (lane 0).
  template <class T>
  __device__ __forceinline__ static T from_first(T x) {
    return __shfl_sync(kFullMask, x, 0);
  }
};

struct BlockGroup {
  __device__ __forceinline__ static bool leader() { return threadIdx.x == 0; }
  template <int N>
  __device__ __forceinline__ static void sum(float (&x)[N]) {
    cuda::block_sum(x);
  }
  template <int N>
  __device__ __forceinline__ static void max(float (&x)[N]) {
    __shared__ float red[N][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
    for (int n = 0; n < N; ++n) {
      x[n] = cuda::warp_max(x[n]);
      if (lane == 0) red[n][warp] = x[n];
    }
    __syncthreads();
#pragma unroll
    for (int n = 0; n < N; ++n) {
      float m = red[n][0];
      for (int w = 1; w < warps; ++w) m = fmaxf(m, red[n][w]);
      x[n] = m;
    }
    __syncthreads();
  }
  __device__ __forceinline__ static bool any(bool b) { return __syncthreads_or(b) != 0; }
  template <class T>
  __device__ __forceinline__ static T from_first(T x) {
    __shared__ T v;
    if (threadIdx.x == 0) v = x;
    __syncthreads();
    const T r = v;
    __syncthreads();
    return r;
  }
};

// Term k is on: compiled into this variant (A, a term bitmask) and given a non-zero weight.
template <unsigned A>
__device__ __forceinline__ bool on(const Params& p, int k) {
  return ((A & p.on) >> k) & 1u;
}

// ---- pairwise terms ----

// One unordered pair (i, j), visited once when `active`. Adds its losses and returns whether it is
// a pair, with the weighted (not yet divided by N_pairs) d/ds_i in gi; d/ds_j is -gi. Not a pair:
// equal labels, or a masked entry (pair_label: its label is a marked NaN, so both comparisons fail).
// Two valid entries, one with a NaN label, are a pair of unknown order whose loss and gradient are NaN
// (as on the CPU, kernels/cpu/pairwise.h). Branch-free, so the compiler can interleave a lane's
// pairs; non-pairs are computed and selected away.
template <unsigned A>
__device__ __forceinline__ bool pair_term(const Params& p, bool active, float si, float yi, float sj, float yj,
                                          float& ranknet, float& hinge, float& gi) {
  const bool i_hi = yi > yj;
  const bool unordered = (yi != yi || yj != yj) && !masked_label(yi) && !masked_label(yj);
  const bool is_pair = active && (i_hi || yj > yi || unordered);
  const float nan_or_0 = unordered ? quiet_nan() : 0.0f;  // added to a pair's loss and gradient
  const float diff = i_hi ? si - sj : sj - si;            // s_better - s_worse
  float g_hi = 0.0f;
  if (on<A>(p, kPairwiseRankNet)) {
    const SoftplusSigmoid r = softplus_sigmoid(-p.sigma * diff);
    ranknet += is_pair ? r.softplus + nan_or_0 : 0.0f;
    g_hi -= p.w[kPairwiseRankNet] * p.sigma * r.sigmoid;
  }
  if (on<A>(p, kPairwiseHinge)) {
    const float h = p.margin - diff;
    hinge += is_pair ? (!(h < 0.0f) ? h : 0.0f) + nan_or_0 : 0.0f;  // a NaN h reaches the loss
    g_hi -= h > 0.0f ? p.w[kPairwiseHinge] : 0.0f;
  }
  gi = is_pair ? (i_hi ? g_hi : -g_hi) + nan_or_0 : 0.0f;
  return is_pair;
}

// The pairs of a row in rotation order: at step d every entry i meets j = (i + d) mod G, for
// d = 1 .. G/2 (the last step only from i < j when G is even), which visits each unordered pair once
// and, within a step, gives every i a different j. So the partner's share of the gradient can be added
// to pa[j] in shared memory without atomics, in a fixed order. The warp version keeps i's own share
// in registers; the block version in a fourth buffer.
template <unsigned A, int E>
__device__ void pairs_row(const Params& p, WarpRow<E>& r, int64_t row, Acc& acc, float* buf) {
  const int cols = r.cols;
  float* ss = buf;
  float* yy = buf + cols;
  float* pa = buf + 2 * cols;
  float own[E];
#pragma unroll
  for (int c = 0; c < E; ++c) {
    const int i = r.idx(c);
    own[c] = 0.0f;
    if (i < cols) {
      ss[i] = r.s_[c];
      yy[i] = pair_label(r.v(c, i), r.y_[c]);
      pa[i] = 0.0f;
    }
  }
  __syncwarp();
  double rn_sum = 0.0, hg_sum = 0.0;
  long long npairs = 0;
  const int half = cols >> 1;
  for (int d = 1; d <= half; ++d) {
    float rn = 0.0f, hg = 0.0f;
#pragma unroll
    for (int c = 0; c < E; ++c) {
      const int i = r.idx(c);
      int j = i + d;
      j = i >= cols ? 0 : (j >= cols ? j - cols : j);  // lanes past the row read entry 0, unused
      const bool active = i < cols && (2 * d != cols || i < j);
      const float yi = pair_label(r.v(c, i), r.y_[c]);
      float gi;
      npairs += pair_term<A>(p, active, r.s_[c], yi, ss[j], yy[j], rn, hg, gi);
      own[c] += gi;
      if (active) pa[j] -= gi;
    }
    rn_sum += rn;
    hg_sum += hg;
    __syncwarp();
  }
  acc.loss[kPairwiseRankNet] += rn_sum;
  acc.loss[kPairwiseHinge] += hg_sum;
  acc.n[kNPairs] += npairs;
  if (p.grad) {
    float* g = p.grad + row * cols;
#pragma unroll
    for (int c = 0; c < E; ++c)
      if (r.idx(c) < cols) g[r.idx(c)] = own[c] + pa[r.idx(c)];
  }
  __syncwarp();  // buf is reused by the next row
}

template <unsigned A>
__device__ void pairs_row(const Params& p, BlockRow& r, int64_t row, Acc& acc, float* buf) {
  const int cols = r.cols;
  float* ss = buf;
  float* yy = buf + cols;
  float* pa = buf + 2 * cols;
  float* ow = buf + 3 * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    ss[i] = r.s(0, i);
    yy[i] = pair_label(r.v(0, i), r.y(0, i));
    pa[i] = 0.0f;
    ow[i] = 0.0f;
  }
  __syncthreads();
  double rn_sum = 0.0, hg_sum = 0.0;
  long long npairs = 0;
  const int half = cols >> 1;
  for (int d = 1; d <= half; ++d) {
    float rn = 0.0f, hg = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
      int j = i + d;
      j = j >= cols ? j - cols : j;
      const bool active = 2 * d != cols || i < j;
      float gi;
      npairs += pair_term<A>(p, active, ss[i], yy[i], ss[j], yy[j], rn, hg, gi);
      if (active) {
        ow[i] += gi;
        pa[j] -= gi;
      }
    }
    rn_sum += rn;
    hg_sum += hg;
    __syncthreads();
  }
  acc.loss[kPairwiseRankNet] += rn_sum;
  acc.loss[kPairwiseHinge] += hg_sum;
  acc.n[kNPairs] += npairs;
  if (p.grad) {
    float* g = p.grad + row * cols;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) g[i] = ow[i] + pa[i];
  }
  __syncthreads();
}

// ---- per-row work ----

// Phase 1: this row's share of each data-dependent count, and the pairwise terms.
template <unsigned A, class G, class R>
__device__ __forceinline__ void count_row(const Params& p, R& r, int64_t row, Acc& acc, float* buf) {
  if (on<A>(p, kPointwiseBCE) || on<A>(p, kScoreMSE)) {
    long long n = 0;
    r.each([&](int c, int i) { n += r.v(c, i); });
    acc.n[kNValid] += n;
  }
  if (on<A>(p, kDistillKL)) {
    bool any = false;
    r.each([&](int c, int i) { any = any || r.v(c, i); });
    if (G::any(any) && G::leader()) acc.n[kNKLRows] += 1;
  }
  if (on<A>(p, kListwiseSoftmaxCE)) {
    float ysum[1] = {0.0f};
    r.each([&](int c, int i) { ysum[0] += r.v(c, i) ? r.y(c, i) : 0.0f; });
    G::sum(ysum);
    if (G::leader() && !(ysum[0] <= 0.0f)) acc.n[kNListRows] += 1;  // a NaN sum stays in (listwise.h)
  }
  if (on<A>(p, kMarginMSE)) {
    int v0 = 0;
    r.each([&](int c, int i) { v0 = i == 0 ? int(r.v(c, i)) : v0; });
    if (G::from_first(v0)) {
      long long n = 0;
      r.each([&](int c, int i) { n += i > 0 && r.v(c, i); });
      acc.n[kNMargin] += n;
    }
  }
  if (A & p.on & kPairBits) pairs_row<A>(p, r, row, acc, buf);
}

// Phase 2: the O(G) terms and the row's gradient (written once, 0 where masked).
template <unsigned A, class G, class R>
__device__ __forceinline__ void pointwise_row(const Params& p, R& r, int64_t row, Acc& acc,
                                              const float (&coef)[kNumTerms], float inv_pairs) {
  const bool bce = on<A>(p, kPointwiseBCE), lce = on<A>(p, kListwiseSoftmaxCE), kl = on<A>(p, kDistillKL);
  const bool mm = on<A>(p, kMarginMSE), mse = on<A>(p, kScoreMSE), pairs = (A & p.on & kPairBits) != 0;
  float* grad = p.grad ? p.grad + row * p.cols : nullptr;
  const float inv_t = p.inv_t;

  // Pass 1: softmax stabilizers (max of s, t for KL; of s for ListCE), ListCE's label sum, entry 0.
  // KL shifts its logits before scaling them, (t - max t) / T, as the CPU kernel does (distill.h):
  // identical distributions then give a log ratio of exactly 0.
  float mx[3] = {-kInf, -kInf, -kInf};
  float ysum[1] = {0.0f};
  float s0 = 0.0f, t0 = 0.0f;
  int v0 = 0;
  if (kl || lce || mm) {
    r.each([&](int c, int i) {
      const bool v = r.v(c, i);
      if (kl) {
        mx[0] = fmaxf(mx[0], v ? r.s(c, i) : -kInf);
        mx[1] = fmaxf(mx[1], v ? r.t(c, i) : -kInf);
      }
      if (lce) {
        mx[2] = fmaxf(mx[2], v ? r.s(c, i) : -kInf);
        ysum[0] += v ? r.y(c, i) : 0.0f;
      }
      if (mm && i == 0) {
        s0 = r.s(c, i);
        t0 = r.t(c, i);
        v0 = v;
      }
    });
    if (kl || lce) G::max(mx);
    if (lce) G::sum(ysum);
    if (mm) {
      s0 = G::from_first(s0);
      t0 = G::from_first(t0);
      v0 = G::from_first(v0);
    }
  }
  const bool list_row = lce && !(ysum[0] <= 0.0f);  // rows with sum(y) <= 0 are outside ListCE's set

  // Pass 2: softmax denominators, ListCE's sum of y*s, MarginMSE's sum of d (entry 0's gradient).
  float zkl[2] = {0.0f, 0.0f};  // sum e^((s - max) / T), sum e^((t - max) / T)
  float zl[2] = {0.0f, 0.0f};   // ListCE: sum e^(s - max), sum y*s
  float zm[1] = {0.0f};         // MarginMSE: sum of d (entry 0's gradient)
  float part_mm = 0.0f;
  if (kl || list_row || mm) {
    r.each([&](int c, int i) {
      const bool v = r.v(c, i);
      if (kl) {
        const float es = v ? fast_exp((r.s(c, i) - mx[0]) * inv_t) : 0.0f;
        const float et = v ? fast_exp((r.t(c, i) - mx[1]) * inv_t) : 0.0f;
        if constexpr (R::kCacheExp) {
          r.es[c] = es;
          r.et[c] = et;
        }
        zkl[0] += es;
        zkl[1] += et;
      }
      if (list_row) {
        zl[0] += v ? fast_exp(r.s(c, i) - mx[2]) : 0.0f;
        zl[1] += v ? r.y(c, i) * r.s(c, i) : 0.0f;
      }
      if (mm) {
        const bool in = v && v0 && i > 0;
        const float d = (s0 - r.s(c, i)) - (t0 - r.t(c, i));
        zm[0] += in ? d : 0.0f;
        part_mm += in ? d * d : 0.0f;
      }
    });
    if (kl) G::sum(zkl);
    if (list_row) G::sum(zl);
    if (mm) G::sum(zm);
  }
  const float lz_s = fast_log(zkl[0]), lz_t = fast_log(zkl[1]);
  const float inv_zs = 1.0f / zkl[0], inv_zt = 1.0f / zkl[1];
  const float lse_l = mx[2] + fast_log(zl[0]);
  const float inv_y = 1.0f / ysum[0];
  // ListCE per row: lse(s) - sum(y*s)/Y (sum(y)/Y = 1); added once, by the leader.
  float part_lce = list_row && G::leader() ? lse_l - zl[1] * inv_y : 0.0f;

  // Pass 3: per-entry losses and the gradient.
  float part_bce = 0.0f, part_kl = 0.0f, part_mse = 0.0f;
  const float kl_gcoef = coef[kDistillKL] * p.temperature;
  const float mm_gcoef = 2.0f * coef[kMarginMSE];
  const float mse_gcoef = 2.0f * coef[kScoreMSE];
  r.each([&](int c, int i) {
    const bool v = r.v(c, i);
    const float s = r.s(c, i);
    float g = 0.0f;
    if (bce) {
      const float y = r.y(c, i);
      const SoftplusSigmoid sp = softplus_sigmoid(s);
      part_bce += v ? sp.softplus - y * s : 0.0f;
      g += coef[kPointwiseBCE] * (sp.sigmoid - y);
    }
    if (pairs && grad) g += inv_pairs * grad[i];  // parked by phase 1
    if (list_row) g += coef[kListwiseSoftmaxCE] * (fast_exp(s - lse_l) - r.y(c, i) * inv_y);
    if (kl) {
      const float t = r.t(c, i);
      float et, es;
      if constexpr (R::kCacheExp) {
        et = r.et[c];
        es = r.es[c];
      } else {
        et = fast_exp((t - mx[1]) * inv_t);
        es = fast_exp((s - mx[0]) * inv_t);
      }
      const float pp = et * inv_zt;
      const float log_ratio = ((t - mx[1]) * inv_t - lz_t) - ((s - mx[0]) * inv_t - lz_s);
      part_kl += v && pp != 0.0f ? pp * log_ratio : 0.0f;  // p == 0 adds 0, not 0 * -inf
      g += kl_gcoef * softmax_difference(es, inv_zs, et, inv_zt);
    }
    if (mm) {
      const float d = (s0 - s) - (t0 - r.t(c, i));
      g -= v0 && i > 0 ? mm_gcoef * d : 0.0f;
      g += v0 && i == 0 ? mm_gcoef * zm[0] : 0.0f;
    }
    if (mse) {
      const float d = s - r.t(c, i);
      part_mse += v ? d * d : 0.0f;
      g += mse_gcoef * d;
    }
    if (grad) grad[i] = v ? g : 0.0f;
  });
  acc.loss[kPointwiseBCE] += part_bce;
  acc.loss[kListwiseSoftmaxCE] += part_lce;
  acc.loss[kDistillKL] += part_kl;
  acc.loss[kMarginMSE] += part_mm;
  acc.loss[kScoreMSE] += part_mse;
}

// ---- the kernel ----

// Blocks per SM the register budget aims at: two (16 warps) to hide memory latency, except where
// the cached row is too large to fit 128 registers without heavy spills.
constexpr int min_blocks(int e, unsigned a) {
  return a == kPairBits && e > 0 && e <= 4 ? 4 : e == 0 || e == 32 || (e == 16 && (a & kPairBits)) ? 1 : 2;
}

// E > 0: a warp per row, E entries per lane; E == 0: a block per row.
// A: the terms compiled in (see kVariants): fewer terms, fewer registers.
template <int E, unsigned A>
__global__ void __launch_bounds__(kThreads, min_blocks(E, A)) objective_kernel(const Params p) {
  using Row = std::conditional_t<(E > 0), WarpRow<(E > 0 ? E : 1)>, BlockRow>;
  using Grp = std::conditional_t<(E > 0), WarpGroup, BlockGroup>;
  extern __shared__ float dyn_smem[];

  const int warp = threadIdx.x >> 5;
  const int64_t first = E > 0 ? int64_t(blockIdx.x) * kWarps + warp : int64_t(blockIdx.x);
  const int64_t stride = E > 0 ? int64_t(gridDim.x) * kWarps : int64_t(gridDim.x);
  float* buf = E > 0 ? dyn_smem + size_t(warp) * 3 * p.cols
                     : (p.rowbuf ? p.rowbuf + size_t(blockIdx.x) * 4 * p.cols : dyn_smem);

  const bool pairs = (A & p.on & kPairBits) != 0;
  const bool any_pointwise = (A & p.on & kPointwise) != 0;
  const bool needs_t = (A & p.on & kNeedsT) != 0, needs_y = (A & p.on & kNeedsY) != 0;

  Acc acc;
#pragma unroll
  for (int k = 0; k < kNumTerms; ++k) acc.loss[k] = 0.0;
#pragma unroll
  for (int k = 0; k < kNumCounts; ++k) acc.n[k] = 0;
  float coef[kNumTerms];
#pragma unroll
  for (int k = 0; k < kNumTerms; ++k) coef[k] = p.coef[k];
  float inv_pairs = 0.0f;

  // Phase 1 (or the only one).
  Row r;
  for (int64_t row = first; row < p.rows; row += stride) {
    if (p.two_phase) {
      const bool ly = pairs || on<A>(p, kListwiseSoftmaxCE);
      if (row + stride < p.rows) Row::prefetch(p, row + stride, pairs, false, ly);
      r.load(p, row, pairs, false, ly);
      count_row<A, Grp>(p, r, row, acc, buf);
    } else {
      if (row + stride < p.rows) Row::prefetch(p, row + stride, true, needs_t, needs_y);
      r.load(p, row, true, needs_t, needs_y);
      count_row<A, Grp>(p, r, row, acc, buf);
      pointwise_row<A, Grp>(p, r, row, acc, coef, inv_pairs);
    }
  }
  // Counts into the header: integers, so the order of the atomics does not matter.
  {
    long long n[kNumCounts];
#pragma unroll
    for (int k = 0; k < kNumCounts; ++k) n[k] = acc.n[k];
    cuda::block_sum(n);
    if (threadIdx.x == 0) {
#pragma unroll
      for (int k = 0; k < kNumCounts; ++k)
        if (n[k] != 0) atomicAdd(&p.hdr->count[k], static_cast<unsigned long long>(n[k]));
    }
  }
  // Phase 2: every count is final past the barrier.
  if (p.two_phase) {
    cuda::grid_barrier(&p.hdr->barrier);
    unsigned long long n[kNumCounts];
#pragma unroll
    for (int k = 0; k < kNumCounts; ++k) n[k] = cuda::load_volatile(&p.hdr->count[k]);
#pragma unroll
    for (int k = 0; k < kNumTerms; ++k) {
      const unsigned long long nk = n[count_id(k)];
      coef[k] = on<A>(p, k) && nk > 0 ? static_cast<float>(double(p.w[k]) / double(nk)) : 0.0f;
    }
    inv_pairs = n[kNPairs] > 0 ? static_cast<float>(1.0 / double(n[kNPairs])) : 0.0f;
    const bool ly = on<A>(p, kPointwiseBCE) || on<A>(p, kListwiseSoftmaxCE);
    for (int64_t row = first; row < p.rows; row += stride) {
      if (row + stride < p.rows) Row::prefetch(p, row + stride, any_pointwise, needs_t, ly);
      r.load(p, row, any_pointwise, needs_t, ly);
      pointwise_row<A, Grp>(p, r, row, acc, coef, inv_pairs);
    }
  }

  // Loss sums: block, then across blocks in the last one to finish.
  double sums[kNumTerms];
#pragma unroll
  for (int k = 0; k < kNumTerms; ++k) sums[k] = acc.loss[k];
  cuda::block_sum(sums);
  if (!cuda::last_block_sum(sums, p.partials, &p.hdr->ticket)) return;
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int k = 0; k < kNumTerms; ++k) {
      const unsigned long long nk = cuda::load_volatile(&p.hdr->count[count_id(k)]);
      double part = 0.0;
      if (on<A>(p, k) && nk > 0) {
        const double scale = k == kDistillKL ? double(p.temperature) * double(p.temperature) : 1.0;
        part = double(p.w[k]) * (sums[k] * scale) / double(nk);
      }
      total += part;
      p.result[1 + k] = static_cast<float>(part);
    }
    p.result[0] = static_cast<float>(total);
#pragma unroll
    for (int k = 0; k < kNumCounts; ++k) p.hdr->count[k] = 0;
    p.hdr->barrier = 0;
  }
}

// Compiled term sets, smallest first; a call runs the first that holds all its terms.
constexpr unsigned kAllTerms = (1u << kNumTerms) - 1;
constexpr unsigned kVariants[5] = {bit(kDistillKL), kNeedsT, kPairBits, kAllTerms & ~kPairBits, kAllTerms};

template <unsigned A>
const void* kernel_for(int e) {
  switch (e) {
    case 1: return reinterpret_cast<const void*>(&objective_kernel<1, A>);
    case 2: return reinterpret_cast<const void*>(&objective_kernel<2, A>);
    case 4: return reinterpret_cast<const void*>(&objective_kernel<4, A>);
    case 8: return reinterpret_cast<const void*>(&objective_kernel<8, A>);
    case 16: return reinterpret_cast<const void*>(&objective_kernel<16, A>);
    case 32: return reinterpret_cast<const void*>(&objective_kernel<32, A>);
    default: return reinterpret_cast<const void*>(&objective_kernel<0, A>);
  }
}

const void* kernel_for(int e, unsigned on) {
  if ((on & ~kVariants[0]) == 0) return kernel_for<kVariants[0]>(e);
  if ((on & ~kVariants[1]) == 0) return kernel_for<kVariants[1]>(e);
  if ((on & ~kVariants[2]) == 0) return kernel_for<kVariants[2]>(e);
  if ((on & ~kVariants[3]) == 0) return kernel_for<kVariants[3]>(e);
  return kernel_for<kVariants[4]>(e);
}

// Entries per lane for warp-per-row (a power of two >= cols / 32), or 0 for block-per-row.
int entries_per_lane(int64_t cols) {
  if (cols > kMaxWarpCols) return 0;
  int e = 1;
  while (32 * e < cols) e *= 2;
  return e;
}

device::Scratch g_scratch;

}  // namespace

Status ranking_objective_cuda(const ObjectiveArgs& a, float* grad_dev, float* result_dev) {
  FD_TRY(device::init());
  if (a.rows <= 0 || a.cols <= 0) {
    FD_CUDA_TRY(cudaMemsetAsync(result_dev, 0, sizeof(float) * (1 + kNumTerms), device::stream()));
    return kOk;
  }
  if (a.cols > INT_MAX / 16)
    return device::fail_with(kCudaError, "ranking_objective_cuda: rows longer than 2^27 candidates are not supported");

  Params p{};
  p.s = a.s;
  p.t = a.t;
  p.y = a.y;
  p.mask = a.mask;
  p.grad = grad_dev;
  p.result = result_dev;
  p.rows = a.rows;
  p.cols = static_cast<int>(a.cols);
  for (int k = 0; k < kNumTerms; ++k) {
    p.w[k] = a.weight[k];
    if (a.weight[k] != 0.0f) p.on |= bit(k);
  }
  p.temperature = a.temperature;
  p.inv_t = 1.0f / a.temperature;
  p.sigma = a.sigma;
  p.margin = a.margin;

  // One phase unless a gradient must wait for a count only the data can give.
  const bool pairs = (p.on & kPairBits) != 0;
  const bool data_counts = pairs || (p.on & bit(kListwiseSoftmaxCE)) || (a.mask && (p.on & kPointwise));
  p.two_phase = grad_dev != nullptr && data_counts;
  if (!p.two_phase) {
    // Unmasked counts (only these are used here): entries, rows, entries after the first.
    long long n[kNumCounts] = {};
    n[kNValid] = a.rows * a.cols;
    n[kNKLRows] = a.rows;
    n[kNMargin] = a.rows * (a.cols - 1);
    for (int k = 0; k < kNumTerms; ++k) {
      const long long nk = n[count_id(k)];
      p.coef[k] = nk > 0 ? static_cast<float>(double(a.weight[k]) / double(nk)) : 0.0f;
    }
  }

  const int e = entries_per_lane(a.cols);
  size_t smem = 0;
  bool use_rowbuf = false;
  if (pairs) {
    if (e > 0)
      smem = size_t(kWarps) * 3 * a.cols * sizeof(float);
    else if (4 * a.cols * sizeof(float) <= kMaxBlockPairSmem)
      smem = 4 * a.cols * sizeof(float);
    else
      use_rowbuf = true;
  }
  const void* kernel = kernel_for(e, p.on);
  int fit = 0;
  FD_TRY(device::coresident_blocks(kernel, kThreads, smem, &fit));
  const int64_t wanted = e > 0 ? (a.rows + kWarps - 1) / kWarps : a.rows;
  const int grid = static_cast<int>(wanted < fit ? wanted : fit);

  size_t bytes = kHeaderBytes + size_t(grid) * kNumTerms * sizeof(double);
  const size_t rowbuf_offset = bytes;
  if (use_rowbuf) bytes += size_t(grid) * 4 * a.cols * sizeof(float);
  void* base = nullptr;
  FD_TRY(device::scratch(g_scratch, bytes, &base));
  p.hdr = static_cast<Header*>(base);
  p.partials = reinterpret_cast<double*>(static_cast<char*>(base) + kHeaderBytes);
  p.rowbuf = use_rowbuf ? reinterpret_cast<float*>(static_cast<char*>(base) + rowbuf_offset) : nullptr;

  void* args[] = {&p};
  return device::launch(kernel, grid, kThreads, smem, args, p.two_phase);
}

}  // namespace fd
