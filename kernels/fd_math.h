// Scalar math shared by the CPU and CUDA kernels: written once, compiled for both.
//
// exp and log are our own branch-free polynomial versions (Cephes' coefficients) rather than libm's:
// libm calls stop GCC from vectorizing the CPU loops (glibc only offers SIMD variants under
// -ffast-math, which would also break NaN propagation), and using the same code on the GPU keeps the
// two sides' results within a few ulp of each other. Accuracy: ~2 ulp on normal inputs.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define FD_HD __host__ __device__ __forceinline__
#else
#define FD_HD inline __attribute__((always_inline))
#endif

namespace fd {

FD_HD int32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_int(x);
#elif defined(__CUDACC__)  // host side of a .cu file: nvcc's front end may not know __builtin_bit_cast
  int32_t i;
  std::memcpy(&i, &x, sizeof i);
  return i;
#else                      // a builtin, not memcpy: GCC only vectorizes loops through memcpy-based casts sometimes
  return __builtin_bit_cast(int32_t, x);
#endif
}

FD_HD float bits_float(int32_t i) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(i);
#elif defined(__CUDACC__)
  float x;
  std::memcpy(&x, &i, sizeof x);
  return x;
#else
  return __builtin_bit_cast(float, i);
#endif
}

constexpr float kInf = __builtin_huge_valf();

// e^x for x already clamped to [-87.33, 88.37]: Cody-Waite range reduction x = n ln2 + r, then a
// degree-6 polynomial for e^r, scaled by 2^n built in the exponent bits.
FD_HD float exp_clamped(float xc) {
  const float n = __builtin_floorf(xc * 1.44269504088896341f + 0.5f);
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  return e * bits_float((static_cast<int32_t>(n) + 127) << 23);
}

// e^x. Underflows to 0 below -87.3 (no subnormal results), overflows to +inf above 88.7; NaN stays NaN.
FD_HD float fast_exp(float x) {
  const float y = exp_clamped(x < -87.33f ? -87.33f : (x > 88.37f ? 88.37f : x));
  return x < -87.33f ? 0.0f : (x > 88.72f ? kInf : y);
}

// e^x for x <= 0 (softmax and softplus arguments after their max is subtracted): fast_exp without
// the overflow branch, two selects fewer in the hottest loops. NaN stays NaN.
FD_HD float fast_exp_nonpositive(float x) {
  const float y = exp_clamped(x < -87.33f ? -87.33f : x);
  return x < -87.33f ? 0.0f : y;
}

// Natural log for x >= 0: log(0) = -inf, log(inf) = inf, negative or NaN gives NaN.
// Subnormal inputs are treated as 0 (never produced by the callers: they take logs of sums >= 1).
FD_HD float fast_log(float x) {
  const int32_t bits = float_bits(x);
  float e = static_cast<float>(((bits >> 23) & 0xff) - 126);
  float m = bits_float((bits & 0x007fffff) | 0x3f000000);  // mantissa in [0.5, 1)
  const bool small = m < 0.707106781186547524f;
  e = small ? e - 1.0f : e;
  m = small ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float p = 7.0376836292e-2f;
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  float y = p * m * z;
  y = y + e * -2.12194440e-4f;
  y = y - 0.5f * z;
  const float r = m + y + e * 0.693359375f;
  const float nan = bits_float(0x7fc00000);
  return x > 0.0f ? (x < kInf ? (x < 1.17549435e-38f ? -kInf : r) : kInf) : (x == 0.0f ? -kInf : nan + x);
}

// softplus(x) = log(1 + e^x) and sigmoid(x) = 1 / (1 + e^-x) from one exponential and one division,
// stable for any x. With u = e^-|x| and w = 1 + u: log1p(u) = log(w) + (u - (w - 1)) / w, the
// correction term recovering what rounding 1 + u lost (exact for tiny u, where w == 1).
struct SoftplusSigmoid {
  float softplus, sigmoid;
};
FD_HD SoftplusSigmoid softplus_sigmoid(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float u = fast_exp_nonpositive(-ax);  // in (0, 1]
  const float w = 1.0f + u;
  const float inv = 1.0f / w;
  const float log1p_u = fast_log(w) + (u - (w - 1.0f)) * inv;
  const float pos = x > 0.0f ? x : 0.0f;
  // A NaN x needs no select to reach both results: u, w and inv are NaN.
  SoftplusSigmoid r;
  r.softplus = pos + log1p_u;
  r.sigmoid = x >= 0.0f ? inv : u * inv;
  return r;
}

// q - p for q = es * inv_zs and p = et * inv_zt (two softmax entries), written so that it is exactly 0
// when es == et and inv_zs == inv_zt whatever the compiler contracts: es * inv_zs - et * inv_zt
// becomes fma(es, inv_zs, -p) under -ffp-contract=fast (and nvcc's default), the exact product minus
// the rounded one, i.e. p's rounding error instead of 0 (seen on a Sapphire Rapids -march=native
// build, where the KL gradient of t == s came out at ~1e-9). Here each product has a factor that is
// exactly 0 in that case.
FD_HD float softmax_difference(float es, float inv_zs, float et, float inv_zt) {
  return (es - et) * inv_zs + et * (inv_zs - inv_zt);
}

}  // namespace fd
