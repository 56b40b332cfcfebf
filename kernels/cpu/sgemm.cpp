// Packed, cache-blocked SGEMM (GotoBLAS/BLIS structure). C is cut into units, rectangles of one
// batch entry's C and the parallel work items, so batched small products and one large product share
// one loop. Per KC-long slice of k a unit packs its columns of op(B) into NR-wide panels once, then,
// per block of MC rows, its rows of op(A) into MR-row panels (thread-local buffers reused across
// calls), and runs the register-blocked micro-kernel: B panels outer (one stays in L1), A panels
// inner (the packed A block stays in L2).
//
// GemmPrecision::kBf16 rounds op(A) and op(B) to bfloat16 while packing them and accumulates in fp32.
// With AVX512-BF16 the panels hold k-pairs of bf16 (one 32-bit word per row or column and pair) and
// the micro-kernel is vdpbf16ps. That instruction is, per fp32 lane, two FMAs rounded to nearest even
// with denormal inputs read as zero and denormal results flushed to zero: first the odd bf16 of the
// pair, then the even one. The packers put k = 2q in the odd slot, so each C element is still one
// FMA chain over k in order. Without AVX512-BF16 (or with FUSED_DISTILL_GEMM_ISA below avx512bf16) the
// portable path rounds the fp32 panels to bf16 in place and runs the fp32 kernels with MXCSR's
// FTZ/DAZ bits set: the same chain of the same FMAs, so the same bits (a product of two bf16 is exact
// in fp32, and the hardware's flush-to-zero is MXCSR's; checked against vdpbf16ps on Zen 4).
//
// With AMX-BF16 (Intel Sapphire Rapids and later; the OS must grant the tile state) bf16 products run
// on the tile unit instead: 32 x 32 C tiles, tdpbf16ps over 16 k-pairs at a time, 16 times the
// multiply-adds of a vdpbf16ps per instruction. Each C element is still one fixed chain over k (k
// slices in order, 16 pairs per tile step, the hardware's order inside it), so its results do not
// depend on the thread count; but that order is not vdpbf16ps's pair by pair, so the bits differ
// from the AVX512-BF16 and portable paths by accumulation rounding (within the bf16 bound; tested
// against float64). FUSED_DISTILL_GEMM_ISA=avx512bf16 keeps the vdpbf16ps path.
#include "../gemm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
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
#define FD_AVX512BF16 __attribute__((target("avx512bf16,avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define FD_AMX __attribute__((target("amx-tile,amx-bf16,avx512bf16,avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#include <sys/syscall.h>
#include <unistd.h>
#endif
#define FD_ALWAYS_INLINE inline __attribute__((always_inline))

namespace fd {
namespace {

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Bf16 = 3, kAmxBf16 = 4 };

#ifdef FD_GEMM_X86
// Linux hands out the AMX tile state only to a process that asks (arch_prctl ARCH_REQ_XCOMP_PERM for
// XFEATURE_XTILEDATA); without it the first tile instruction faults.
bool amx_usable() {
  if (!__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-bf16")) return false;
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}
#endif

Isa detect_isa() {
#ifdef FD_GEMM_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma")) {
    if (!__builtin_cpu_supports("avx512bf16")) return Isa::kAvx512;
    return amx_usable() ? Isa::kAmxBf16 : Isa::kAvx512Bf16;
  }
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
    else if (std::strcmp(want, "avx512") == 0)
      isa = std::min(isa, Isa::kAvx512);
    else if (std::strcmp(want, "avx512bf16") == 0)
      isa = std::min(isa, Isa::kAvx512Bf16);
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

// ---------------------------------------------------------------- bfloat16 rounding
// Bit for bit what vcvtne2ps2bf16 does (checked on Zen 4): a denormal reads as a zero of its sign,
// NaN stays NaN (quietened), the rest rounds to nearest even (overflowing to infinity).
FD_ALWAYS_INLINE uint32_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16) | 0x40u;
  const uint32_t zero = (u >> 16) & 0x8000u;
  return (u & 0x7F800000u) == 0 ? zero : (u & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded;
}
FD_ALWAYS_INLINE float bf16_round(float x) {
  const uint32_t u = bf16_bits(x) << 16;
  float r;
  std::memcpy(&r, &u, sizeof r);
  return r;
}
// One k-pair word: x0 (k = 2q) in the high half, the slot vdpbf16ps multiplies first.
FD_ALWAYS_INLINE uint32_t bf16_pair(float x0, float x1) { return (bf16_bits(x0) << 16) | bf16_bits(x1); }
// An odd k is padded with the pair (-0 in A) x (0 in B): its product -0 leaves every sum unchanged
// (even a -0 one), so the pad changes no bit against the portable path, which has no pad.
constexpr float kPadA = -0.0f;

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
// acc = false overwrites C (the first k slice), so each C element is one FMA chain over k. E is the
// packed element: a float, or a k-pair of bf16 (kc then counts pairs).
template <class E>
using Kernel = void (*)(int64_t kc, const E* a, const E* b, float* c, int64_t ldc, bool acc);

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

template <int MR, int NR, class E = float>
struct KernelTable {
  Kernel<E> k[MR][2];  // [rows - 1][0: cols <= NR/2 (half width), 1: full width]
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

// I: the ISA's policy (MR, NR, Elem, kPerElem, pack_a, pack_b, table()). Its packers are real calls,
// not inlined: GCC will not inline a target("avx2") function into this untargeted template under a
// generic -march. A packed row or column of kb k values takes ceil(kb / kPerElem) elements.
template <class I>
FD_ALWAYS_INLINE void run_unit(const Job& job, int64_t u, float* pa_floats, float* pb_floats) {
  constexpr int MR = I::MR, NR = I::NR;
  using E = typename I::Elem;
  const KernelTable<MR, NR, E>& kt = I::table();
  E* pa = reinterpret_cast<E*>(pa_floats);
  E* pb = reinterpret_cast<E*>(pb_floats);
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
    const int64_t kw = (kb + I::kPerElem - 1) / I::kPerElem;  // packed elements per row or column
    const bool acc = p0 > 0;
    I::pack_b(b, g.ldb, g.trans_b, p0, kb, j0, nu, pb);
    for (int64_t ib = i0; ib < i0 + mu; ib += pl.mc) {
      const int64_t mb = std::min(pl.mc, i0 + mu - ib);
      I::pack_a(a, g.lda, g.trans_a, ib, mb, p0, kb, pa);
      for (int64_t jr = 0; jr < nu; jr += NR) {
        const int64_t w = std::min<int64_t>(NR, nu - jr);
        const int half = w <= NR / 2 ? 0 : 1;
        const E* bp = pb + jr * kw;
        for (int64_t ir = 0; ir < mb; ir += MR) {
          const int64_t r = std::min<int64_t>(MR, mb - ir);
          const E* ap = pa + ir * kw;
          float* cp = c + (ib + ir) * g.ldc + j0 + jr;
          if (ir + MR < mb) prefetch_rows(cp + MR * g.ldc, g.ldc, std::min<int64_t>(MR, mb - ir - MR), w);
          Kernel<E> kern = kt.k[r - 1][half];
          if (w == NR) {
            kern(kw, ap, bp, cp, g.ldc, acc);
          } else {  // a partial column panel goes through a scratch tile
            if (acc)
              for (int64_t i = 0; i < r; ++i) std::memcpy(edge + i * NR, cp + i * g.ldc, w * sizeof(float));
            kern(kw, ap, bp, edge, NR, acc);
            for (int64_t i = 0; i < r; ++i) std::memcpy(cp + i * g.ldc, edge + i * NR, w * sizeof(float));
          }
        }
      }
    }
  }
}

// Instantiates every rows x {half, full} kernel of one family.
template <int MR, int NR, class E, template <int, int> class K, int R = MR>
struct FillTable {
  static void fill(KernelTable<MR, NR, E>& t) {
    t.k[R - 1][0] = &K<R, NR / 2>::run;
    t.k[R - 1][1] = &K<R, NR>::run;
    FillTable<MR, NR, E, K, R - 1>::fill(t);
  }
};
template <int MR, int NR, class E, template <int, int> class K>
struct FillTable<MR, NR, E, K, 0> {
  static void fill(KernelTable<MR, NR, E>&) {}
};
template <int MR, int NR, template <int, int> class K, class E = float>
KernelTable<MR, NR, E> make_table() {
  KernelTable<MR, NR, E> t{};
  FillTable<MR, NR, E, K>::fill(t);
  return t;
}

// The portable bf16 path on an fp32 ISA policy I: its packers, then the packed values rounded to
// bf16 in place (padding zeros stay zeros); run under FlushDenormals.
template <class I>
struct Bf16Rounded : I {
  static FD_ALWAYS_INLINE void round_all(float* p, int64_t n) {
    for (int64_t i = 0; i < n; ++i) p[i] = bf16_round(p[i]);
  }
  static FD_ALWAYS_INLINE void pack_a(const float* a, int64_t lda, bool trans, int64_t i0, int64_t mb, int64_t p0,
                                      int64_t kb, float* dst) {
    I::pack_a(a, lda, trans, i0, mb, p0, kb, dst);
    round_all(dst, mb * kb);
  }
  static FD_ALWAYS_INLINE void pack_b(const float* b, int64_t ldb, bool trans, int64_t p0, int64_t kb, int64_t j0,
                                      int64_t nb, float* dst) {
    I::pack_b(b, ldb, trans, p0, kb, j0, nb, dst);
    round_all(dst, (nb + I::NR - 1) / I::NR * I::NR * kb);
  }
};

// vdpbf16ps reads denormals as zero and flushes denormal results to zero; on x86 the portable path
// gets the same from MXCSR (FTZ and DAZ) for the unit's duration. Elsewhere it keeps gradual
// underflow, which can differ from AVX512-BF16 only where a partial sum falls below 2^-126.
struct FlushDenormals {
#ifdef FD_GEMM_X86
  unsigned saved = _mm_getcsr();
  FlushDenormals() { _mm_setcsr(saved | 0x8040u); }
  ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

// ---------------------------------------------------------------- portable: 4 x 16, plain C++

// W columns computed; the B panel stride is 16. Fused: std::fma, so that every step is one rounding
// even where the compiler would not contract (the bf16 path needs the FMA chain exactly).
template <int M, int W, bool Fused = false>
struct ScalarKernel {
  static void run(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool acc) {
    float r[M][W];
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < W; ++j) r[i][j] = acc ? c[i * ldc + j] : 0.0f;
    for (int64_t p = 0; p < kc; ++p) {
      for (int i = 0; i < M; ++i) {
        const float ai = a[i];
        for (int j = 0; j < W; ++j) r[i][j] = Fused ? std::fma(ai, b[j], r[i][j]) : r[i][j] + ai * b[j];
      }
      a += M;
      b += 16;
    }
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < W; ++j) c[i * ldc + j] = r[i][j];
  }
};

struct ScalarIsa {
  static constexpr int MR = 4, NR = 16, kPerElem = 1;
  using Elem = float;
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
template <int M, int W>
struct ScalarFmaKernel : ScalarKernel<M, W, true> {};
struct ScalarFmaIsa : ScalarIsa {
  static const KernelTable<MR, NR>& table() {
    static const KernelTable<MR, NR> t = make_table<MR, NR, ScalarFmaKernel>();
    return t;
  }
};
void unit_scalar_bf16(const Job& job, int64_t u, float* pa, float* pb) {
  FlushDenormals ftz;
  run_unit<Bf16Rounded<ScalarFmaIsa>>(job, u, pa, pb);
}

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
  static constexpr int MR = 6, NR = 16, kPerElem = 1;
  using Elem = float;
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
FD_AVX2 void unit_avx2_bf16(const Job& job, int64_t u, float* pa, float* pb) {
  FlushDenormals ftz;
  run_unit<Bf16Rounded<Avx2Isa>>(job, u, pa, pb);
}

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
  static constexpr int MR = 8, NR = 32, kPerElem = 1;
  using Elem = float;
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
FD_AVX512 void unit_avx512_bf16(const Job& job, int64_t u, float* pa, float* pb) {
  FlushDenormals ftz;
  run_unit<Bf16Rounded<Avx512Isa>>(job, u, pa, pb);
}

// ---------------------------------------------------------------- AVX512-BF16: 8 x 32 k-pairs
// Panels of 32-bit words, each the bf16 pair (k = 2q, k = 2q + 1) of one row (A) or column (B),
// k = 2q in the high half. The portable packers (also the edge panels of the vector ones):

// A block: per MR-row panel, per pair q, one word per row (the last panel compact, as for floats).
template <int MR>
FD_ALWAYS_INLINE void pack_a_pairs_generic(const float* a, int64_t lda, bool trans, int64_t i0, int64_t mb, int64_t p0,
                                           int64_t kb, uint32_t* dst) {
  const int64_t kw = (kb + 1) / 2;
  for (int64_t ir = 0; ir < mb; ir += MR) {
    const int64_t r = std::min<int64_t>(MR, mb - ir);
    uint32_t* d = dst + ir * kw;
    for (int64_t i = 0; i < r; ++i) {
      const int64_t row = i0 + ir + i;
      for (int64_t q = 0; q < kw; ++q) {
        const int64_t p = p0 + 2 * q;
        const float x0 = trans ? a[p * lda + row] : a[row * lda + p];
        const float x1 = 2 * q + 1 < kb ? (trans ? a[(p + 1) * lda + row] : a[row * lda + p + 1]) : kPadA;
        d[q * r + i] = bf16_pair(x0, x1);
      }
    }
  }
}

// B block: per NR-column panel, per pair q, NR words (columns past nb are zero).
template <int NR>
FD_ALWAYS_INLINE void pack_b_pairs_generic(const float* b, int64_t ldb, bool trans, int64_t p0, int64_t kb, int64_t j0,
                                           int64_t nb, uint32_t* dst) {
  const int64_t kw = (kb + 1) / 2;
  for (int64_t jr = 0; jr < nb; jr += NR) {
    const int64_t w = std::min<int64_t>(NR, nb - jr);
    uint32_t* d = dst + jr * kw;
    for (int64_t q = 0; q < kw; ++q) {
      const int64_t p = p0 + 2 * q;
      for (int64_t j = 0; j < NR; ++j) {
        const int64_t col = j0 + jr + j;
        if (j >= w) {
          d[q * NR + j] = 0;
          continue;
        }
        const float x0 = trans ? b[col * ldb + p] : b[p * ldb + col];
        const float x1 = 2 * q + 1 < kb ? (trans ? b[col * ldb + p + 1] : b[(p + 1) * ldb + col]) : 0.0f;
        d[q * NR + j] = bf16_pair(x0, x1);
      }
    }
  }
}

// 16 words from two rows: word j = (x0[j], x1[j]). cvtne2ps2bf16(x0, x1) gives bf16(x1[0..15]) then
// bf16(x0[0..15]); the permutation interleaves them.
FD_AVX512BF16 FD_ALWAYS_INLINE __m512i pairs_of_rows(__m512 x0, __m512 x1) {
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21,
                                       5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(x0, x1));
}
// 16 words from a run of 32 k (lo: k 0..15, hi: k 16..31): word q = (x[2q], x[2q + 1]). In memory
// order each pair has x[2q] low: a 16-bit rotation puts it high.
FD_AVX512BF16 FD_ALWAYS_INLINE __m512i pairs_of_run(__m512 lo, __m512 hi) {
  return _mm512_rol_epi32((__m512i)_mm512_cvtne2ps_pbh(hi, lo), 16);
}

template <int M, int W>
struct Bf16Kernel {
  static constexpr int NV = W / 16;
  FD_AVX512BF16 static void run(int64_t kw, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, bool acc) {
    __m512 r[M][NV];
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) r[i][v] = acc ? _mm512_loadu_ps(c + i * ldc + 16 * v) : _mm512_setzero_ps();
    for (int64_t q = 0; q < kw; ++q) {
      __m512bh bv[NV];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_load_si512(b + 16 * v);
#pragma GCC unroll 16
      for (int i = 0; i < M; ++i) {
        const __m512bh ai = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[i]));
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) r[i][v] = _mm512_dpbf16_ps(r[i][v], ai, bv[v]);
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

// 8 x 32 as for fp32: one vdpbf16ps does twice an FMA's work at the same rate on Zen 4, so the same
// 16 accumulators keep it busy. k slices can be twice as long (panels are half the bytes).
struct Avx512Bf16Isa {
  static constexpr int MR = 8, NR = 32, kPerElem = 2;
  using Elem = uint32_t;
  static const KernelTable<MR, NR, uint32_t>& table() {
    static const KernelTable<MR, NR, uint32_t> t = make_table<MR, NR, Bf16Kernel, uint32_t>();
    return t;
  }
  FD_AVX512BF16 static void pack_a(const float* a, int64_t lda, bool trans, int64_t i0, int64_t mb, int64_t p0,
                                   int64_t kb, uint32_t* dst) {
    const int64_t full = mb / MR * MR, kw = (kb + 1) / 2;
    if (trans) {  // rows 2q and 2q + 1 of the source give 16 rows' words: two panels at a time
      // 8 pairs at a time, so that each panel gets whole cache lines in a row: the panels are
      // MR * kw words apart (8 KB at kc 512), all in one L1 set, and 32-byte stores to each panel
      // in turn evicted each line before its second half was written (TN products ran ~30% slower).
      const __m512 pad = _mm512_set1_ps(kPadA);
      for (int64_t q8 = 0; q8 < kw; q8 += 8) {
        const int64_t qe = std::min<int64_t>(kw, q8 + 8);
        for (int64_t ir = 0; ir < full; ir += 2 * MR) {
          const __mmask16 rows = lanes(full - ir);
          for (int64_t q = q8; q < qe; ++q) {
            const float* s0 = a + (p0 + 2 * q) * lda + i0 + ir;
            const __m512i w = pairs_of_rows(_mm512_maskz_loadu_ps(rows, s0),
                                            2 * q + 1 < kb ? _mm512_maskz_loadu_ps(rows, s0 + lda) : pad);
            _mm256_store_si256(reinterpret_cast<__m256i*>(dst + ir * kw + q * MR), _mm512_castsi512_si256(w));
            if (ir + MR < full)
              _mm256_store_si256(reinterpret_cast<__m256i*>(dst + (ir + MR) * kw + q * MR),
                                 _mm512_extracti64x4_epi64(w, 1));
          }
        }
      }
    } else {  // 8 rows x 32 k -> 8 x 16 words, transposed to 16 pairs x 8 rows
      const __m512 pad = _mm512_set1_ps(kPadA);
      for (int64_t ir = 0; ir < full; ir += MR) {
        const float* src = a + (i0 + ir) * lda + p0;
        uint32_t* d = dst + ir * kw;
        for (int64_t p = 0; p < kb; p += 32) {
          const int64_t ahead = p + 32;  // rows are short runs at a large stride: fetch ahead (see fp32)
          const float* next = ahead < kb ? src + ahead : src + MR * lda + (ahead - kb);
          for (int i = 0; i < MR; ++i) _mm_prefetch(reinterpret_cast<const char*>(next + i * lda), _MM_HINT_T0);
          const __mmask16 k0 = lanes(kb - p), k1 = lanes(kb - p - 16);
          __m512 r[16];
          for (int i = 0; i < MR; ++i) {  // masked-off k read as the pad (only the first is kept)
            const __m512 lo = _mm512_mask_loadu_ps(pad, k0, src + i * lda + p);
            const __m512 hi = _mm512_mask_loadu_ps(pad, k1, src + i * lda + p + 16);
            r[i] = _mm512_castsi512_ps(pairs_of_run(lo, hi));
          }
          for (int i = MR; i < 16; ++i) r[i] = _mm512_setzero_ps();
          transpose16(r);
          const int64_t n = std::min<int64_t>(16, kw - p / 2);
          for (int64_t q = 0; q < n; ++q)
            _mm256_store_si256(reinterpret_cast<__m256i*>(d + (p / 2 + q) * MR),
                               _mm512_castsi512_si256(_mm512_castps_si512(r[q])));
        }
      }
    }
    if (full < mb) pack_a_pairs_generic<MR>(a, lda, trans, i0 + full, mb - full, p0, kb, dst + full * kw);
  }
  FD_AVX512BF16 static void pack_b(const float* b, int64_t ldb, bool trans, int64_t p0, int64_t kb, int64_t j0,
                                   int64_t nb, uint32_t* dst) {
    const int64_t kw = (kb + 1) / 2;
    if (!trans) {  // rows 2q and 2q + 1: 8 source rows at a time, spread over the panels
      for (int64_t q4 = 0; q4 < kw; q4 += 4) {
        const int64_t qe = std::min<int64_t>(kw, q4 + 4);
        for (int64_t jr = 0; jr < nb; jr += NR) {
          const int64_t w = nb - jr;
          const __mmask16 m0 = lanes(w), m1 = lanes(w - 16);
          const float* src = b + p0 * ldb + j0 + jr;
          uint32_t* d = dst + jr * kw;
          for (int64_t q = q4; q < qe; ++q) {
            const float* s0 = src + 2 * q * ldb;
            const bool has1 = 2 * q + 1 < kb;
            const __m512 z = _mm512_setzero_ps();
            _mm512_store_si512(d + q * NR, pairs_of_rows(_mm512_maskz_loadu_ps(m0, s0),
                                                         has1 ? _mm512_maskz_loadu_ps(m0, s0 + ldb) : z));
            _mm512_store_si512(d + q * NR + 16, pairs_of_rows(_mm512_maskz_loadu_ps(m1, s0 + 16),
                                                              has1 ? _mm512_maskz_loadu_ps(m1, s0 + ldb + 16) : z));
          }
        }
      }
      return;
    }
    for (int64_t jr = 0; jr < nb; jr += NR) {  // 16 columns x 32 k -> 16 x 16 words, transposed
      uint32_t* d = dst + jr * kw;
      for (int h = 0; h < 2; ++h) {
        const int64_t cols = std::max<int64_t>(0, std::min<int64_t>(16, nb - jr - 16 * h));
        const float* src = b + (j0 + jr + 16 * h) * ldb + p0;
        for (int64_t p = 0; p < kb; p += 32) {
          const __mmask16 k0 = lanes(kb - p), k1 = lanes(kb - p - 16);
          const float* next = p + 32 < kb ? src + p + 32 : src + 16 * ldb;  // one block ahead
          for (int j = 0; j < 16; ++j) _mm_prefetch(reinterpret_cast<const char*>(next + j * ldb), _MM_HINT_T0);
          __m512 r[16];
          for (int j = 0; j < 16; ++j)
            r[j] = j < cols ? _mm512_castsi512_ps(pairs_of_run(_mm512_maskz_loadu_ps(k0, src + j * ldb + p),
                                                               _mm512_maskz_loadu_ps(k1, src + j * ldb + p + 16)))
                            : _mm512_setzero_ps();
          transpose16(r);
          const int64_t n = std::min<int64_t>(16, kw - p / 2);
          for (int64_t q = 0; q < n; ++q)
            _mm512_store_ps(reinterpret_cast<float*>(d + (p / 2 + q) * NR + 16 * h), r[q]);
        }
      }
    }
  }
};

FD_AVX512BF16 void unit_avx512bf16(const Job& job, int64_t u, float* pa, float* pb) {
  run_unit<Avx512Bf16Isa>(job, u, pa, pb);
}

// ---------------------------------------------------------------- AMX-BF16: 32 x 32 tiles
// Panels of the same k-pair words as AVX512-BF16 (k = 2q high), laid out for tile loads, with the
// pairs of a k slice padded to kw16, a multiple of 16 (zero words: +0 x +0 adds nothing):
// A: per 32-row panel, row-major [32][kw16] (a tile row is 16 pairs of one row; rows past the block
//    are zero); B: per 32-column panel, [kw16][32] as Avx512Bf16Isa packs it (a tile is 16 pairs x 16
//    columns, read at a 128-byte stride). Tiles 0-3: C; 4, 5: A rows 0-15, 16-31; 6, 7: B columns
//    0-15, 16-31.
struct AmxBf16Isa {
  static constexpr int MR = 32, NR = 32, kPerElem = 2, kPairAlign = 16;
};

FD_AMX void pack_a_amx(const float* a, int64_t lda, bool trans, int64_t i0, int64_t mb, int64_t p0, int64_t kb,
                       int64_t kw16, uint32_t* dst) {
  const int64_t rows = (mb + AmxBf16Isa::MR - 1) / AmxBf16Isa::MR * AmxBf16Isa::MR;
  const __m512 pad = _mm512_set1_ps(kPadA);
  if (!trans) {  // a row's run of 32 k gives its next 16 words; k past kb reads as the pad
    for (int64_t i = 0; i < mb; ++i) {
      const float* src = a + (i0 + i) * lda + p0;
      uint32_t* d = dst + i * kw16;
      for (int64_t p = 0; p < 2 * kw16; p += 32) {
        const __mmask16 k0 = lanes(kb - p), k1 = lanes(kb - p - 16);
        _mm512_storeu_si512(d + p / 2, pairs_of_run(_mm512_mask_loadu_ps(pad, k0, src + p),
                                                    _mm512_mask_loadu_ps(pad, k1, src + p + 16)));
      }
    }
  } else {  // source rows 2q, 2q + 1 give pair q of 16 rows; 16 pairs of 16 rows transposed
    for (int64_t ir = 0; ir < mb; ir += 16) {
      const __mmask16 rm = lanes(mb - ir);
      for (int64_t q0 = 0; q0 < kw16; q0 += 16) {
        __m512 r[16];
        for (int64_t q = 0; q < 16; ++q) {
          const int64_t p = 2 * (q0 + q);
          const float* s0 = a + (p0 + p) * lda + i0 + ir;
          const __m512 x0 = p < kb ? _mm512_maskz_loadu_ps(rm, s0) : pad;
          const __m512 x1 = p + 1 < kb ? _mm512_maskz_loadu_ps(rm, s0 + lda) : pad;
          r[q] = _mm512_castsi512_ps(pairs_of_rows(x0, x1));
        }
        transpose16(r);
        const int64_t n = std::min<int64_t>(16, mb - ir);
        for (int64_t i = 0; i < n; ++i) _mm512_storeu_ps(reinterpret_cast<float*>(dst + (ir + i) * kw16 + q0), r[i]);
      }
    }
  }
  std::memset(dst + mb * kw16, 0, (rows - mb) * kw16 * sizeof(uint32_t));
}

FD_AMX void pack_b_amx(const float* b, int64_t ldb, bool trans, int64_t p0, int64_t kb, int64_t j0, int64_t nb,
                       int64_t kw16, uint32_t* dst) {
  const int64_t kw = (kb + 1) / 2;
  for (int64_t jr = 0; jr < nb; jr += AmxBf16Isa::NR) {
    uint32_t* d = dst + jr * kw16;
    Avx512Bf16Isa::pack_b(b, ldb, trans, p0, kb, j0 + jr, std::min<int64_t>(AmxBf16Isa::NR, nb - jr), d);
    std::memset(d + kw * AmxBf16Isa::NR, 0, (kw16 - kw) * AmxBf16Isa::NR * sizeof(uint32_t));
  }
}

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// C (32 x 32 at c, row stride ldc) (+)= A panel (32 x kw16 words) * B panel (kw16 x 32 words).
FD_AMX void amx_tile(int64_t kw16, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, bool acc) {
  const int64_t cs = ldc * static_cast<int64_t>(sizeof(float)), as = kw16 * static_cast<int64_t>(sizeof(uint32_t));
  if (acc) {
    _tile_loadd(0, c, cs);
    _tile_loadd(1, c + 16, cs);
    _tile_loadd(2, c + 16 * ldc, cs);
    _tile_loadd(3, c + 16 * ldc + 16, cs);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int64_t q = 0; q < kw16; q += 16) {
    _tile_loadd(4, a + q, as);
    _tile_loadd(5, a + 16 * kw16 + q, as);
    _tile_loadd(6, b + q * AmxBf16Isa::NR, AmxBf16Isa::NR * sizeof(uint32_t));
    _tile_loadd(7, b + q * AmxBf16Isa::NR + 16, AmxBf16Isa::NR * sizeof(uint32_t));
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, cs);
  _tile_stored(1, c + 16, cs);
  _tile_stored(2, c + 16 * ldc, cs);
  _tile_stored(3, c + 16 * ldc + 16, cs);
}

// run_unit's loop for the tile layout: a C tile cut by the block's edge goes through a scratch tile.
FD_AMX void unit_amx_bf16(const Job& job, int64_t u, float* pa_floats, float* pb_floats) {
  constexpr int MR = AmxBf16Isa::MR, NR = AmxBf16Isa::NR;
  uint32_t* pa = reinterpret_cast<uint32_t*>(pa_floats);
  uint32_t* pb = reinterpret_cast<uint32_t*>(pb_floats);
  const GemmArgs& g = *job.g;
  const Plan& pl = job.plan;
  const Unit un = unit_at(g, pl, u);
  float* c = g.c + un.bi * g.stride_c;
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
  alignas(64) float edge[MR * NR];
  for (int64_t p0 = 0; p0 < g.k; p0 += pl.kc) {
    const int64_t kb = std::min(pl.kc, g.k - p0);
    const int64_t kw16 = ((kb + 1) / 2 + AmxBf16Isa::kPairAlign - 1) / AmxBf16Isa::kPairAlign * AmxBf16Isa::kPairAlign;
    const bool acc = p0 > 0;
    pack_b_amx(un.b, g.ldb, g.trans_b, p0, kb, un.j0, un.nu, kw16, pb);
    for (int64_t ib = un.i0; ib < un.i0 + un.mu; ib += pl.mc) {
      const int64_t mb = std::min(pl.mc, un.i0 + un.mu - ib);
      pack_a_amx(un.a, g.lda, g.trans_a, ib, mb, p0, kb, kw16, pa);
      for (int64_t jr = 0; jr < un.nu; jr += NR) {
        const int64_t w = std::min<int64_t>(NR, un.nu - jr);
        for (int64_t ir = 0; ir < mb; ir += MR) {
          const int64_t r = std::min<int64_t>(MR, mb - ir);
          float* cp = c + (ib + ir) * g.ldc + un.j0 + jr;
          if (r == MR && w == NR) {
            amx_tile(kw16, pa + ir * kw16, pb + jr * kw16, cp, g.ldc, acc);
          } else {
            if (acc)
              for (int64_t i = 0; i < r; ++i) std::memcpy(edge + i * NR, cp + i * g.ldc, w * sizeof(float));
            amx_tile(kw16, pa + ir * kw16, pb + jr * kw16, edge, NR, acc);
            for (int64_t i = 0; i < r; ++i) std::memcpy(cp + i * g.ldc, edge + i * NR, w * sizeof(float));
          }
        }
      }
    }
  }
  _tile_release();
}
#endif

// ---------------------------------------------------------------- driver

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Blocking sizes for Zen 4 (32 KB L1d, 1 MB L2 per core); -DFD_GEMM_KC=... etc. to tune elsewhere.
#ifndef FD_GEMM_KC
#define FD_GEMM_KC 256
#endif
#ifndef FD_GEMM_MC
#define FD_GEMM_MC 256
#endif
constexpr int64_t kMaxKc = FD_GEMM_KC;  // k slice: a 256 x 32 B panel is 32 KB (L1), twice that in bf16
constexpr int64_t kMaxMc = FD_GEMM_MC;  // packed A block mc x kc <= 256 KB, well inside the 1 MB L2
// At least this many flops per thread: measured here, 2 threads win from about 2 MFLOP (112^3: 1.5x,
// 128 x 64 x 128: 1.4x) and lose below (the fork/join costs more than the split saves).
#ifndef FD_GEMM_FLOPS_PER_THREAD
#define FD_GEMM_FLOPS_PER_THREAD (1 << 20)
#endif
constexpr int64_t kMaxUnitN = 2048;  // packed B slice kc x unit_n <= 2 MB per thread (L3)

struct IsaImpl {
  int mr, nr;
  int k_per_elem;  // k values per packed element (2: bf16 pairs)
  int64_t max_kc;
  void (*unit)(const Job&, int64_t, float*, float*);
  int pair_align = 1;  // packed elements of a k slice rounded up to a multiple of this (AMX: 16)
};

IsaImpl impl_for(Isa isa, GemmPrecision precision) {
  const bool bf16 = precision == GemmPrecision::kBf16;
#ifdef FD_GEMM_X86
  if (isa == Isa::kAmxBf16 && bf16)
    return {AmxBf16Isa::MR, AmxBf16Isa::NR, 2, 2 * kMaxKc, unit_amx_bf16, AmxBf16Isa::kPairAlign};
  if (isa >= Isa::kAvx512Bf16 && bf16) return {Avx512Bf16Isa::MR, Avx512Bf16Isa::NR, 2, 2 * kMaxKc, unit_avx512bf16};
  if (isa >= Isa::kAvx512) return {Avx512Isa::MR, Avx512Isa::NR, 1, kMaxKc, bf16 ? unit_avx512_bf16 : unit_avx512};
  if (isa == Isa::kAvx2) return {Avx2Isa::MR, Avx2Isa::NR, 1, kMaxKc, bf16 ? unit_avx2_bf16 : unit_avx2};
#endif
  (void)isa;
  return {ScalarIsa::MR, ScalarIsa::NR, 1, kMaxKc, bf16 ? unit_scalar_bf16 : unit_scalar};
}

// The unit grid minimises the slowest thread's time: ceil(units / threads) units, each costing its
// multiply-adds (16 per cycle) plus its packing (about half a cycle per float; packing is a gather
// from L3). With several threads at least 2 units per thread, so a descheduled thread (a shared
// machine) leaves work to the others. Tiles never change results (each C element is one FMA chain
// over k), so they may depend on the thread count.
// With k pairs, kc is even: only the last slice may end in a padded pair.
Plan make_plan(const GemmArgs& g, const IsaImpl& impl, int threads) {
  const int mr = impl.mr, nr = impl.nr;
  Plan pl;
  pl.kc = round_up(std::max<int64_t>(1, ceil_div(g.k, ceil_div(g.k, impl.max_kc))), impl.k_per_elem);
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
  if (g.precision != GemmPrecision::kFp32 && g.precision != GemmPrecision::kBf16) return false;
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
    case Isa::kAmxBf16: return "amxbf16";
    case Isa::kAvx512Bf16: return "avx512bf16";
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
  const IsaImpl impl = impl_for(active_isa(), g.precision);
  const double flops = 2.0 * g.m * g.n * g.k * g.batch;
  const int max_threads = static_cast<int>(
      std::max(1.0, std::min<double>(num_threads(), flops / FD_GEMM_FLOPS_PER_THREAD)));
  Job job{&g, make_plan(g, impl, max_threads)};
  const int threads = static_cast<int>(std::min<int64_t>(max_threads, job.plan.units));
  const int64_t kw = round_up(ceil_div(job.plan.kc, impl.k_per_elem),
                              impl.pair_align);  // 4-byte elements per packed row/column
  const size_t a_floats = static_cast<size_t>(job.plan.mc * kw + kPackSlack);
  const size_t b_floats = static_cast<size_t>(job.plan.unit_n * kw + kPackSlack);
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
