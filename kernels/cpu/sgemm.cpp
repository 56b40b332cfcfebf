// Packed, cache-blocked SGEMM (GotoBLAS/BLIS structure). C is cut into units, rectangles of one
// batch entry's C and the parallel work items, so batched small products and one large product share
// one loop. Per KC-long slice of k a unit packs its columns of op(B) into NR-wide panels once, then,
// per block of MC rows, its rows of op(A) into MR-row panels (thread-local buffers reused across
// calls), and runs the register-blocked micro-kernel: B panels outer (one stays in L1), A panels
// inner (the packed A block stays in L2).
#include "../gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "parallel.h"

#if defined(__x86_64__) || defined(__i386__)
// GCC 12's own AVX-512 intrinsics (_mm512_undefined_ps) trip -Wmaybe-uninitialized when inlined.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define FD_GEMM_X86 1
// Per-function targets: the build may use a generic -march, the path is picked at run time.
#define FD_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define FD_AVX2 __attribute__((target("avx2,fma")))
#endif
#define FD_ALWAYS_INLINE inline __attribute__((always_inline))

namespace fd {
namespace {

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

Isa detect_isa() {
#ifdef FD_GEMM_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kScalar;
}
const Isa g_best_isa = detect_isa();

Isa active_isa() {
  Isa isa = g_best_isa;
  if (const char* want = std::getenv("FUSED_DISTILL_GEMM_ISA")) {
    if (std::strcmp(want, "scalar") == 0)
      isa = Isa::kScalar;
    else if (std::strcmp(want, "avx2") == 0)
      isa = std::min(isa, Isa::kAvx2);
  }
  return isa;
}

// A grow-only, 64-byte aligned buffer per thread: no allocation per call once warm.
struct PackBuffer {
  float* p = nullptr;
  size_t cap = 0;
  PackBuffer() = default;
  PackBuffer(const PackBuffer&) = delete;
  PackBuffer& operator=(const PackBuffer&) = delete;
  ~PackBuffer() { std::free(p); }
  float* get(size_t n) {
    if (n <= cap) return p;
    std::free(p);
    cap = 0;
    p = static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) & ~size_t{63}));
    if (p) cap = n;
    return p;
  }
};
thread_local PackBuffer tl_pack_a, tl_pack_b;

// One call's blocking. A unit (the parallel work item) is a unit_m x unit_n rectangle of one batch
// entry's C: per k slice it packs its columns of op(B) once, then its rows of op(A) in blocks of mc.
struct Plan {
  int64_t kc;              // k slice
  int64_t mc;              // rows per packed A block (multiple of MR)
  int64_t unit_m, unit_n;  // multiples of MR and NR
  int64_t grid_m, grid_n, units;
};

struct Job {
  const GemmArgs* g;
  Plan plan;
};

// Unit u: batch entry bi, rows [i0, i0+mu) and columns [j0, j0+nu) of C, that entry's A and B.
struct Unit {
  int64_t bi, i0, j0, mu, nu;
  const float* a;
  const float* b;
};
Unit unit_at(const GemmArgs& g, const Plan& pl, int64_t u) {
  const int64_t per_batch = pl.grid_m * pl.grid_n;
  Unit r;
  r.bi = u / per_batch;
  const int64_t t = u % per_batch;
  r.i0 = (t / pl.grid_n) * pl.unit_m;
  r.j0 = (t % pl.grid_n) * pl.unit_n;
  r.mu = std::min(pl.unit_m, g.m - r.i0);
  r.nu = std::min(pl.unit_n, g.n - r.j0);
  r.a = g.a + (g.a_offsets ? g.a_offsets[r.bi] : r.bi * g.stride_a);
  r.b = g.b + (g.b_offsets ? g.b_offsets[r.bi] : r.bi * g.stride_b);
  return r;
}

// Micro-kernel: C[rows x cols] (+)= Apanel (kc x rows, packed k-major) * Bpanel (kc x NR, k-major).
// acc = false overwrites C (the first k slice), so each C element is one FMA chain over k.
using Kernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool acc);

// ---------------------------------------------------------------- packing
// A block: op(A) rows [i0, i0+mb) x k [p0, p0+kb) as MR-row panels, each k-major (MR floats per k);
// the last panel holds mb % MR rows and is stored compact, so its kernel reads no padding.
// B block: op(B) k [p0, p0+kb) x cols [j0, j0+nb) as NR-column panels, each kb x NR, zero-padded.
// Sources are read row by row (sequentially) wherever the layout allows it: a column walk over a
// 4 KB-strided matrix costs a TLB miss per element. The portable versions; ISAs override the hot ones.

template <int MR>
FD_ALWAYS_INLINE void pack_a_generic(const float* a, int64_t lda, bool trans, int64_t i0, int64_t mb, int64_t p0,
                                     int64_t kb, float* dst) {
  if (trans) {  // op(A)(i, p) = a[p * lda + i]: walk k outer, one source row at a time
    for (int64_t p = 0; p < kb; ++p) {
      const float* src = a + (p0 + p) * lda + i0;
      for (int64_t ir = 0; ir < mb; ir += MR) {
        const int64_t r = std::min<int64_t>(MR, mb - ir);
        float* d = dst + ir * kb + p * r;
        for (int64_t i = 0; i < r; ++i) d[i] = src[ir + i];
      }
    }
    return;
  }
  for (int64_t ir = 0; ir < mb; ir += MR) {  // op(A)(i, p) = a[i * lda + p]: gather MR rows
    const int64_t r = std::min<int64_t>(MR, mb - ir);
    const float* src = a + (i0 + ir) * lda + p0;
    float* d = dst + ir * kb;
    for (int64_t p = 0; p < kb; ++p)
      for (int64_t i = 0; i < r; ++i) d[p * r + i] = src[i * lda + p];
  }
}

template <int NR>
FD_ALWAYS_INLINE void pack_b_generic(const float* b, int64_t ldb, bool trans, int64_t p0, int64_t kb, int64_t j0,
                                     int64_t nb, float* dst) {
  if (!trans) {  // op(B)(p, j) = b[p * ldb + j]: one source row per k, spread over the panels
    for (int64_t p = 0; p < kb; ++p) {
      const float* src = b + (p0 + p) * ldb + j0;
      for (int64_t jr = 0; jr < nb; jr += NR) {
        const int64_t w = std::min<int64_t>(NR, nb - jr);
        float* d = dst + jr * kb + p * NR;
        for (int64_t j = 0; j < w; ++j) d[j] = src[jr + j];
        for (int64_t j = w; j < NR; ++j) d[j] = 0.0f;
      }
    }
    return;
  }
  for (int64_t jr = 0; jr < nb; jr += NR) {  // op(B)(p, j) = b[j * ldb + p]
    const int64_t w = std::min<int64_t>(NR, nb - jr);
    const float* src = b + (j0 + jr) * ldb + p0;
    float* d = dst + jr * kb;
    for (int64_t p = 0; p < kb; ++p) {
      for (int64_t j = 0; j < w; ++j) d[p * NR + j] = src[j * ldb + p];
      for (int64_t j = w; j < NR; ++j) d[p * NR + j] = 0.0f;
    }
  }
}

// ---------------------------------------------------------------- one unit (tile) of work

template <int MR, int NR>
struct KernelTable {
  Kernel k[MR][2];  // [rows - 1][0: cols <= NR/2 (half width), 1: full width]
};

// Asks for the next C micro-tile while the current one computes: it is usually in L3 or memory, and
// the kernel would otherwise stall on it at its start.
FD_ALWAYS_INLINE void prefetch_rows(const float* c, int64_t ldc, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; j += 16) __builtin_prefetch(c + i * ldc + j, 1, 3);
}

// Packing buffers get this many floats of slack: the vector packers store whole vectors whose tail
// lanes are overwritten by the next store (or land in the slack).
constexpr int64_t kPackSlack = 32;

// I: the ISA's policy (MR, NR, pack_a, pack_b, table()). Its packers are real calls, not inlined:
// GCC will not inline a target("avx2") function into this untargeted template under a generic -march.
template <class I>
FD_ALWAYS_INLINE void run_unit(const Job& job, int64_t u, float* pa, float* pb) {
  constexpr int MR = I::MR, NR = I::NR;
  const KernelTable<MR, NR>& kt = I::table();
  const GemmArgs& g = *job.g;
  const Plan& pl = job.plan;
  const Unit un = unit_at(g, pl, u);
  const int64_t i0 = un.i0, j0 = un.j0, mu = un.mu, nu = un.nu;
  const float* a = un.a;
  const float* b = un.b;
  float* c = g.c + un.bi * g.stride_c;
  alignas(64) float edge[MR * NR];
  for (int64_t p0 = 0; p0 < g.k; p0 += pl.kc) {
    const int64_t kb = std::min(pl.kc, g.k - p0);
    const bool acc = p0 > 0;
    I::pack_b(b, g.ldb, g.trans_b, p0, kb, j0, nu, pb);
    for (int64_t ib = i0; ib < i0 + mu; ib += pl.mc) {
      const int64_t mb = std::min(pl.mc, i0 + mu - ib);
      I::pack_a(a, g.lda, g.trans_a, ib, mb, p0, kb, pa);
      for (int64_t jr = 0; jr < nu; jr += NR) {
        const int64_t w = std::min<int64_t>(NR, nu - jr);
        const int half = w <= NR / 2 ? 0 : 1;
        const float* bp = pb + jr * kb;
        for (int64_t ir = 0; ir < mb; ir += MR) {
          const int64_t r = std::min<int64_t>(MR, mb - ir);
          const float* ap = pa + ir * kb;
          float* cp = c + (ib + ir) * g.ldc + j0 + jr;
          if (ir + MR < mb) prefetch_rows(cp + MR * g.ldc, g.ldc, std::min<int64_t>(MR, mb - ir - MR), w);
          Kernel kern = kt.k[r - 1][half];
          if (w == NR) {
            kern(kb, ap, bp, cp, g.ldc, acc);
          } else {  // a partial column panel goes through a scratch tile
            if (acc)
              for (int64_t i = 0; i < r; ++i) std::memcpy(edge + i * NR, cp + i * g.ldc, w * sizeof(float));
            kern(kb, ap, bp, edge, NR, acc);
            for (int64_t i = 0; i < r; ++i) std::memcpy(cp + i * g.ldc, edge + i * NR, w * sizeof(float));
          }
        }
      }
    }
  }
}

// Instantiates every rows x {half, full} kernel of one family.
template <int MR, int NR, template <int, int> class K, int R = MR>
struct FillTable {
  static void fill(KernelTable<MR, NR>& t) {
    t.k[R - 1][0] = &K<R, NR / 2>::run;
    t.k[R - 1][1] = &K<R, NR>::run;
    FillTable<MR, NR, K, R - 1>::fill(t);
  }
};
template <int MR, int NR, template <int, int> class K>
struct FillTable<MR, NR, K, 0> {
  static void fill(KernelTable<MR, NR>&) {}
};
template <int MR, int NR, template <int, int> class K>
KernelTable<MR, NR> make_table() {
  KernelTable<MR, NR> t{};
  FillTable<MR, NR, K>::fill(t);
  return t;
}

// ---------------------------------------------------------------- portable: 4 x 16, plain C++

template <int M, int W>  // W columns computed; the B panel stride is 16
struct ScalarKernel {
  static void run(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool acc) {
    float r[M][W];
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < W; ++j) r[i][j] = acc ? c[i * ldc + j] : 0.0f;
    for (int64_t p = 0; p < kc; ++p) {
      for (int i = 0; i < M; ++i) {
        const float ai = a[i];
        for (int j = 0; j < W; ++j) r[i][j] += ai * b[j];
      }
      a += M;
      b += 16;
    }
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < W; ++j) c[i * ldc + j] = r[i][j];
  }
};

struct ScalarIsa {
  static constexpr int MR = 4, NR = 16;
  static const KernelTable<MR, NR>& table() {
    static const KernelTable<MR, NR> t = make_table<MR, NR, ScalarKernel>();
    return t;
  }
  static FD_ALWAYS_INLINE void pack_a(const float* a, int64_t lda, bool trans, int64_t i0, int64_t mb, int64_t p0,
                                      int64_t kb, float* dst) {
    pack_a_generic<MR>(a, lda, trans, i0, mb, p0, kb, dst);
  }
  static FD_ALWAYS_INLINE void pack_b(const float* b, int64_t ldb, bool trans, int64_t p0, int64_t kb, int64_t j0,
                                      int64_t nb, float* dst) {
    pack_b_generic<NR>(b, ldb, trans, p0, kb, j0, nb, dst);
  }
};

void unit_scalar(const Job& job, int64_t u, float* pa, float* pb) { run_unit<ScalarIsa>(job, u, pa, pb); }

#ifdef FD_GEMM_X86
// ---------------------------------------------------------------- AVX2: 6 x 16 (12 ymm accumulators)

template <int M, int W>
struct Avx2Kernel {
  static constexpr int NV = W / 8;
  FD_AVX2 static void run(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool acc) {
    __m256 r[M][NV];
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) r[i][v] = acc ? _mm256_loadu_ps(c + i * ldc + 8 * v) : _mm256_setzero_ps();
    for (int64_t p = 0; p < kc; ++p) {
      __m256 bv[NV];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) bv[v] = _mm256_load_ps(b + 8 * v);
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        const __m256 ai = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) r[i][v] = _mm256_fmadd_ps(ai, bv[v], r[i][v]);
      }
      a += M;
      b += 16;
    }
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) _mm256_storeu_ps(c + i * ldc + 8 * v, r[i][v]);
  }
};

// In-register 8 x 8 transpose.
FD_AVX2 FD_ALWAYS_INLINE void transpose8(__m256 r[8]) {
  __m256 t[8], s[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {
    s[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
    s[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
    s[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    s[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
  }
}

struct Avx2Isa {
  static constexpr int MR = 6, NR = 16;
  static const KernelTable<MR, NR>& table() {
    static const KernelTable<MR, NR> t = make_table<MR, NR, Avx2Kernel>();
    return t;
  }
  FD_AVX2 static void pack_a(const float* a, int64_t lda, bool trans, int64_t i0, int64_t mb, int64_t p0, int64_t kb,
                             float* dst) {
    if (trans) return pack_a_generic<MR>(a, lda, trans, i0, mb, p0, kb, dst);
    const int64_t full = mb / MR * MR;
    for (int64_t ir = 0; ir < full; ir += MR) {     // 8 k at a time through a transpose; 8-float stores
      const float* src = a + (i0 + ir) * lda + p0;  // whose 2 extra lanes the next store overwrites
      float* d = dst + ir * kb;
      int64_t p = 0;
      for (; p + 8 <= kb; p += 8) {
        __m256 r[8];
        for (int i = 0; i < MR; ++i) r[i] = _mm256_loadu_ps(src + i * lda + p);
        r[6] = r[7] = _mm256_setzero_ps();
        transpose8(r);
        for (int j = 0; j < 8; ++j) _mm256_storeu_ps(d + (p + j) * MR, r[j]);
      }
      for (; p < kb; ++p)
        for (int i = 0; i < MR; ++i) d[p * MR + i] = src[i * lda + p];
    }
    if (full < mb) pack_a_generic<MR>(a, lda, trans, i0 + full, mb - full, p0, kb, dst + full * kb);
  }
  FD_AVX2 static void pack_b(const float* b, int64_t ldb, bool trans, int64_t p0, int64_t kb, int64_t j0, int64_t nb,
                             float* dst) {
    if (!trans) return pack_b_generic<NR>(b, ldb, trans, p0, kb, j0, nb, dst);
    const int64_t full = nb / NR * NR;
    for (int64_t jr = 0; jr < full; jr += NR) {
      float* d = dst + jr * kb;
      for (int h = 0; h < 2; ++h) {
        const float* src = b + (j0 + jr + 8 * h) * ldb + p0;
        int64_t p = 0;
        for (; p + 8 <= kb; p += 8) {
          __m256 r[8];
          for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(src + j * ldb + p);
          transpose8(r);
          for (int q = 0; q < 8; ++q) _mm256_store_ps(d + (p + q) * NR + 8 * h, r[q]);
        }
        for (; p < kb; ++p)
          for (int j = 0; j < 8; ++j) d[p * NR + 8 * h + j] = src[j * ldb + p];
      }
    }
    if (full < nb) pack_b_generic<NR>(b, ldb, trans, p0, kb, j0 + full, nb - full, dst + full * kb);
  }
};

FD_AVX2 void unit_avx2(const Job& job, int64_t u, float* pa, float* pb) { run_unit<Avx2Isa>(job, u, pa, pb); }

// ---------------------------------------------------------------- AVX-512: 8 x 32 (16 zmm accumulators)

template <int M, int W>
struct Avx512Kernel {
  static constexpr int NV = W / 16;
  FD_AVX512 static void run(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool acc) {
    __m512 r[M][NV];
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) r[i][v] = acc ? _mm512_loadu_ps(c + i * ldc + 16 * v) : _mm512_setzero_ps();
    for (int64_t p = 0; p < kc; ++p) {
      __m512 bv[NV];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 16
      for (int i = 0; i < M; ++i) {
        const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) r[i][v] = _mm512_fmadd_ps(ai, bv[v], r[i][v]);
      }
      a += M;
      b += 32;
    }
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) _mm512_storeu_ps(c + i * ldc + 16 * v, r[i][v]);
  }
};

// The first min(max(n, 0), 16) lanes.
FD_AVX512 FD_ALWAYS_INLINE __mmask16 lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << n) - 1);
}

// In-register 16 x 16 transpose: 32-bit, 64-bit, then two 128-bit lane stages.
FD_AVX512 FD_ALWAYS_INLINE void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // r[4g + c], lane L: rows 4g..4g+3 of column 4L + c
    const __m512d t0 = _mm512_castps_pd(t[4 * g]), t1 = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d t2 = _mm512_castps_pd(t[4 * g + 2]), t3 = _mm512_castps_pd(t[4 * g + 3]);
    r[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  for (int c = 0; c < 4; ++c) {  // 4 x 4 transpose of 128-bit lanes across the groups
    const __m512 x0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44), x1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xEE);
    const __m512 x2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44);
    const __m512 x3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xEE);
    t[c] = _mm512_shuffle_f32x4(x0, x2, 0x88);
    t[4 + c] = _mm512_shuffle_f32x4(x0, x2, 0xDD);
    t[8 + c] = _mm512_shuffle_f32x4(x1, x3, 0x88);
    t[12 + c] = _mm512_shuffle_f32x4(x1, x3, 0xDD);
  }
  for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// 8 x 32: 16 accumulators are enough on Zen 4, whose double-pumped zmm FMA (1 per cycle, 4 cycles
// latency) reaches its peak from 4 independent chains; measured in isolation 8 x 32, 12 x 32 and
// 14 x 32 all run at ~99% of peak. 8 rows divide every BERT shape (no edge panel at m = 128, where
// 14 rows leave a 2-row one) and make A panels 32-byte aligned rows of 8 floats.
struct Avx512Isa {
  static constexpr int MR = 8, NR = 32;
  static const KernelTable<MR, NR>& table() {
    static const KernelTable<MR, NR> t = make_table<MR, NR, Avx512Kernel>();
    return t;
  }
  FD_AVX512 static void pack_a(const float* a, int64_t lda, bool trans, int64_t i0, int64_t mb, int64_t p0, int64_t kb,
                               float* dst) {
    const int64_t full = mb / MR * MR;
    if (trans) {  // 8 contiguous floats per k: 8 source rows at a time, spread over the panels
      for (int64_t p8 = 0; p8 < kb; p8 += 8) {
        const int64_t pe = std::min<int64_t>(kb, p8 + 8);
        for (int64_t ir = 0; ir < full; ir += MR)
          for (int64_t p = p8; p < pe; ++p)
            _mm256_store_ps(dst + ir * kb + p * MR, _mm256_loadu_ps(a + (p0 + p) * lda + i0 + ir));
      }
    } else {  // 8 rows x 8 k through a transpose
      for (int64_t ir = 0; ir < full; ir += MR) {
        const float* src = a + (i0 + ir) * lda + p0;
        float* d = dst + ir * kb;
        int64_t p = 0;
        for (; p + 8 <= kb; p += 8) {
          // Rows are read 32 bytes at a time at a large stride, in runs too short (kc floats) for the
          // hardware prefetcher: fetch each row's data 2 lines (32 k) ahead, into the next panel's rows.
          const int64_t ahead = p + 32;
          const float* next = ahead < kb ? src + ahead : src + MR * lda + (ahead - kb);
          for (int i = 0; i < MR; ++i) _mm_prefetch(reinterpret_cast<const char*>(next + i * lda), _MM_HINT_T0);
          __m256 r[8];
          for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lda + p);
          transpose8(r);
          for (int j = 0; j < 8; ++j) _mm256_store_ps(d + (p + j) * MR, r[j]);
        }
        if (p < kb) {  // the last k < 8: masked loads
          const __mmask8 ks = static_cast<__mmask8>((1u << (kb - p)) - 1);
          __m256 r[8];
          for (int i = 0; i < 8; ++i) r[i] = _mm256_maskz_loadu_ps(ks, src + i * lda + p);
          transpose8(r);
          for (int64_t j = 0; j < kb - p; ++j) _mm256_store_ps(d + (p + j) * MR, r[j]);
        }
      }
    }
    if (full < mb) pack_a_generic<MR>(a, lda, trans, i0 + full, mb - full, p0, kb, dst + full * kb);
  }
  FD_AVX512 static void pack_b(const float* b, int64_t ldb, bool trans, int64_t p0, int64_t kb, int64_t j0, int64_t nb,
                               float* dst) {
    if (!trans) {  // 8 source rows at a time, spread over the panels (a 1 KB burst per panel)
      for (int64_t p8 = 0; p8 < kb; p8 += 8) {
        const int64_t pe = std::min<int64_t>(kb, p8 + 8);
        for (int64_t jr = 0; jr < nb; jr += NR) {
          const int64_t w = nb - jr;
          const __mmask16 m0 = lanes(w), m1 = lanes(w - 16);
          const float* src = b + p0 * ldb + j0 + jr;
          float* d = dst + jr * kb;
          for (int64_t p = p8; p < pe; ++p) {
            _mm512_store_ps(d + p * NR, _mm512_maskz_loadu_ps(m0, src + p * ldb));
            _mm512_store_ps(d + p * NR + 16, _mm512_maskz_loadu_ps(m1, src + p * ldb + 16));
          }
        }
      }
      return;
    }
    for (int64_t jr = 0; jr < nb; jr += NR) {  // 16 columns x 16 k through a transpose
      float* d = dst + jr * kb;
      for (int h = 0; h < 2; ++h) {
        const int64_t cols = std::max<int64_t>(0, std::min<int64_t>(16, nb - jr - 16 * h));
        const float* src = b + (j0 + jr + 16 * h) * ldb + p0;
        for (int64_t p = 0; p < kb; p += 16) {
          const __mmask16 ks = lanes(kb - p);
          const float* next = p + 16 < kb ? src + p + 16 : src + 16 * ldb;  // one block ahead
          for (int j = 0; j < 16; ++j) _mm_prefetch(reinterpret_cast<const char*>(next + j * ldb), _MM_HINT_T0);
          __m512 r[16];
          for (int j = 0; j < 16; ++j)
            r[j] = j < cols ? _mm512_maskz_loadu_ps(ks, src + j * ldb + p) : _mm512_setzero_ps();
          transpose16(r);
          const int64_t n = std::min<int64_t>(16, kb - p);
          for (int64_t q = 0; q < n; ++q) _mm512_store_ps(d + (p + q) * NR + 16 * h, r[q]);
        }
      }
    }
  }
};

FD_AVX512 void unit_avx512(const Job& job, int64_t u, float* pa, float* pb) { run_unit<Avx512Isa>(job, u, pa, pb); }
#endif

// ---------------------------------------------------------------- driver

struct IsaImpl {
  int mr, nr;
  void (*unit)(const Job&, int64_t, float*, float*);
};

IsaImpl impl_for(Isa isa) {
#ifdef FD_GEMM_X86
  if (isa == Isa::kAvx512) return {Avx512Isa::MR, Avx512Isa::NR, unit_avx512};
  if (isa == Isa::kAvx2) return {Avx2Isa::MR, Avx2Isa::NR, unit_avx2};
#endif
  (void)isa;
  return {ScalarIsa::MR, ScalarIsa::NR, unit_scalar};
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Blocking sizes for Zen 4 (32 KB L1d, 1 MB L2 per core); -DFD_GEMM_KC=... etc. to tune elsewhere.
#ifndef FD_GEMM_KC
#define FD_GEMM_KC 256
#endif
#ifndef FD_GEMM_MC
#define FD_GEMM_MC 256
#endif
constexpr int64_t kMaxKc = FD_GEMM_KC;  // k slice: a 256 x 32 B panel is 32 KB (L1)
constexpr int64_t kMaxMc = FD_GEMM_MC;  // packed A block mc x kc <= 256 KB, well inside the 1 MB L2
// At least this many flops per thread: measured here, 2 threads win from about 2 MFLOP (112^3: 1.5x,
// 128 x 64 x 128: 1.4x) and lose below (the fork/join costs more than the split saves).
#ifndef FD_GEMM_FLOPS_PER_THREAD
#define FD_GEMM_FLOPS_PER_THREAD (1 << 20)
#endif
constexpr int64_t kMaxUnitN = 2048;  // packed B slice kc x unit_n <= 2 MB per thread (L3)

// The unit grid minimises the slowest thread's time: ceil(units / threads) units, each costing its
// multiply-adds (16 per cycle) plus its packing (about half a cycle per float; packing is a gather
// from L3). With several threads at least 2 units per thread, so a descheduled thread (a shared
// machine) leaves work to the others. Tiles never change results (each C element is one FMA chain
// over k), so they may depend on the thread count.
Plan make_plan(const GemmArgs& g, int mr, int nr, int threads) {
  Plan pl;
  pl.kc = std::max<int64_t>(1, ceil_div(g.k, ceil_div(g.k, kMaxKc)));
  const int64_t max_gm = ceil_div(g.m, mr), max_gn = ceil_div(g.n, nr);
  const int64_t min_gn = ceil_div(g.n, kMaxUnitN);
  const int64_t want = threads > 1 ? 2 * int64_t{threads} : 1;
  double best = -1;
  int64_t best_units = 0;
  pl.grid_m = 1;
  pl.grid_n = min_gn;
  // Past 2 * want units along one side the packing only grows: the search stays small.
  const int64_t gm_end = threads > 1 ? std::min<int64_t>(max_gm, 2 * want) : 1;
  const int64_t gn_end = threads > 1 ? std::min<int64_t>(max_gn, min_gn + 2 * want) : min_gn;
  for (int64_t gm = 1; gm <= gm_end; ++gm) {
    const int64_t um = round_up(ceil_div(g.m, gm), mr);
    if (gm > 1 && ceil_div(g.m, um) < gm) continue;  // same split as a smaller gm
    for (int64_t gn = min_gn; gn <= gn_end; ++gn) {
      const int64_t un = round_up(ceil_div(g.n, gn), nr);
      if (gn > min_gn && ceil_div(g.n, un) < gn) continue;
      const int64_t units = g.batch * ceil_div(g.m, um) * ceil_div(g.n, un);
      const double per_unit = static_cast<double>(g.k) * (um * un / 16.0 + 0.5 * (um + un));
      const double cost = static_cast<double>(ceil_div(units, threads)) * per_unit;
      const bool enough = units >= want, best_enough = best_units >= want;
      if (best < 0 || (enough && !best_enough) ||
          (enough == best_enough && (enough ? cost < best * 0.999 : units > best_units))) {
        best = cost;
        best_units = units;
        pl.grid_m = gm;
        pl.grid_n = gn;
      }
    }
  }
  pl.unit_m = round_up(ceil_div(g.m, pl.grid_m), mr);
  pl.unit_n = round_up(ceil_div(g.n, pl.grid_n), nr);
  pl.grid_m = ceil_div(g.m, pl.unit_m);
  pl.grid_n = ceil_div(g.n, pl.unit_n);
  pl.units = g.batch * pl.grid_m * pl.grid_n;
  pl.mc = round_up(ceil_div(pl.unit_m, ceil_div(pl.unit_m, kMaxMc)), mr);
  return pl;
}

bool valid(const GemmArgs& g) {
  if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 0) return false;
  if (g.m == 0 || g.n == 0 || g.batch == 0) return true;
  if (!g.c || g.ldc < g.n || g.stride_c < 0) return false;
  if (g.k == 0) return true;
  if (!g.a || !g.b) return false;
  if (g.lda < (g.trans_a ? g.m : g.k) || g.ldb < (g.trans_b ? g.k : g.n)) return false;
  if ((!g.a_offsets && g.stride_a < 0) || (!g.b_offsets && g.stride_b < 0)) return false;
  return true;
}

}  // namespace

const char* sgemm_isa() {
  switch (active_isa()) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "scalar";
  }
}

Status sgemm_cpu(const GemmArgs& g) {
  if (!valid(g)) return kBadShape;
  if (g.m == 0 || g.n == 0 || g.batch == 0) return kOk;
  if (g.k == 0) {
    for (int64_t bi = 0; bi < g.batch; ++bi)
      for (int64_t i = 0; i < g.m; ++i) std::memset(g.c + bi * g.stride_c + i * g.ldc, 0, g.n * sizeof(float));
    return kOk;
  }
  const IsaImpl impl = impl_for(active_isa());
  const double flops = 2.0 * g.m * g.n * g.k * g.batch;
  const int max_threads = static_cast<int>(
      std::max(1.0, std::min<double>(num_threads(), flops / FD_GEMM_FLOPS_PER_THREAD)));
  Job job{&g, make_plan(g, impl.mr, impl.nr, max_threads)};
  const int threads = static_cast<int>(std::min<int64_t>(max_threads, job.plan.units));
  const size_t a_floats = static_cast<size_t>(job.plan.mc * job.plan.kc + kPackSlack);
  const size_t b_floats = static_cast<size_t>(job.plan.unit_n * job.plan.kc + kPackSlack);
  if (threads == 1) {  // no OpenMP region: even an if(false) one costs libgomp futex calls (~1 us)
    float* pa = tl_pack_a.get(a_floats);
    float* pb = tl_pack_b.get(b_floats);
    if (!pa || !pb) return kNoMemory;
    for (int64_t u = 0; u < job.plan.units; ++u) impl.unit(job, u, pa, pb);
    return kOk;
  }
  std::atomic<bool> no_memory{false};
#pragma omp parallel num_threads(threads)
  {
    float* pa = tl_pack_a.get(a_floats);
    float* pb = tl_pack_b.get(b_floats);
    if (!pa || !pb) no_memory.store(true);
#pragma omp for schedule(dynamic, 1)
    for (int64_t u = 0; u < job.plan.units; ++u)
      if (pa && pb) impl.unit(job, u, pa, pb);
  }
  return no_memory.load() ? kNoMemory : kOk;
}

}  // namespace fd
