// Unary elementwise ops, casts and fills. Each op is a functor (elementwise_scalar.h, shared with
// the CUDA kernels) applied in a vectorized loop over fixed blocks (parallel for large arrays; the
// result never depends on the thread count).
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../elementwise.h"
#include "../elementwise_scalar.h"
#include "parallel.h"

namespace fd {
namespace {

constexpr int64_t kBlock = 1 << 14;

template <class U, class F>
void map(const float* x, U* out, int64_t n, int64_t cost, F f) {
  for_each_block(n, kBlock, n * cost, [&](int64_t, int64_t begin, int64_t end) {
    const F g = f;  // a local copy: its members are then loop invariants GCC can vectorize with
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) out[i] = g(x[i]);
  });
}

const char* const kUnaryNames[kNumUnaryOps] = {
    "Exp",        "Log",   "Log1p",     "Expm1", "Tanh",        "Sigmoid", "Erf",   "Softplus", "Elu",   "Selu",
    "Relu",       "Relu6", "LeakyRelu", "Step",  "ClipByValue", "Sqrt",    "Rsqrt", "Square",   "Neg",   "Abs",
    "Reciprocal", "Sign",  "Floor",     "Ceil",  "Round",       "Sin",     "Cos",   "IsNan",    "IsInf", "IsFinite"};

// ---- casts and fills.
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

}  // namespace

const char* unary_op_name(int op) { return op >= 0 && op < kNumUnaryOps ? kUnaryNames[op] : nullptr; }

int unary_out_type(int op) {
  if (op < 0 || op >= kNumUnaryOps) return -1;
  return op == kIsNaN || op == kIsInf || op == kIsFinite ? kU8 : kF32;
}

void unary_cpu(int op, const float* x, void* out, int64_t n, double p0, double p1) {
  if (n <= 0) return;
  ew::dispatch_unary(op, p0, p1, [&](auto f, int64_t cost) {
    using U = decltype(f(0.0f));
    map(x, static_cast<U*>(out), n, cost, f);
  });
}

void cast_cpu(int in, const void* x, int out_type, void* out, int64_t n) {
  if (n <= 0) return;
  if (in == out_type) {
    const size_t bytes = static_cast<size_t>(n) * (in == kU8 ? 1 : 4);
    if (out != x) std::memmove(out, x, bytes);
    return;
  }
  ew::dispatch_cast(in, out_type, [&](auto f, auto t, auto u) {
    using T = decltype(t);
    using U = decltype(u);
    convert(static_cast<const T*>(x), static_cast<U*>(out), n, f);
  });
}

void fill_cpu(int type, void* out, int64_t n, double value) {
  if (n <= 0) return;
  switch (type) {
    case kF32: return fill_with(static_cast<float*>(out), n, ew::fill_f32(value));
    case kI32: return fill_with(static_cast<int32_t*>(out), n, ew::fill_i32(value));
    case kU8: return fill_with(static_cast<uint8_t*>(out), n, ew::fill_u8(value));
    default: return;
  }
}

}  // namespace fd
