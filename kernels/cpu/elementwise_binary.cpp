// Binary elementwise ops with numpy/tfjs broadcasting. The two shapes are reduced to a plan of at
// most kMaxRank dims with a stride per input (0 where it broadcasts): size-1 dims dropped, adjacent
// dims that are contiguous in both inputs merged. So same-shape, scalar and bias (row-vector) cases
// all become one long inner loop: a[i] op b[i], a[i] op b, or a op b[i], each a vectorized loop.
// The output is cut into fixed blocks of elements (threads never change the result: no op here
// reads more than its own element).
#include <cmath>
#include <cstdint>

#include "../fd_math.h"
#include "elementwise_ops.h"
#include "parallel.h"

namespace fd {
namespace {

constexpr int64_t kBlock = 1 << 14;
constexpr float kNaN = __builtin_nanf("");

// JS ToInt32 of a double: truncation toward zero, then wrap modulo 2^32; NaN and +-inf give 0.
// Branch-free so that loops over it vectorize: d - trunc(d / 2^32) 2^32 is exact and below 2^32.
inline int32_t js_to_int32(double d) {
  const double w = d - std::trunc(d * 0x1p-32) * 0x1p32;
  const double r = std::fabs(d) < __builtin_huge_val() ? w : 0.0;
  return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(static_cast<int64_t>(r))));
}

// ---- float32 ops. Sums, products and quotients of two floats rounded once to float equal JS's
// float64 result rounded to float32 (53 >= 2 * 24 + 2 bits), so these match tfjs bit for bit;
// the ops tfjs computes in more than one float64 step are computed in double here too.
struct AddF { static float f(float a, float b) { return a + b; } };
struct SubF { static float f(float a, float b) { return a - b; } };
struct MulF { static float f(float a, float b) { return a * b; } };
struct DivF { static float f(float a, float b) { return a / b; } };
// Math.max / Math.min: NaN wins; for equal values the bitwise AND (max) / OR (min) gives +0 / -0
// from {-0, +0} and the value itself otherwise.
struct MaxF {
  static float f(float a, float b) {
    const float eq = bits_float(float_bits(a) & float_bits(b));
    const float r = a == b ? eq : (a > b ? a : b);  // b NaN: b
    return a != a ? a : r;
  }
};
struct MinF {
  static float f(float a, float b) {
    const float eq = bits_float(float_bits(a) | float_bits(b));
    const float r = a == b ? eq : (a < b ? a : b);
    return a != a ? a : r;
  }
};
struct PowF {
  static float f(float a, float b) {
    // C's pow and JS's Math.pow differ only here: pow(1, NaN) and pow(+-1, +-inf) are 1 in C.
    if (b != b || (std::fabs(a) == 1.0f && std::fabs(b) == __builtin_huge_valf())) return kNaN;
    return static_cast<float>(std::pow(static_cast<double>(a), static_cast<double>(b)));
  }
};
struct SqDiffF {
  static float f(float a, float b) {
    const double d = static_cast<double>(a) - static_cast<double>(b);
    return static_cast<float>(d * d);
  }
};
struct FloorDivF {
  static int32_t f(float a, float b) {
    return js_to_int32(std::floor(static_cast<double>(a) / static_cast<double>(b)));
  }
};
// tfjs: rem = a % b; same signs (a >= 0 counting -0) keep rem, else (rem + b) % b; all in double.
struct ModF {
  static float f(float a, float b) {
    const double x = a, y = b;
    const double rem = std::fmod(x, y);
    if ((x < 0 && y < 0) || (x >= 0 && y >= 0)) return static_cast<float>(rem);
    return static_cast<float>(std::fmod(rem + y, y));
  }
};
struct PreluF { static float f(float x, float alpha) { return x < 0.0f ? alpha * x : x; } };

// ---- int32 ops: JS computes in double and stores with ToInt32.
struct AddI { static int32_t f(int32_t a, int32_t b) { return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b)); } };
struct SubI { static int32_t f(int32_t a, int32_t b) { return static_cast<int32_t>(static_cast<uint32_t>(a) - static_cast<uint32_t>(b)); } };
// |a b| < 2^62: the double product converts to int64 exactly (after the same rounding as JS's).
struct MulI {
  static int32_t f(int32_t a, int32_t b) {
    const double p = static_cast<double>(a) * static_cast<double>(b);
    return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(static_cast<int64_t>(p))));
  }
};
struct MaxI { static int32_t f(int32_t a, int32_t b) { return a > b ? a : b; } };
struct MinI { static int32_t f(int32_t a, int32_t b) { return a < b ? a : b; } };
struct SqDiffI {
  static int32_t f(int32_t a, int32_t b) {
    const double d = static_cast<double>(a) - static_cast<double>(b);
    return js_to_int32(d * d);
  }
};
struct FloorDivI {
  static int32_t f(int32_t a, int32_t b) {
    return js_to_int32(std::floor(static_cast<double>(a) / static_cast<double>(b)));
  }
};

// ---- comparisons, any input type: bool out.
struct Gt { template <class T> static uint8_t f(T a, T b) { return a > b; } };
struct Ge { template <class T> static uint8_t f(T a, T b) { return a >= b; } };
struct Lt { template <class T> static uint8_t f(T a, T b) { return a < b; } };
struct Le { template <class T> static uint8_t f(T a, T b) { return a <= b; } };
struct Eq { template <class T> static uint8_t f(T a, T b) { return a == b; } };
struct Ne { template <class T> static uint8_t f(T a, T b) { return !(a == b); } };

// ---- the broadcast plan.
struct Plan {
  int rank = 0;  // >= 1 once built
  int64_t dim[kMaxRank];
  int64_t sa[kMaxRank], sb[kMaxRank];
  int64_t total = 1;
};

Plan make_plan(const int64_t* as, int ar, const int64_t* bs, int br) {
  const int r = ar > br ? ar : br;
  int64_t astride = 1, bstride = 1;
  // Built innermost first, then reversed.
  int64_t d_in[kMaxRank], sa_in[kMaxRank], sb_in[kMaxRank];
  int n = 0;
  Plan p;
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

// The inner loops: strides are 1 or 0 (a broadcast input) on the innermost plan dim.
template <class Op, class T, class U>
void inner(const T* a, int64_t sa, const T* b, int64_t sb, U* out, int64_t n) {
  if (sa == 1 && sb == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = Op::f(a[i], b[i]);
  } else if (sa == 1) {
    const T bv = b[0];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = Op::f(a[i], bv);
  } else if (sb == 1) {
    const T av = a[0];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = Op::f(av, b[i]);
  } else {
    const U v = Op::f(a[0], b[0]);
    for (int64_t i = 0; i < n; ++i) out[i] = v;
  }
}

template <class Op, class T, class U>
void run(const Plan& p, const T* a, const T* b, U* out, int64_t cost) {
  const int last = p.rank - 1;
  const int64_t in_n = p.dim[last];
  const int64_t in_sa = p.sa[last], in_sb = p.sb[last];
  for_each_block(p.total, kBlock, p.total * cost, [&](int64_t, int64_t begin, int64_t end) {
    int64_t idx[kMaxRank];
    int64_t row = begin / in_n, col = begin % in_n;
    int64_t ao = 0, bo = 0;
    for (int d = last - 1; d >= 0; --d) {
      idx[d] = row % p.dim[d];
      row /= p.dim[d];
      ao += idx[d] * p.sa[d];
      bo += idx[d] * p.sb[d];
    }
    for (int64_t pos = begin; pos < end;) {
      const int64_t len = (in_n - col < end - pos) ? in_n - col : end - pos;
      inner<Op>(a + ao + col * in_sa, in_sa, b + bo + col * in_sb, in_sb, out + pos, len);
      pos += len;
      col = 0;
      for (int d = last - 1; d >= 0; --d) {  // the odometer over the outer dims
        ao += p.sa[d];
        bo += p.sb[d];
        if (++idx[d] < p.dim[d]) break;
        ao -= p.sa[d] * p.dim[d];
        bo -= p.sb[d] * p.dim[d];
        idx[d] = 0;
      }
    }
  });
}

template <class T>
void compare(int op, const Plan& p, const T* a, const T* b, uint8_t* out) {
  switch (op) {
    case kGreater: return run<Gt>(p, a, b, out, 1);
    case kGreaterEqual: return run<Ge>(p, a, b, out, 1);
    case kLess: return run<Lt>(p, a, b, out, 1);
    case kLessEqual: return run<Le>(p, a, b, out, 1);
    case kEqual: return run<Eq>(p, a, b, out, 1);
    case kNotEqual: return run<Ne>(p, a, b, out, 1);
    default: return;
  }
}

bool is_comparison(int op) { return op >= kGreater && op <= kNotEqual; }

const char* const kBinaryNames[kNumBinaryOps] = {
    "Add", "Sub", "Multiply", "RealDiv", "Maximum", "Minimum", "Pow", "SquaredDifference", "FloorDiv",
    "Mod", "Prelu", "Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual"};

}  // namespace

const char* binary_op_name(int op) { return op >= 0 && op < kNumBinaryOps ? kBinaryNames[op] : nullptr; }

int binary_out_type(int op, int in) {
  if (op < 0 || op >= kNumBinaryOps) return -1;
  if (is_comparison(op)) return in == kF32 || in == kI32 ? kU8 : -1;
  if (op == kFloorDiv) return in == kF32 || in == kI32 ? kI32 : -1;
  if (in == kF32) return kF32;
  if (in == kI32) {
    switch (op) {
      case kAdd: case kSub: case kMul: case kMaximum: case kMinimum: case kSquaredDifference: return kI32;
      default: return -1;
    }
  }
  return -1;
}

bool broadcast_shape(const int64_t* a_shape, int a_rank, const int64_t* b_shape, int b_rank,
                     int64_t* out_shape, int* out_rank) {
  const int r = a_rank > b_rank ? a_rank : b_rank;
  if (r > kMaxRank) return false;
  for (int i = 0; i < r; ++i) {
    const int64_t da = i < a_rank ? a_shape[a_rank - 1 - i] : 1;
    const int64_t db = i < b_rank ? b_shape[b_rank - 1 - i] : 1;
    if (da != db && da != 1 && db != 1) return false;
    out_shape[r - 1 - i] = da == 1 ? db : da;
  }
  *out_rank = r;
  return true;
}

void binary_cpu(int op, int in, const void* a_, const int64_t* a_shape, int a_rank, const void* b_,
                const int64_t* b_shape, int b_rank, void* out_) {
  if (a_rank > kMaxRank || b_rank > kMaxRank) return;  // the caller checks this
  const Plan p = make_plan(a_shape, a_rank, b_shape, b_rank);
  if (p.total == 0) return;
  if (in == kF32) {
    const float* a = static_cast<const float*>(a_);
    const float* b = static_cast<const float*>(b_);
    if (is_comparison(op)) return compare(op, p, a, b, static_cast<uint8_t*>(out_));
    if (op == kFloorDiv) return run<FloorDivF>(p, a, b, static_cast<int32_t*>(out_), 2);
    float* out = static_cast<float*>(out_);
    switch (op) {
      case kAdd: return run<AddF>(p, a, b, out, 1);
      case kSub: return run<SubF>(p, a, b, out, 1);
      case kMul: return run<MulF>(p, a, b, out, 1);
      case kRealDiv: return run<DivF>(p, a, b, out, 1);
      case kMaximum: return run<MaxF>(p, a, b, out, 1);
      case kMinimum: return run<MinF>(p, a, b, out, 1);
      case kPow: return run<PowF>(p, a, b, out, 16);
      case kSquaredDifference: return run<SqDiffF>(p, a, b, out, 1);
      case kMod: return run<ModF>(p, a, b, out, 8);
      case kPrelu: return run<PreluF>(p, a, b, out, 1);
      default: return;
    }
  }
  if (in == kI32) {
    const int32_t* a = static_cast<const int32_t*>(a_);
    const int32_t* b = static_cast<const int32_t*>(b_);
    if (is_comparison(op)) return compare(op, p, a, b, static_cast<uint8_t*>(out_));
    int32_t* out = static_cast<int32_t*>(out_);
    switch (op) {
      case kAdd: return run<AddI>(p, a, b, out, 1);
      case kSub: return run<SubI>(p, a, b, out, 1);
      case kMul: return run<MulI>(p, a, b, out, 1);
      case kMaximum: return run<MaxI>(p, a, b, out, 1);
      case kMinimum: return run<MinI>(p, a, b, out, 1);
      case kSquaredDifference: return run<SqDiffI>(p, a, b, out, 2);
      case kFloorDiv: return run<FloorDivI>(p, a, b, out, 2);
      default: return;
    }
  }
}

}  // namespace fd
