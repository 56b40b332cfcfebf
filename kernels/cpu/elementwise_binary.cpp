// Binary elementwise ops with numpy/tfjs broadcasting. The two shapes are reduced to a plan of at
// most kMaxRank dims with a stride per input (0 where it broadcasts): size-1 dims dropped, adjacent
// dims that are contiguous in both inputs merged. So same-shape, scalar and bias (row-vector) cases
// all become one long inner loop: a[i] op b[i], a[i] op b, or a op b[i], each a vectorized loop.
// The output is cut into fixed blocks of elements (threads never change the result: no op here
// reads more than its own element). The per-element functions and the plan are elementwise_scalar.h's
// (shared with the CUDA kernels).
#include <cmath>
#include <cstdint>

#include "../elementwise.h"
#include "../elementwise_scalar.h"
#include "parallel.h"

namespace fd {
namespace {

constexpr int64_t kBlock = 1 << 14;

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
void run(const ew::BroadcastPlan& p, const T* a, const T* b, U* out, int64_t cost) {
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

const char* const kBinaryNames[kNumBinaryOps] = {
    "Add", "Sub",   "Multiply", "RealDiv",      "Maximum", "Minimum",   "Pow",   "SquaredDifference", "FloorDiv",
    "Mod", "Prelu", "Greater",  "GreaterEqual", "Less",    "LessEqual", "Equal", "NotEqual"};

}  // namespace

const char* binary_op_name(int op) { return op >= 0 && op < kNumBinaryOps ? kBinaryNames[op] : nullptr; }

int binary_out_type(int op, int in) {
  if (op < 0 || op >= kNumBinaryOps) return -1;
  if (ew::is_comparison(op)) return in == kF32 || in == kI32 ? kU8 : -1;
  if (op == kFloorDiv) return in == kF32 || in == kI32 ? kI32 : -1;
  if (in == kF32) return kF32;
  if (in == kI32) {
    switch (op) {
      case kAdd:
      case kSub:
      case kMul:
      case kMaximum:
      case kMinimum:
      case kSquaredDifference: return kI32;
      default: return -1;
    }
  }
  return -1;
}

bool broadcast_shape(const int64_t* a_shape, int a_rank, const int64_t* b_shape, int b_rank, int64_t* out_shape,
                     int* out_rank) {
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
  const ew::BroadcastPlan p = ew::make_broadcast_plan(a_shape, a_rank, b_shape, b_rank);
  if (p.total == 0) return;
  ew::dispatch_binary(op, in, [&](auto f, auto t, auto u) {
    using Op = decltype(f);
    using T = decltype(t);
    using U = decltype(u);
    run<Op>(p, static_cast<const T*>(a_), static_cast<const T*>(b_), static_cast<U*>(out_), ew::binary_cost(op, in));
  });
}

}  // namespace fd
