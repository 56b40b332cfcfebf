// The per-element functions of the elementwise ops (binary, unary, cast, fill) and the broadcast
// plan, shared by the CPU loops (kernels/cpu/elementwise_binary.cpp, elementwise_unary.cpp) and the CUDA kernels
// (kernels/cuda/elementwise_ops.cu): one definition, so both sides compute the same bits (the
// transcendental ones are elementwise_math.h's; pow, sin, cos go through double libm, whose device
// versions are within 1-2 double ulp of glibc's, so the float results agree but in rare roundings).
// Functors are __host__ __device__ under nvcc (FD_HD); the builtins used compile on both sides.
// Internal to kernels/: not part of the contract.
#pragma once
#include <cmath>
#include <cstdint>

#include "elementwise.h"
#include "elementwise_math.h"
#include "fd_math.h"

namespace fd {
namespace ew {

// JS ToInt32 of a double: truncation toward zero, then wrap modulo 2^32; NaN and +-inf give 0.
// Branch-free so that loops over it vectorize: d - trunc(d / 2^32) 2^32 is exact (Sterbenz) and
// below 2^32 in magnitude, for any finite d.
FD_HD int32_t js_to_int32(double d) {
  const double w = d - __builtin_trunc(d * 0x1p-32) * 0x1p32;
  const double r = __builtin_fabs(d) < __builtin_huge_val() ? w : 0.0;
  return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(static_cast<int64_t>(r))));
}

// ---- binary, float32. Sums, products and quotients of two floats rounded once to float equal JS's
// float64 result rounded to float32 (53 >= 2 * 24 + 2 bits), so these match tfjs bit for bit;
// the ops tfjs computes in more than one float64 step are computed in double here too.
struct AddF {
  static FD_HD float f(float a, float b) { return a + b; }
};
struct SubF {
  static FD_HD float f(float a, float b) { return a - b; }
};
struct MulF {
  static FD_HD float f(float a, float b) { return a * b; }
};
struct DivF {
  static FD_HD float f(float a, float b) { return a / b; }
};
// Math.max / Math.min: NaN wins; for equal values the bitwise AND (max) / OR (min) gives +0 / -0
// from {-0, +0} and the value itself otherwise.
struct MaxF {
  static FD_HD float f(float a, float b) {
    const float eq = bits_float(float_bits(a) & float_bits(b));
    const float r = a == b ? eq : (a > b ? a : b);  // b NaN: b
    return a != a ? a : r;
  }
};
struct MinF {
  static FD_HD float f(float a, float b) {
    const float eq = bits_float(float_bits(a) | float_bits(b));
    const float r = a == b ? eq : (a < b ? a : b);
    return a != a ? a : r;
  }
};
struct PowF {
  static FD_HD float f(float a, float b) {
    // C's pow and JS's Math.pow differ only here: pow(1, NaN) and pow(+-1, +-inf) are 1 in C.
    if (b != b || (__builtin_fabsf(a) == 1.0f && __builtin_fabsf(b) == __builtin_huge_valf()))
      return __builtin_nanf("");
    return static_cast<float>(__builtin_pow(static_cast<double>(a), static_cast<double>(b)));
  }
};
struct SqDiffF {
  static FD_HD float f(float a, float b) {
    const double d = static_cast<double>(a) - static_cast<double>(b);
    return static_cast<float>(d * d);
  }
};
struct FloorDivF {
  static FD_HD int32_t f(float a, float b) {
    return js_to_int32(__builtin_floor(static_cast<double>(a) / static_cast<double>(b)));
  }
};
// tfjs: rem = a % b; same signs (a >= 0 counting -0) keep rem, else (rem + b) % b; all in double.
struct ModF {
  static FD_HD float f(float a, float b) {
    const double x = a, y = b;
    const double rem = __builtin_fmod(x, y);
    if ((x < 0 && y < 0) || (x >= 0 && y >= 0)) return static_cast<float>(rem);
    return static_cast<float>(__builtin_fmod(rem + y, y));
  }
};
struct PreluF {
  static FD_HD float f(float x, float alpha) { return x < 0.0f ? alpha * x : x; }
};

// ---- binary, int32: JS computes in double and stores with ToInt32.
struct AddI {
  static FD_HD int32_t f(int32_t a, int32_t b) {
    return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
  }
};
struct SubI {
  static FD_HD int32_t f(int32_t a, int32_t b) {
    return static_cast<int32_t>(static_cast<uint32_t>(a) - static_cast<uint32_t>(b));
  }
};
// |a b| < 2^62: the double product converts to int64 exactly (after the same rounding as JS's).
struct MulI {
  static FD_HD int32_t f(int32_t a, int32_t b) {
    const double p = static_cast<double>(a) * static_cast<double>(b);
    return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(static_cast<int64_t>(p))));
  }
};
struct MaxI {
  static FD_HD int32_t f(int32_t a, int32_t b) { return a > b ? a : b; }
};
struct MinI {
  static FD_HD int32_t f(int32_t a, int32_t b) { return a < b ? a : b; }
};
struct SqDiffI {
  static FD_HD int32_t f(int32_t a, int32_t b) {
    const double d = static_cast<double>(a) - static_cast<double>(b);
    return js_to_int32(d * d);
  }
};
struct FloorDivI {
  static FD_HD int32_t f(int32_t a, int32_t b) {
    return js_to_int32(__builtin_floor(static_cast<double>(a) / static_cast<double>(b)));
  }
};

// ---- comparisons, any input type: bool out.
struct Gt {
  template <class T>
  static FD_HD uint8_t f(T a, T b) {
    return a > b;
  }
};
struct Ge {
  template <class T>
  static FD_HD uint8_t f(T a, T b) {
    return a >= b;
  }
};
struct Lt {
  template <class T>
  static FD_HD uint8_t f(T a, T b) {
    return a < b;
  }
};
struct Le {
  template <class T>
  static FD_HD uint8_t f(T a, T b) {
    return a <= b;
  }
};
struct Eq {
  template <class T>
  static FD_HD uint8_t f(T a, T b) {
    return a == b;
  }
};
struct Ne {
  template <class T>
  static FD_HD uint8_t f(T a, T b) {
    return !(a == b);
  }
};

inline bool is_comparison(int op) { return op >= kGreater && op <= kNotEqual; }

// Calls f(Op{}, T{}, U{}) with the functor, input and output types of (op, in); false when the pair
// is not supported (see binary_out_type). One dispatch table for the CPU and CUDA entry points.
template <class F>
bool dispatch_binary(int op, int in, F&& f) {
  if (in == kF32) {
    switch (op) {
      case kAdd: f(AddF{}, float{}, float{}); return true;
      case kSub: f(SubF{}, float{}, float{}); return true;
      case kMul: f(MulF{}, float{}, float{}); return true;
      case kRealDiv: f(DivF{}, float{}, float{}); return true;
      case kMaximum: f(MaxF{}, float{}, float{}); return true;
      case kMinimum: f(MinF{}, float{}, float{}); return true;
      case kPow: f(PowF{}, float{}, float{}); return true;
      case kSquaredDifference: f(SqDiffF{}, float{}, float{}); return true;
      case kFloorDiv: f(FloorDivF{}, float{}, int32_t{}); return true;
      case kMod: f(ModF{}, float{}, float{}); return true;
      case kPrelu: f(PreluF{}, float{}, float{}); return true;
      case kGreater: f(Gt{}, float{}, uint8_t{}); return true;
      case kGreaterEqual: f(Ge{}, float{}, uint8_t{}); return true;
      case kLess: f(Lt{}, float{}, uint8_t{}); return true;
      case kLessEqual: f(Le{}, float{}, uint8_t{}); return true;
      case kEqual: f(Eq{}, float{}, uint8_t{}); return true;
      case kNotEqual: f(Ne{}, float{}, uint8_t{}); return true;
      default: return false;
    }
  }
  if (in == kI32) {
    switch (op) {
      case kAdd: f(AddI{}, int32_t{}, int32_t{}); return true;
      case kSub: f(SubI{}, int32_t{}, int32_t{}); return true;
      case kMul: f(MulI{}, int32_t{}, int32_t{}); return true;
      case kMaximum: f(MaxI{}, int32_t{}, int32_t{}); return true;
      case kMinimum: f(MinI{}, int32_t{}, int32_t{}); return true;
      case kSquaredDifference: f(SqDiffI{}, int32_t{}, int32_t{}); return true;
      case kFloorDiv: f(FloorDivI{}, int32_t{}, int32_t{}); return true;
      case kGreater: f(Gt{}, int32_t{}, uint8_t{}); return true;
      case kGreaterEqual: f(Ge{}, int32_t{}, uint8_t{}); return true;
      case kLess: f(Lt{}, int32_t{}, uint8_t{}); return true;
      case kLessEqual: f(Le{}, int32_t{}, uint8_t{}); return true;
      case kEqual: f(Eq{}, int32_t{}, uint8_t{}); return true;
      case kNotEqual: f(Ne{}, int32_t{}, uint8_t{}); return true;
      default: return false;
    }
  }
  return false;
}

// Relative cost per element of an op (for the CPU's thread count).
inline int64_t binary_cost(int op, int in) {
  if (op == kPow) return 16;
  if (op == kMod) return 8;
  return op == kFloorDiv || (op == kSquaredDifference && in == kI32) ? 2 : 1;
}

// ---- the broadcast plan: the two shapes reduced to at most kMaxRank dims with a stride per input
// (0 where it broadcasts): size-1 dims dropped, adjacent dims that are contiguous in both inputs
// merged. So same-shape, scalar and bias (row-vector) cases all become one long inner dim.
struct BroadcastPlan {
  int rank = 0;  // >= 1 once built
  int64_t dim[kMaxRank];
  int64_t sa[kMaxRank], sb[kMaxRank];
  int64_t total = 1;
};

inline BroadcastPlan make_broadcast_plan(const int64_t* as, int ar, const int64_t* bs, int br) {
  const int r = ar > br ? ar : br;
  int64_t astride = 1, bstride = 1;
  // Built innermost first, then reversed.
  int64_t d_in[kMaxRank], sa_in[kMaxRank], sb_in[kMaxRank];
  int n = 0;
  BroadcastPlan p;
  for (int i = 0; i < r; ++i) {  // i-th dim from the right
    const int64_t da = i < ar ? as[ar - 1 - i] : 1;
    const int64_t db = i < br ? bs[br - 1 - i] : 1;
    const int64_t d = da > db ? da : db;
    p.total *= (da == 0 || db == 0) ? 0 : d;
    if (d == 1) continue;
    const int64_t sa = da == 1 ? 0 : astride, sb = db == 1 ? 0 : bstride;
    astride *= da;
    bstride *= db;
    // Merge with the inner neighbour when both inputs are contiguous across the two dims.
    if (n > 0 && sa == sa_in[n - 1] * d_in[n - 1] && sb == sb_in[n - 1] * d_in[n - 1]) {
      d_in[n - 1] *= d;
      continue;
    }
    d_in[n] = d;
    sa_in[n] = sa;
    sb_in[n] = sb;
    ++n;
  }
  if (n == 0) {  // every dim is 1: one element
    d_in[0] = 1;
    sa_in[0] = sb_in[0] = 0;
    n = 1;
  }
  p.rank = n;
  for (int k = 0; k < n; ++k) {
    p.dim[k] = d_in[n - 1 - k];
    p.sa[k] = sa_in[n - 1 - k];
    p.sb[k] = sb_in[n - 1 - k];
  }
  return p;
}

// ---- unary (float32 in). Where tfjs computes a single float64 operation (sqrt, 1/x, x*x, the
// rounding functions) the float result is the same bits; where it evaluates several float64 steps
// (rsqrt, selu, leaky relu) the same steps are done in double.

// tfjs-core's backend_util.SELU_SCALE / SELU_SCALEALPHA (float64).
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSeluScaleAlpha = 1.7580993408473768599402175208123;

// Largest float <= v and smallest float >= v: for a float x, x > v <=> x > down(v) and
// x < v <=> x < up(v), so comparisons against a double attribute stay in float. Host only.
inline float down(double v) {
  float f = static_cast<float>(v);
  if (static_cast<double>(f) > v) f = std::nextafterf(f, -__builtin_huge_valf());
  return f;
}
inline float up(double v) {
  float f = static_cast<float>(v);
  if (static_cast<double>(f) < v) f = std::nextafterf(f, __builtin_huge_valf());
  return f;
}

struct Exp {
  FD_HD float operator()(float x) const { return em::exp(x); }
};
struct Log {
  FD_HD float operator()(float x) const { return em::log(x); }
};
struct Log1p {
  FD_HD float operator()(float x) const { return em::log1p(x); }
};
struct Expm1 {
  FD_HD float operator()(float x) const { return em::expm1(x); }
};
struct Tanh {
  FD_HD float operator()(float x) const { return em::tanh(x); }
};
struct Sigmoid {
  FD_HD float operator()(float x) const { return em::sigmoid(x); }
};
struct Erf {
  FD_HD float operator()(float x) const { return em::erf(x); }
};
// tfjs: exp(x) below log(eps) + 2, x above -(log(eps) + 2), log(1 + exp(x)) between; the middle is
// computed as max(x, 0) + log1p(e^-|x|), which never overflows. Built by make_softplus().
struct Softplus {
  float lo, hi;
  FD_HD float operator()(float x) const {
    const float e = em::exp(-em::abs(x));
    const float mid = (x > 0.0f ? x : 0.0f) + em::log1p(e);
    return x < lo ? e : (x > hi ? x : mid);
  }
};
inline Softplus make_softplus() {
  const double t = std::log(1.1920928955078125e-7) + 2.0;
  return Softplus{up(t), down(-t)};  // x < t, x > -t
}
struct Elu {
  FD_HD float operator()(float x) const { return x >= 0.0f ? x : em::expm1(x); }
};
struct Selu {
  FD_HD float operator()(float x) const {
    const double pos = kSeluScale * static_cast<double>(x);
    const double neg = kSeluScaleAlpha * static_cast<double>(em::expm1(x));
    return static_cast<float>(x >= 0.0f ? pos : neg);
  }
};
// Math.max(0, x): NaN stays NaN, -0 gives +0.
struct Relu {
  FD_HD float operator()(float x) const { return x != x ? x : (x > 0.0f ? x : 0.0f); }
};
struct Relu6 {
  FD_HD float operator()(float x) const { return x != x ? x : (x > 0.0f ? (x < 6.0f ? x : 6.0f) : 0.0f); }
};
struct LeakyRelu {
  double alpha;
  FD_HD float operator()(float x) const { return x < 0.0f ? static_cast<float>(alpha * static_cast<double>(x)) : x; }
};
struct Step {
  float alpha;
  FD_HD float operator()(float x) const { return x != x ? x : (x > 0.0f ? 1.0f : alpha); }
};
struct Clip {
  float lo_cmp, hi_cmp, lo, hi;  // x < min <=> x < lo_cmp; x > max <=> x > hi_cmp
  FD_HD float operator()(float x) const { return x > hi_cmp ? hi : (x < lo_cmp ? lo : x); }
};
inline Clip make_clip(double min, double max) {
  return Clip{up(min), down(max), static_cast<float>(min), static_cast<float>(max)};
}
struct Sqrt {
  FD_HD float operator()(float x) const { return __builtin_sqrtf(x); }
};
struct Rsqrt {
  FD_HD float operator()(float x) const { return static_cast<float>(1.0 / __builtin_sqrt(static_cast<double>(x))); }
};
struct Square {
  FD_HD float operator()(float x) const { return x * x; }
};
struct Neg {
  FD_HD float operator()(float x) const { return -x; }
};
struct Abs {
  FD_HD float operator()(float x) const { return em::abs(x); }
};
struct Reciprocal {
  FD_HD float operator()(float x) const { return 1.0f / x; }
};
struct Sign {
  FD_HD float operator()(float x) const { return x < 0.0f ? -1.0f : (x > 0.0f ? 1.0f : 0.0f); }
};
struct Floor {
  FD_HD float operator()(float x) const { return __builtin_floorf(x); }
};
struct Ceil {
  FD_HD float operator()(float x) const { return __builtin_ceilf(x); }
};
// tfjs's banker's rounding equals rint except at -0.5, which it rounds to +0 (floor(-0.5) + 1).
struct Round {
  FD_HD float operator()(float x) const { return x == -0.5f ? 0.0f : __builtin_rintf(x); }
};
struct Sin {
  FD_HD float operator()(float x) const { return static_cast<float>(__builtin_sin(static_cast<double>(x))); }
};
struct Cos {
  FD_HD float operator()(float x) const { return static_cast<float>(__builtin_cos(static_cast<double>(x))); }
};
struct IsNaN {
  FD_HD uint8_t operator()(float x) const { return x != x; }
};
struct IsInf {
  FD_HD uint8_t operator()(float x) const { return em::abs(x) == __builtin_huge_valf(); }
};
struct IsFinite {
  FD_HD uint8_t operator()(float x) const { return em::abs(x) < __builtin_huge_valf(); }
};

// Calls f(functor, cost) for unary op `op` (attributes p0, p1 as in UnaryOp); false for a bad op.
template <class F>
bool dispatch_unary(int op, double p0, double p1, F&& f) {
  switch (op) {
    case kExp: f(Exp{}, 4); return true;
    case kLog: f(Log{}, 4); return true;
    case kLog1p: f(Log1p{}, 5); return true;
    case kExpm1: f(Expm1{}, 4); return true;
    case kTanh: f(Tanh{}, 5); return true;
    case kSigmoid: f(Sigmoid{}, 5); return true;
    case kErf: f(Erf{}, 6); return true;
    case kSoftplus: f(make_softplus(), 8); return true;
    case kElu: f(Elu{}, 4); return true;
    case kSelu: f(Selu{}, 5); return true;
    case kRelu: f(Relu{}, 1); return true;
    case kRelu6: f(Relu6{}, 1); return true;
    case kLeakyRelu: f(LeakyRelu{p0}, 1); return true;
    case kStep: f(Step{static_cast<float>(p0)}, 1); return true;
    case kClipByValue: f(make_clip(p0, p1), 1); return true;
    case kSqrt: f(Sqrt{}, 1); return true;
    case kRsqrt: f(Rsqrt{}, 2); return true;
    case kSquare: f(Square{}, 1); return true;
    case kNeg: f(Neg{}, 1); return true;
    case kAbs: f(Abs{}, 1); return true;
    case kReciprocal: f(Reciprocal{}, 1); return true;
    case kSign: f(Sign{}, 1); return true;
    case kFloor: f(Floor{}, 1); return true;
    case kCeil: f(Ceil{}, 1); return true;
    case kRound: f(Round{}, 1); return true;
    case kSin: f(Sin{}, 16); return true;
    case kCos: f(Cos{}, 16); return true;
    case kIsNaN: f(IsNaN{}, 1); return true;
    case kIsInf: f(IsInf{}, 1); return true;
    case kIsFinite: f(IsFinite{}, 1); return true;
    default: return false;
  }
}

// ---- casts (tfjs's Cast): float -> int32 truncates toward zero with ToInt32 wrapping (NaN, +-inf
// -> 0; |x| >= 2^63 is a multiple of 2^40, so 0 modulo 2^32), -> bool is x != 0 (NaN -> 1),
// bool/int32 -> float32 rounds to nearest.
struct F32ToI32 {
  FD_HD int32_t operator()(float x) const {
    return em::abs(x) < 0x1p63f
               ? static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(static_cast<int64_t>(x))))
               : 0;
  }
};
struct F32ToU8 {
  FD_HD uint8_t operator()(float v) const { return v != 0.0f; }
};
struct I32ToF32 {
  FD_HD float operator()(int32_t v) const { return static_cast<float>(v); }
};
struct I32ToU8 {
  FD_HD uint8_t operator()(int32_t v) const { return v != 0; }
};
struct U8ToF32 {
  FD_HD float operator()(uint8_t v) const { return static_cast<float>(v); }
};
struct U8ToI32 {
  FD_HD int32_t operator()(uint8_t v) const { return static_cast<int32_t>(v); }
};

// Calls f(functor, T{}, U{}) for a cast between two different types; false for a bad pair.
template <class F>
bool dispatch_cast(int in, int out_type, F&& f) {
  switch (in * 3 + out_type) {
    case kF32 * 3 + kI32: f(F32ToI32{}, float{}, int32_t{}); return true;
    case kF32 * 3 + kU8: f(F32ToU8{}, float{}, uint8_t{}); return true;
    case kI32 * 3 + kF32: f(I32ToF32{}, int32_t{}, float{}); return true;
    case kI32 * 3 + kU8: f(I32ToU8{}, int32_t{}, uint8_t{}); return true;
    case kU8 * 3 + kF32: f(U8ToF32{}, uint8_t{}, float{}); return true;
    case kU8 * 3 + kI32: f(U8ToI32{}, uint8_t{}, int32_t{}); return true;
    default: return false;
  }
}

// ---- fill: the value converted as a JS typed array's fill would (Math.fround for float32,
// ToInt32 for int32, ToUint8 = ToInt32 mod 256 for bool).
inline float fill_f32(double v) { return static_cast<float>(v); }
inline int32_t fill_i32(double v) { return js_to_int32(v); }
inline uint8_t fill_u8(double v) { return static_cast<uint8_t>(js_to_int32(v) & 0xff); }

}  // namespace ew
}  // namespace fd
