// Reductions over any set of axes without a transpose. The shape is first canonicalised: size-1 axes
// dropped, neighbouring axes that are both reduced or both kept merged, so it alternates kept and
// reduced groups. Each reduced group is then one "stage" that views its input as [outer, R, inner]:
//   inner == 1  rows: each output reduces R contiguous elements (16 independent lanes, so it
//               vectorises; lanes are combined in a fixed order; float max/min as a simd max plus
//               a NaN flag, which is order-independent);
//   inner > 1   columns: each output column is reduced down R rows, vectorised across the columns.
// Several reduced groups (axes not contiguous) take several stages, innermost first, the partial
// results kept in the accumulator type (double for float sums). Both views read memory in order.
//
// Determinism: an output element is reduced by one thread in a fixed order; only when there are few
// outputs and a long reduction (a full sum, a bias gradient's column sum) is R split into chunks, whose
// boundaries depend only on the shape, and the chunk partials are combined in order.
//
// tfjs semantics kept exactly (its CPU kernels, after their transpose, scan the reduced elements in
// row-major order): Max/Min return NaN if any element is NaN and keep the first of equal values
// (which only shows for +0/-0: a row's zero result is redone serially); ArgMax/ArgMin
// keep the first extreme and skip NaN except at element 0. Sums are float32 rounded once from a
// double accumulator (tfjs sums in double too), so they agree with tfjs to the last bit or close.
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "../reduce.h"
#include "../shape_plan.h"
#include "parallel.h"

namespace fd {
namespace {

constexpr int kLanes = 16;         // independent accumulators in a row reduction
constexpr int64_t kWidth = 256;    // columns per task in a column reduction
constexpr int64_t kChunk = 32768;  // elements per chunk when a long reduction is split
constexpr int64_t kMaxChunks = 64;

template <class A>
struct SumOp {
  using Acc = A;
  static constexpr bool kFixZero = false;
  static Acc identity() { return Acc(0); }
  static Acc f(Acc a, Acc v) { return a + v; }
};
template <class A>
struct ProdOp {
  using Acc = A;
  static constexpr bool kFixZero = false;
  static Acc identity() { return Acc(1); }
  static Acc f(Acc a, Acc v) { return a * v; }
};
// v != v is only true for NaN: a NaN replaces the running value, and nothing replaces a NaN (every
// comparison with it is false), so a NaN anywhere gives NaN.
template <class A>
struct MaxOp {
  using Acc = A;
  static constexpr bool kFixZero = std::is_floating_point<A>::value;
  static Acc identity() {
    return std::is_floating_point<A>::value ? -std::numeric_limits<A>::infinity() : std::numeric_limits<A>::lowest();
  }
  static Acc f(Acc a, Acc v) { return (v > a || v != v) ? v : a; }
};
template <class A>
struct MinOp {
  using Acc = A;
  static constexpr bool kFixZero = std::is_floating_point<A>::value;
  static Acc identity() {
    return std::is_floating_point<A>::value ? std::numeric_limits<A>::infinity() : std::numeric_limits<A>::max();
  }
  static Acc f(Acc a, Acc v) { return (v < a || v != v) ? v : a; }
};
struct AnyOp {
  using Acc = uint8_t;
  static constexpr bool kFixZero = false;
  static Acc identity() { return 0; }
  static Acc f(Acc a, Acc v) { return static_cast<Acc>(a | (v != 0)); }
};
struct AllOp {
  using Acc = uint8_t;
  static constexpr bool kFixZero = false;
  static Acc identity() { return 1; }
  static Acc f(Acc a, Acc v) { return static_cast<Acc>(a & (v != 0)); }
};

// Serial reduction of a row (exact tfjs order).
template <class Op, class In>
typename Op::Acc row_serial(const In* __restrict p, int64_t n) {
  using Acc = typename Op::Acc;
  Acc r = Op::identity();
  for (int64_t i = 0; i < n; ++i) r = Op::f(r, static_cast<Acc>(p[i]));
  return r;
}

// Lane-parallel reduction of a row.
template <class Op, class In>
typename Op::Acc row_lanes(const In* __restrict p, int64_t n) {
  using Acc = typename Op::Acc;
  Acc lanes[kLanes];
  for (int j = 0; j < kLanes; ++j) lanes[j] = Op::identity();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lanes[j] = Op::f(lanes[j], static_cast<Acc>(p[i + j]));
  // A tree of the lanes (a fixed order): shorter dependency chains than a serial fold.
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) lanes[j] = Op::f(lanes[j], lanes[j + w]);
  Acc r = lanes[0];
  for (; i < n; ++i) r = Op::f(r, static_cast<Acc>(p[i]));
  return r;
}

// Float max/min of a row: the lanes keep a plain max (a vector max instruction) and a separate
// "saw a NaN" flag, instead of the NaN-propagating select, which GCC does not vectorize well.
template <class T, bool kMax>
T row_minmax(const T* __restrict p, int64_t n) {
  // max/min ignoring NaN are order-independent (but for the sign of zero, redone serially by the
  // caller), so OpenMP's own simd reduction order is fine here.
  T m = kMax ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
  int32_t any_nan = 0;
  if (kMax) {
#pragma omp simd reduction(max : m) reduction(| : any_nan)
    for (int64_t i = 0; i < n; ++i) {
      m = p[i] > m ? p[i] : m;
      any_nan |= p[i] != p[i];
    }
  } else {
#pragma omp simd reduction(min : m) reduction(| : any_nan)
    for (int64_t i = 0; i < n; ++i) {
      m = p[i] < m ? p[i] : m;
      any_nan |= p[i] != p[i];
    }
  }
  return any_nan ? std::numeric_limits<T>::quiet_NaN() : m;
}

template <class Op>
struct IsFloatMinMax : std::false_type {};
template <>
struct IsFloatMinMax<MaxOp<float>> : std::true_type {};
template <>
struct IsFloatMinMax<MinOp<float>> : std::true_type {};

// A row reduction: the min/max specialisation where it applies, else the generic lanes.
template <class Op, class In>
typename Op::Acc row_reduce(const In* __restrict p, int64_t n) {
  if constexpr (IsFloatMinMax<Op>::value && std::is_same<In, float>::value)
    return row_minmax<float, std::is_same<Op, MaxOp<float>>::value>(p, n);
  else
    return row_lanes<Op>(p, n);
}

// acc[0, w) = f(acc, rows r of p) for r in [0, nr), row stride `stride`.
template <class Op, class In>
void col_accumulate(const In* __restrict p, int64_t nr, int64_t stride, int64_t w, typename Op::Acc* __restrict acc) {
  using Acc = typename Op::Acc;
  for (int64_t r = 0; r < nr; ++r) {
    const In* __restrict row = p + r * stride;
#pragma omp simd
    for (int64_t i = 0; i < w; ++i) acc[i] = Op::f(acc[i], static_cast<Acc>(row[i]));
  }
}

// One stage: x [outer, R, inner] -> out [outer, inner], out[k] = fin(acc).
template <class Op, class In, class Out, class Fin>
void stage(const In* x, int64_t outer, int64_t R, int64_t inner, Out* out, Fin fin) {
  using Acc = typename Op::Acc;
  const int64_t work = outer * R * inner;
  if (inner == 1) {
    auto finish_row = [&](int64_t o, Acc r) {
      if constexpr (Op::kFixZero) {
        if (r == Acc(0)) r = row_serial<Op>(x + o * R, R);  // +0 / -0: the first one wins in tfjs
      }
      out[o] = fin(r);
    };
    const bool split = outer < 8 && R >= 2 * kChunk;
    if (!split) {
      for_each_block(outer, block_rows(R), work, [&](int64_t, int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) finish_row(o, row_reduce<Op>(x + o * R, R));
      });
      return;
    }
    const int64_t nc = std::min<int64_t>(kMaxChunks * 4, (R + kChunk - 1) / kChunk);
    const int64_t chunk = (R + nc - 1) / nc;
    std::vector<Acc> part(static_cast<size_t>(outer * nc));
    for_each_block(outer * nc, 1, work, [&](int64_t t, int64_t, int64_t) {
      const int64_t o = t / nc, c = t % nc;
      const int64_t b = c * chunk, e = std::min(R, b + chunk);
      part[t] = b < e ? row_reduce<Op>(x + o * R + b, e - b) : Op::identity();
    });
    for (int64_t o = 0; o < outer; ++o) {
      Acc r = Op::identity();
      for (int64_t c = 0; c < nc; ++c) r = Op::f(r, part[o * nc + c]);
      finish_row(o, r);
    }
    return;
  }

  const int64_t w = std::min(inner, kWidth);
  const int64_t ni = (inner + w - 1) / w;
  const int64_t tasks = outer * ni;
  const bool split = tasks < 8 && R * w >= 2 * kChunk;
  if (!split) {
    const int64_t per_task = R * w;
    const int64_t block = std::max<int64_t>(1, 16384 / per_task);
    for_each_block(tasks, block, work, [&](int64_t, int64_t b, int64_t e) {
      Acc acc[kWidth];
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / ni, i0 = (t % ni) * w, wi = std::min(w, inner - i0);
        for (int64_t i = 0; i < wi; ++i) acc[i] = Op::identity();
        col_accumulate<Op>(x + o * R * inner + i0, R, inner, wi, acc);
        Out* dst = out + o * inner + i0;
        for (int64_t i = 0; i < wi; ++i) dst[i] = fin(acc[i]);
      }
    });
    return;
  }
  const int64_t nrc = std::min<int64_t>(kMaxChunks, (R * w + kChunk - 1) / kChunk);
  const int64_t rchunk = (R + nrc - 1) / nrc;
  std::vector<Acc> part(static_cast<size_t>(tasks * nrc * w));
  for_each_block(tasks * nrc, 1, work, [&](int64_t tc, int64_t, int64_t) {
    const int64_t t = tc / nrc, c = tc % nrc;
    const int64_t o = t / ni, i0 = (t % ni) * w, wi = std::min(w, inner - i0);
    const int64_t rb = c * rchunk, re = std::min(R, rb + rchunk);
    Acc* acc = part.data() + tc * w;
    for (int64_t i = 0; i < wi; ++i) acc[i] = Op::identity();
    if (rb < re) col_accumulate<Op>(x + (o * R + rb) * inner + i0, re - rb, inner, wi, acc);
  });
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o = t / ni, i0 = (t % ni) * w, wi = std::min(w, inner - i0);
    Out* dst = out + o * inner + i0;
    for (int64_t i = 0; i < wi; ++i) {
      Acc r = Op::identity();
      for (int64_t c = 0; c < nrc; ++c) r = Op::f(r, part[(t * nrc + c) * w + i]);
      dst[i] = fin(r);
    }
  }
}

using Group = AxisGroup;

// Size-1 axes dropped, neighbours of the same kind merged (shape_plan.h, shared with the CUDA path).
std::vector<Group> canonical(const int64_t* shape, int rank, uint32_t mask) {
  Group g[kMaxShapeRank];
  const int n = canonical_axis_groups(shape, rank, mask, g);
  return std::vector<Group>(g, g + n);
}

int64_t product(const std::vector<Group>& g, size_t b, size_t e) {
  int64_t p = 1;
  for (size_t i = b; i < e; ++i) p *= g[i].size;
  return p;
}

// All stages of op over x; the last one writes out through fin.
template <class Op, class In, class Out, class Fin>
void reduce_all(const In* x, const int64_t* shape, int rank, uint32_t mask, Out* out, Fin fin) {
  using Acc = typename Op::Acc;
  std::vector<Group> g = canonical(shape, rank, mask);
  int reduced = 0;
  for (const Group& k : g) reduced += k.reduced;
  if (reduced == 0) {  // nothing (or only size-1 axes) to reduce: each output is one element
    stage<Op>(x, product(g, 0, g.size()), 1, 1, out, fin);
    return;
  }
  std::vector<Acc> cur, next;
  bool first = true;
  while (true) {
    size_t r = g.size();
    while (!g[--r].reduced) {
    }
    const int64_t outer = product(g, 0, r), R = g[r].size, inner = product(g, r + 1, g.size());
    const bool last = --reduced == 0;
    if (last) {
      if (first)
        stage<Op>(x, outer, R, inner, out, fin);
      else
        stage<Op>(cur.data(), outer, R, inner, out, fin);
      return;
    }
    next.resize(static_cast<size_t>(outer * inner));
    auto keep = [](Acc a) { return a; };
    if (first)
      stage<Op>(x, outer, R, inner, next.data(), keep);
    else
      stage<Op>(cur.data(), outer, R, inner, next.data(), keep);
    cur.swap(next);
    first = false;
    // Remove the reduced group; its kept neighbours become one group.
    g.erase(g.begin() + static_cast<std::ptrdiff_t>(r));
    if (r > 0 && r < g.size() && !g[r - 1].reduced && !g[r].reduced) {
      g[r - 1].size *= g[r].size;
      g.erase(g.begin() + static_cast<std::ptrdiff_t>(r));
    }
  }
}

// ---- ArgMax / ArgMin ----
template <class T, bool kMax>
inline bool better(T v, T m) {
  return kMax ? v > m : v < m;
}

template <class T, bool kMax>
int32_t arg_row(const T* __restrict p, int64_t n) {
  const T first = p[0];
  if (first != first) return 0;  // tfjs starts from element 0 and no comparison with NaN succeeds
  // The extreme, NaN never winning (order-independent: a simd reduction).
  T m = first;
  if (kMax) {
#pragma omp simd reduction(max : m)
    for (int64_t i = 0; i < n; ++i) m = p[i] > m ? p[i] : m;
  } else {
#pragma omp simd reduction(min : m)
    for (int64_t i = 0; i < n; ++i) m = p[i] < m ? p[i] : m;
  }
  // The first element equal to it (+0 == -0, as tfjs's > ignores the sign): blocks tested without
  // branches, then the first hit located inside its block.
  constexpr int64_t kBlock = 64;
  int64_t k = 0;
  for (; k + kBlock <= n; k += kBlock) {
    int32_t hit = 0;
#pragma omp simd reduction(| : hit)
    for (int64_t j = 0; j < kBlock; ++j) hit |= p[k + j] == m;
    if (hit) break;
  }
  for (; k < n; ++k)
    if (p[k] == m) return static_cast<int32_t>(k);
  return 0;
}

template <class T, bool kMax>
void arg_reduce(const T* x, int64_t outer, int64_t R, int64_t inner, int32_t* out) {
  const int64_t work = outer * R * inner;
  if (inner == 1) {
    for_each_block(outer, block_rows(R), work, [&](int64_t, int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) out[o] = arg_row<T, kMax>(x + o * R, R);
    });
    return;
  }
  const int64_t w = std::min(inner, kWidth);
  const int64_t ni = (inner + w - 1) / w;
  const int64_t tasks = outer * ni;
  const int64_t block = std::max<int64_t>(1, 16384 / (R * w));
  for_each_block(tasks, block, work, [&](int64_t, int64_t b, int64_t e) {
    T m[kWidth];
    int32_t idx[kWidth];
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / ni, i0 = (t % ni) * w, wi = std::min(w, inner - i0);
      const T* base = x + o * R * inner + i0;
      for (int64_t i = 0; i < wi; ++i) {
        m[i] = base[i];
        idx[i] = 0;
      }
      for (int64_t r = 1; r < R; ++r) {
        const T* __restrict row = base + r * inner;
        const int32_t rr = static_cast<int32_t>(r);
#pragma omp simd
        for (int64_t i = 0; i < wi; ++i) {
          const bool up = better<T, kMax>(row[i], m[i]);
          m[i] = up ? row[i] : m[i];
          idx[i] = up ? rr : idx[i];
        }
      }
      std::memcpy(out + o * inner + i0, idx, static_cast<size_t>(wi) * sizeof(int32_t));
    }
  });
}

// The one reduced axis a: x viewed as [prod shape[0, a), shape[a], prod shape(a, rank)].
template <class T>
void arg_dispatch(bool is_max, const T* x, const int64_t* shape, int rank, uint32_t mask, int32_t* out) {
  int64_t outer = 1, R = 1, inner = 1;
  int a = 0;
  while (a < rank && !((mask >> a) & 1u)) ++a;
  for (int i = 0; i < rank; ++i) {
    if (i < a) outer *= shape[i];
    if (i == a) R = shape[i];
    if (i > a) inner *= shape[i];
  }
  if (is_max)
    arg_reduce<T, true>(x, outer, R, inner, out);
  else
    arg_reduce<T, false>(x, outer, R, inner, out);
}

template <class Op, class In, class Out, class Fin>
void run(const void* x, const int64_t* shape, int rank, uint32_t mask, void* out, Fin fin) {
  reduce_all<Op>(static_cast<const In*>(x), shape, rank, mask, static_cast<Out*>(out), fin);
}

}  // namespace

int reduce_output_type(ReduceOp op, DType in) {
  const int f = static_cast<int>(kF32), i = static_cast<int>(kI32), b = static_cast<int>(kU8);
  switch (op) {
    case ReduceOp::kSum: return in == kF32 ? f : i;
    case ReduceOp::kMean: return f;
    case ReduceOp::kProd: return in == kF32 ? f : -1;
    case ReduceOp::kMax:
    case ReduceOp::kMin: return static_cast<int>(in);
    case ReduceOp::kAny:
    case ReduceOp::kAll: return in == kU8 ? b : -1;
    case ReduceOp::kArgMax:
    case ReduceOp::kArgMin: return in == kU8 ? -1 : i;
  }
  return -1;
}

void reduce_cpu(ReduceOp op, DType in, const void* x, const int64_t* shape, int rank, uint32_t mask, void* out) {
  int64_t count = 1;  // elements reduced into each output (Mean's divisor)
  for (int i = 0; i < rank; ++i)
    if ((mask >> i) & 1u) count *= shape[i];
  const auto to_f32 = [](double a) { return static_cast<float>(a); };
  const auto wrap_i32 = [](int64_t a) { return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(a))); };
  const auto mean_f = [count](double a) { return static_cast<float>(a / static_cast<double>(count)); };
  const auto mean_i = [count](int64_t a) {
    return static_cast<float>(static_cast<double>(a) / static_cast<double>(count));
  };
  const auto same_f = [](float a) { return a; };
  const auto same_i = [](int32_t a) { return a; };
  const auto same_b = [](uint8_t a) { return a; };
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kMean: {
      const bool mean = op == ReduceOp::kMean;
      if (in == kF32) {
        if (mean)
          run<SumOp<double>, float, float>(x, shape, rank, mask, out, mean_f);
        else
          run<SumOp<double>, float, float>(x, shape, rank, mask, out, to_f32);
      } else if (in == kI32) {
        if (mean)
          run<SumOp<int64_t>, int32_t, float>(x, shape, rank, mask, out, mean_i);
        else
          run<SumOp<int64_t>, int32_t, int32_t>(x, shape, rank, mask, out, wrap_i32);
      } else {
        if (mean)
          run<SumOp<int64_t>, uint8_t, float>(x, shape, rank, mask, out, mean_i);
        else
          run<SumOp<int64_t>, uint8_t, int32_t>(x, shape, rank, mask, out, wrap_i32);
      }
      return;
    }
    case ReduceOp::kProd: run<ProdOp<double>, float, float>(x, shape, rank, mask, out, to_f32); return;
    case ReduceOp::kMax:
    case ReduceOp::kMin: {
      const bool mx = op == ReduceOp::kMax;
      if (in == kF32) {
        if (mx)
          run<MaxOp<float>, float, float>(x, shape, rank, mask, out, same_f);
        else
          run<MinOp<float>, float, float>(x, shape, rank, mask, out, same_f);
      } else if (in == kI32) {
        if (mx)
          run<MaxOp<int32_t>, int32_t, int32_t>(x, shape, rank, mask, out, same_i);
        else
          run<MinOp<int32_t>, int32_t, int32_t>(x, shape, rank, mask, out, same_i);
      } else {
        if (mx)
          run<MaxOp<uint8_t>, uint8_t, uint8_t>(x, shape, rank, mask, out, same_b);
        else
          run<MinOp<uint8_t>, uint8_t, uint8_t>(x, shape, rank, mask, out, same_b);
      }
      return;
    }
    case ReduceOp::kAny: run<AnyOp, uint8_t, uint8_t>(x, shape, rank, mask, out, same_b); return;
    case ReduceOp::kAll: run<AllOp, uint8_t, uint8_t>(x, shape, rank, mask, out, same_b); return;
    case ReduceOp::kArgMax:
    case ReduceOp::kArgMin: {
      const bool mx = op == ReduceOp::kArgMax;
      if (in == kF32)
        arg_dispatch(mx, static_cast<const float*>(x), shape, rank, mask, static_cast<int32_t*>(out));
      else
        arg_dispatch(mx, static_cast<const int32_t*>(x), shape, rank, mask, static_cast<int32_t*>(out));
      return;
    }
  }
}

}  // namespace fd
