// Unary elementwise ops, casts and fills. Each op is a functor applied in a vectorized loop over
// fixed blocks (parallel for large arrays; the result never depends on the thread count). Where
// tfjs computes a single float64 operation (sqrt, 1/x, x*x, the rounding functions) the float
// result is the same bits; where it evaluates several float64 steps (rsqrt, selu, leaky relu) this
// code does the same steps in double; the transcendental functions are elementwise_math.h's.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../fd_math.h"
#include "elementwise_math.h"
#include "elementwise_ops.h"
#include "parallel.h"

namespace fd {
namespace {

constexpr int64_t kBlock = 1 << 14;
constexpr float kInf = __builtin_huge_valf();

// tfjs-core's backend_util.SELU_SCALE / SELU_SCALEALPHA (float64).
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSeluScaleAlpha = 1.7580993408473768599402175208123;

// Largest float <= v and smallest float >= v: for a float x, x > v <=> x > down(v) and
// x < v <=> x < up(v), so comparisons against a double attribute stay in float.
float down(double v) {
  float f = static_cast<float>(v);
  if (static_cast<double>(f) > v) f = std::nextafterf(f, -kInf);
  return f;
}
float up(double v) {
  float f = static_cast<float>(v);
  if (static_cast<double>(f) < v) f = std::nextafterf(f, kInf);
  return f;
}

struct Exp { float operator()(float x) const { return em::exp(x); } };
struct Log { float operator()(float x) const { return em::log(x); } };
struct Log1p { float operator()(float x) const { return em::log1p(x); } };
struct Expm1 { float operator()(float x) const { return em::expm1(x); } };
struct Tanh { float operator()(float x) const { return em::tanh(x); } };
struct Sigmoid { float operator()(float x) const { return em::sigmoid(x); } };
struct Erf { float operator()(float x) const { return em::erf(x); } };
// tfjs: exp(x) below log(eps) + 2, x above -(log(eps) + 2), log(1 + exp(x)) between; the middle is
// computed as max(x, 0) + log1p(e^-|x|), which never overflows.
struct Softplus {
  float lo, hi;
  Softplus() {
    const double t = std::log(1.1920928955078125e-7) + 2.0;
    lo = up(t);    // x < t
    hi = down(-t);  // x > -t
  }
  float operator()(float x) const {
    const float e = em::exp(-em::abs(x));
    const float mid = (x > 0.0f ? x : 0.0f) + em::log1p(e);
    return x < lo ? e : (x > hi ? x : mid);
  }
};
struct Elu { float operator()(float x) const { return x >= 0.0f ? x : em::expm1(x); } };
struct Selu {
  float operator()(float x) const {
    const double pos = kSeluScale * static_cast<double>(x);
    const double neg = kSeluScaleAlpha * static_cast<double>(em::expm1(x));
    return static_cast<float>(x >= 0.0f ? pos : neg);
  }
};
// Math.max(0, x): NaN stays NaN, -0 gives +0.
struct Relu { float operator()(float x) const { return x != x ? x : (x > 0.0f ? x : 0.0f); } };
struct Relu6 { float operator()(float x) const { return x != x ? x : (x > 0.0f ? (x < 6.0f ? x : 6.0f) : 0.0f); } };
struct LeakyRelu {
  double alpha;
  float operator()(float x) const { return x < 0.0f ? static_cast<float>(alpha * static_cast<double>(x)) : x; }
};
struct Step {
  float alpha;
  float operator()(float x) const { return x != x ? x : (x > 0.0f ? 1.0f : alpha); }
};
struct Clip {
  float lo_cmp, hi_cmp, lo, hi;  // x < min <=> x < lo_cmp; x > max <=> x > hi_cmp
  float operator()(float x) const { return x > hi_cmp ? hi : (x < lo_cmp ? lo : x); }
};
struct Sqrt { float operator()(float x) const { return __builtin_sqrtf(x); } };
struct Rsqrt {
  float operator()(float x) const { return static_cast<float>(1.0 / __builtin_sqrt(static_cast<double>(x))); }
};
struct Square { float operator()(float x) const { return x * x; } };
struct Neg { float operator()(float x) const { return -x; } };
struct Abs { float operator()(float x) const { return em::abs(x); } };
struct Reciprocal { float operator()(float x) const { return 1.0f / x; } };
struct Sign { float operator()(float x) const { return x < 0.0f ? -1.0f : (x > 0.0f ? 1.0f : 0.0f); } };
struct Floor { float operator()(float x) const { return __builtin_floorf(x); } };
struct Ceil { float operator()(float x) const { return __builtin_ceilf(x); } };
// tfjs's banker's rounding equals rint except at -0.5, which it rounds to +0 (floor(-0.5) + 1).
struct Round { float operator()(float x) const { return x == -0.5f ? 0.0f : __builtin_rintf(x); } };
struct Sin { float operator()(float x) const { return static_cast<float>(std::sin(static_cast<double>(x))); } };
struct Cos { float operator()(float x) const { return static_cast<float>(std::cos(static_cast<double>(x))); } };
struct IsNaN { uint8_t operator()(float x) const { return x != x; } };
struct IsInf { uint8_t operator()(float x) const { return em::abs(x) == kInf; } };
struct IsFinite { uint8_t operator()(float x) const { return em::abs(x) < kInf; } };

template <class U, class F>
void map(const float* x, U* out, int64_t n, int64_t cost, F f) {
  for_each_block(n, kBlock, n * cost, [&](int64_t, int64_t begin, int64_t end) {
    const F g = f;  // a local copy: its members are then loop invariants GCC can vectorize with
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) out[i] = g(x[i]);
  });
}

const char* const kUnaryNames[kNumUnaryOps] = {
    "Exp",        "Log",   "Log1p", "Expm1", "Tanh",  "Sigmoid", "Erf",        "Softplus", "Elu",   "Selu",
    "Relu",       "Relu6", "LeakyRelu", "Step", "ClipByValue", "Sqrt", "Rsqrt", "Square",   "Neg",   "Abs",
    "Reciprocal", "Sign",  "Floor", "Ceil",  "Round", "Sin",     "Cos",        "IsNan",    "IsInf", "IsFinite"};

// ---- casts.
inline int32_t float_to_int32(float x) {
  // |x| >= 2^63 is a multiple of 2^40, so 0 modulo 2^32; NaN fails the test too.
  return em::abs(x) < 0x1p63f
             ? static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(static_cast<int64_t>(x))))
             : 0;
}

template <class T, class U, class F>
void convert(const T* x, U* out, int64_t n, F f) {
  for_each_block(n, kBlock, n, [&](int64_t, int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) out[i] = f(x[i]);
  });
}

template <class T>
void fill_with(T* out, int64_t n, T v) {
  for_each_block(n, kBlock, n, [&](int64_t, int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) out[i] = v;
  });
}

int32_t js_to_int32(double d) {
  if (!std::isfinite(d)) return 0;
  d = std::trunc(d);
  if (!(std::fabs(d) < 0x1p63)) d = std::fmod(d, 0x1p32);
  return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(static_cast<int64_t>(d))));
}

}  // namespace

const char* unary_op_name(int op) { return op >= 0 && op < kNumUnaryOps ? kUnaryNames[op] : nullptr; }

int unary_out_type(int op) {
  if (op < 0 || op >= kNumUnaryOps) return -1;
  return op == kIsNaN || op == kIsInf || op == kIsFinite ? kU8 : kF32;
}

void unary_cpu(int op, const float* x, void* out_, int64_t n, double p0, double p1) {
  if (n <= 0) return;
  float* out = static_cast<float*>(out_);
  uint8_t* out8 = static_cast<uint8_t*>(out_);
  switch (op) {
    case kExp: return map(x, out, n, 4, Exp{});
    case kLog: return map(x, out, n, 4, Log{});
    case kLog1p: return map(x, out, n, 5, Log1p{});
    case kExpm1: return map(x, out, n, 4, Expm1{});
    case kTanh: return map(x, out, n, 5, Tanh{});
    case kSigmoid: return map(x, out, n, 5, Sigmoid{});
    case kErf: return map(x, out, n, 6, Erf{});
    case kSoftplus: return map(x, out, n, 8, Softplus{});
    case kElu: return map(x, out, n, 4, Elu{});
    case kSelu: return map(x, out, n, 5, Selu{});
    case kRelu: return map(x, out, n, 1, Relu{});
    case kRelu6: return map(x, out, n, 1, Relu6{});
    case kLeakyRelu: return map(x, out, n, 1, LeakyRelu{p0});
    case kStep: return map(x, out, n, 1, Step{static_cast<float>(p0)});
    case kClipByValue:
      return map(x, out, n, 1, Clip{up(p0), down(p1), static_cast<float>(p0), static_cast<float>(p1)});
    case kSqrt: return map(x, out, n, 1, Sqrt{});
    case kRsqrt: return map(x, out, n, 2, Rsqrt{});
    case kSquare: return map(x, out, n, 1, Square{});
    case kNeg: return map(x, out, n, 1, Neg{});
    case kAbs: return map(x, out, n, 1, Abs{});
    case kReciprocal: return map(x, out, n, 1, Reciprocal{});
    case kSign: return map(x, out, n, 1, Sign{});
    case kFloor: return map(x, out, n, 1, Floor{});
    case kCeil: return map(x, out, n, 1, Ceil{});
    case kRound: return map(x, out, n, 1, Round{});
    case kSin: return map(x, out, n, 16, Sin{});
    case kCos: return map(x, out, n, 16, Cos{});
    case kIsNaN: return map(x, out8, n, 1, IsNaN{});
    case kIsInf: return map(x, out8, n, 1, IsInf{});
    case kIsFinite: return map(x, out8, n, 1, IsFinite{});
    default: return;
  }
}

void cast_cpu(int in, const void* x, int out_type, void* out, int64_t n) {
  if (n <= 0) return;
  if (in == out_type) {
    const size_t bytes = static_cast<size_t>(n) * (in == kU8 ? 1 : 4);
    if (out != x) std::memmove(out, x, bytes);
    return;
  }
  const auto* f = static_cast<const float*>(x);
  const auto* i = static_cast<const int32_t*>(x);
  const auto* b = static_cast<const uint8_t*>(x);
  switch (in * 3 + out_type) {
    case kF32 * 3 + kI32: return convert(f, static_cast<int32_t*>(out), n, [](float v) { return float_to_int32(v); });
    case kF32 * 3 + kU8: return convert(f, static_cast<uint8_t*>(out), n, [](float v) -> uint8_t { return v != 0.0f; });
    case kI32 * 3 + kF32: return convert(i, static_cast<float*>(out), n, [](int32_t v) { return static_cast<float>(v); });
    case kI32 * 3 + kU8: return convert(i, static_cast<uint8_t*>(out), n, [](int32_t v) -> uint8_t { return v != 0; });
    case kU8 * 3 + kF32: return convert(b, static_cast<float*>(out), n, [](uint8_t v) { return static_cast<float>(v); });
    case kU8 * 3 + kI32: return convert(b, static_cast<int32_t*>(out), n, [](uint8_t v) { return static_cast<int32_t>(v); });
    default: return;
  }
}

void fill_cpu(int type, void* out, int64_t n, double value) {
  if (n <= 0) return;
  switch (type) {
    case kF32: return fill_with(static_cast<float*>(out), n, static_cast<float>(value));
    case kI32: return fill_with(static_cast<int32_t*>(out), n, js_to_int32(value));
    case kU8: return fill_with(static_cast<uint8_t*>(out), n, static_cast<uint8_t>(js_to_int32(value) & 0xff));
    default: return;
  }
}

}  // namespace fd
