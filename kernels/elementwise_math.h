// Float math for the 'native' backend's elementwise kernels: branch-free versions of exp, log, log1p,
// expm1, tanh, sigmoid and erf that GCC vectorizes inside `#pragma omp simd` loops (a libm call stops
// vectorization; glibc's SIMD variants are only declared under -ffast-math, which would break NaN
// propagation). Every special value (NaN, ±Inf, ±0, subnormals) takes the IEEE/JS result.
//
// Polynomials are minimax fits (Remez exchange in mpmath) for the reduced argument, rounded to
// float. Measured max errors against double libm over every 61st float of the whole range (70M
// inputs; tests/native_math.test.ts checks samples against JS's float64 Math):
//   exp 1.00 ulp, log 0.89, log1p 0.86, expm1 1.41, tanh 0.89, sigmoid 1.61, erf 1.34.
// (tfjs's cpu Erf, Abramowitz-Stegun 7.1.26, is off by up to 1.7e-7 absolute, 86 ulp for
// |x| >= 0.01 and ever more below; this erf's largest absolute error is 8e-8.)
// kernels/fd_math.h has the losses' cheaper exp/log (Cephes, ~2 ulp, no subnormal results); these
// are separate so the losses' numbers do not move.
//
// Compiled for both sides: under nvcc every function is __host__ __device__ (the builtins below map
// to the device's fma / abs / copysign instructions), so the CUDA kernels (kernels/cuda/
// elementwise_ops.cu) run this same code and give the CPU's bits, up to the compilers' contraction
// of a * b + c into an FMA (GCC's -ffp-contract=fast and nvcc's --fmad differ in where they fuse).
#pragma once
#include <cstdint>

#include "fd_math.h"

namespace fd {
namespace em {

constexpr float kInf = __builtin_huge_valf();
constexpr float kNaN = __builtin_nanf("");

#if defined(__CUDACC__)
#define FD_EM __host__ __device__ __forceinline__
#else
#define FD_EM inline __attribute__((always_inline))
#endif

FD_EM float fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
FD_EM float abs(float x) { return __builtin_fabsf(x); }
FD_EM float copysign(float mag, float sgn) { return __builtin_copysignf(mag, sgn); }
// 2^n for n in [-126, 127], from the exponent bits.
FD_EM float pow2i(int32_t n) { return bits_float((n + 127) << 23); }

// e^x = 2^n (1 + w) for x in [-104, 89] (NaN passes through as a NaN w): n = round(x / ln2) by the
// 1.5 * 2^23 shifter (t's low mantissa bits hold n), r = x - n ln2 with ln2 split hi + lo
// (Cody-Waite with FMA), and w = e^r - 1 = r + r^2 p(r) on |r| <= ln2/2 (rel. error 3.3e-9).
FD_EM float exp_parts(float xc, int32_t& n) {
  constexpr float kShift = 0x1.8p23f;
  const float t = fma(xc, 0x1.715476p+0f, kShift);
  const float nf = t - kShift;
  n = float_bits(t) - float_bits(kShift);
  float r = fma(nf, -0x1.62e430p-1f, xc);
  r = fma(nf, 0x1.05c610p-29f, r);
  float p = 1.381314592e-03f;
  p = fma(p, r, 8.369418792e-03f);
  p = fma(p, r, 4.166845605e-02f);
  p = fma(p, r, 1.666651517e-01f);
  p = fma(p, r, 4.999999404e-01f);
  return fma(r * r, p, r);
}

// e^x. |error| <= 1.0 ulp; subnormal results; +inf above 88.72, 0 below -103.97; NaN stays NaN.
FD_EM float exp(float x) {
  const float xc = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x);  // NaN passes through
  int32_t n;
  const float w = exp_parts(xc, n);
  // 2^n as two factors, each a normal float for n in [-150, 129]: the second product rounds
  // once more only into the subnormal range, and overflows to inf above 88.72.
  const int32_t h = n >> 1;
  const float s1 = pow2i(h);
  return fma(s1, w, s1) * pow2i(n - h);
}

// log(1 + f) - f for f in [sqrt(1/2) - 1, sqrt(2) - 1], as f^2 q(f) with q = -1/2 + f p(f).
FD_EM float log1p_tail(float f) {
  float p = -7.633595914e-02f;  // rel. error of log1p(f) 6.4e-9
  p = fma(p, f, 1.280036271e-01f);
  p = fma(p, f, -1.317854524e-01f);
  p = fma(p, f, 1.419779658e-01f);
  p = fma(p, f, -1.662119031e-01f);
  p = fma(p, f, 2.000131905e-01f);
  p = fma(p, f, -2.500087917e-01f);
  p = fma(p, f, 3.333333135e-01f);
  return (f * f) * fma(p, f, -0.5f);
}

// log(m 2^k + extra) for m 2^k the normal float y and |extra| << y's ulp: the reduced argument
// is f = m - 1 with m in [sqrt(1/2), sqrt(2)); extra is added as extra / y.
FD_EM float log_normal(float y, float k_offset, float extra_over_y) {
  const int32_t iy = float_bits(y);
  const int32_t k = (iy - 0x3f3504f3) >> 23;  // 0x3f3504f3 = sqrt(1/2)
  const float m = bits_float(iy - (k << 23));
  const float f = m - 1.0f;  // exact
  const float e = static_cast<float>(k) + k_offset;
  const float small = log1p_tail(f) + fma(e, -0x1.05c610p-29f, extra_over_y);
  return fma(e, 0x1.62e430p-1f, f + small);
}

// Natural log. |error| <= 0.9 ulp; log(0) = -inf, log(inf) = inf, log(x < 0) = NaN.
FD_EM float log(float x) {
  const bool sub = x < 0x1p-126f;  // subnormals scaled by 2^23 first (0 and negatives too; unused)
  const float y = sub ? x * 0x1p23f : x;
  const float r = log_normal(y, sub ? -23.0f : 0.0f, 0.0f);
  return x > 0.0f ? (x < kInf ? r : x) : (x == 0.0f ? -kInf : kNaN);
}

// log(1 + x). |error| <= 0.9 ulp; -0 stays -0; log1p(-1) = -inf; x < -1 gives NaN.
FD_EM float log1p(float x) {
  const float u = 1.0f + x;  // >= 2^-24 or 0 for x >= -1: never subnormal
  // The rounding error of 1 + x, exactly (Sterbenz), divided by u: log(1 + x) = log(u) + c/u.
  const float c = u >= 2.0f ? 1.0f - (u - x) : x - (u - 1.0f);
  const float r = log_normal(u > 0.0f ? u : 1.0f, 0.0f, c / u);
  return x > -1.0f ? (x < kInf ? (x == 0.0f ? x : r) : x) : (x == -1.0f ? -kInf : kNaN);
}

// e^x - 1. |error| <= 1.5 ulp; -0 stays -0; -1 below -17.4; +inf above 88.72.
FD_EM float expm1(float x) {
  const float xc = x < -18.0f ? -18.0f : (x > 89.0f ? 89.0f : x);
  constexpr float kShift = 0x1.8p23f;
  const float t = fma(xc, 0x1.715476p+0f, kShift);
  const float nf = t - kShift;
  const int32_t n = float_bits(t) - float_bits(kShift);
  float r = fma(nf, -0x1.62e430p-1f, xc);
  r = fma(nf, 0x1.05c610p-29f, r);
  float p = 1.982378890e-04f;  // expm1(r) = r + r^2 (1/2 + r p(r)), rel. error 4.1e-10
  p = fma(p, r, 1.393413637e-03f);
  p = fma(p, r, 8.333423175e-03f);
  p = fma(p, r, 4.166647419e-02f);
  p = fma(p, r, 1.666666567e-01f);
  const float q = fma(r * r, fma(p, r, 0.5f), r);  // expm1(r)
  // e^x - 1 = 2 (s q + s - 1/2) with s = 2^(n-1) in [2^-27, 2^127]: s - 1/2 is exact where it
  // matters (n small), and n = 0 gives exactly q.
  const float s = pow2i(n - 1);
  const float y = 2.0f * fma(s, q, s - 0.5f);
  return x == 0.0f ? x : y;  // NaN: r and so y are NaN
}

// tanh. |error| <= 0.9 ulp. Odd polynomial below |x| = 1, 1 - 2 / (e^2|x| + 1) above.
FD_EM float tanh(float x) {
  const float ax = abs(x);
  const float z = x * x;
  float p = -3.584519727e-04f;  // tanh(x) = x + x^3 p(x^2) on |x| <= 1, rel. error 4.6e-9
  p = fma(p, z, 2.301364439e-03f);
  p = fma(p, z, -7.946106605e-03f);
  p = fma(p, z, 2.148665674e-02f);
  p = fma(p, z, -5.387980118e-02f);
  p = fma(p, z, 1.333234459e-01f);
  p = fma(p, z, -3.333329558e-01f);
  const float small = fma(x * z, p, x);
  // e^2|x| + 1 = s (1 + w) + 1 in one rounding; tanh rounds to 1 beyond 9.02, so clamping at 10
  // keeps s finite. NaN passes through to w.
  const float a2 = ax > 10.0f ? 20.0f : ax + ax;
  int32_t n;
  const float w = exp_parts(a2, n);
  const float s = pow2i(n);
  const float big = 1.0f - 2.0f / fma(s, w, s + 1.0f);
  return ax < 1.0f ? (x == 0.0f ? x : small) : copysign(big, x);
}

// 1 / (1 + e^-x), with 1 + e^-x = 1 + s (1 + w) rounded once: for s = 2^n <= 2^23, s + 1 is exact;
// above, 1 is folded into w as 2^-n. Below x = -80 the denominator would overflow while the result
// is still a (subnormal) float: there 1 / (1 + e^-x) = 2^-n / (1 + w) with 2^n split in two factors
// as in exp. |error| <= 1.7 ulp; NaN stays NaN.
FD_EM float sigmoid(float x) {
  const float m = -x;
  int32_t n;
  const float w = exp_parts(m < -104.0f ? -104.0f : (m > 104.0f ? 104.0f : m), n);
  const bool far = m > 80.0f;
  const int32_t h = n >> 1;
  const float s1 = pow2i(far ? h : 0);
  const float s = pow2i(far ? 0 : (n < -126 ? -126 : n));  // 2^-126: 1 + e^-x rounds to 1 anyway
  const float near_den = n > 23 ? fma(s, w + pow2i(far ? 0 : -n), s) : fma(s, w, s + 1.0f);
  const float den = far ? fma(s1, w, s1) : near_den;
  return (1.0f / den) * pow2i(far ? h - n : 0);
}

// erf. |error| <= 1.4 ulp. Below |x| = 1, x (c0 + z p(z)) with z = x^2 and c0 = 2/sqrt(pi) split
// hi + lo; above, 1 - erfc with erfc(x) = e^-x^2 R(x - 1), R a fit of erfcx on [1, 4] (erf rounds
// to +-1 beyond 3.92).
FD_EM float erf(float x) {
  const float ax = abs(x);
  const float z = x * x;
  float p = 7.898693730e-05f;  // (erf(x) / x - 2/sqrt(pi)) / x^2 on |x| <= 1, rel. error 1.3e-9
  p = fma(p, z, -8.024818380e-04f);
  p = fma(p, z, 5.190162454e-03f);
  p = fma(p, z, -2.685491554e-02f);
  p = fma(p, z, 1.128361747e-01f);
  p = fma(p, z, -3.761262894e-01f);
  const float tail = fma(z, p, -0x1.f7ac92p-25f);  // + (2/sqrt(pi) - 0x1.20dd76p+0)
  const float small = fma(x, 0x1.20dd76p+0f, x * tail);
  const float a = ax > 4.0f ? 4.0f : ax;  // NaN passes through
  const float t = a - 1.0f;
  float q = -2.799441972e-05f;  // erfc(a) e^(a^2) on [1, 4], abs. error of erfc 4.5e-10
  q = fma(q, t, 3.201451036e-04f);
  q = fma(q, t, -1.710400218e-03f);
  q = fma(q, t, 5.950153805e-03f);
  q = fma(q, t, -1.603461988e-02f);
  q = fma(q, t, 3.733769059e-02f);
  q = fma(q, t, -7.917749882e-02f);
  q = fma(q, t, 1.543664187e-01f);
  q = fma(q, t, -2.732118070e-01f);
  q = fma(q, t, 4.275835752e-01f);
  // e^-(a^2) with a^2 = hi + lo exactly: e^-hi (1 - lo).
  const float hi = a * a;
  const float lo = fma(a, a, -hi);
  const float g = exp(-hi);
  const float erfc = fma(g, -lo, g) * q;
  const float big = 1.0f - erfc;
  return ax < 1.0f ? (x == 0.0f ? x : small) : copysign(big, x);
}

#undef FD_EM

}  // namespace em
}  // namespace fd
