// fd::reduce_cuda: Sum, Mean, Prod, Max, Min, Any, All, ArgMax, ArgMin over any set of axes, with the
// CPU's element types and rules (kernels/reduce.h), deterministically (no float atomics: every
// output is combined in a fixed tree order, run to run identical).
//
// The shape is canonicalised as on the CPU (shape_plan.h: size-1 axes dropped, neighbours of the same
// kind merged), then viewed logically as [kept, reduced] by index math (no transpose): output o and
// reduced index r address x[koff(o) + roff(r)], each offset split over at most 8 groups.
//   rows     (the innermost group is reduced: consecutive r are contiguous): a warp per output for
//            short reductions (R <= 1024), a block per output for long ones; with few outputs and a
//            very long R, R is cut into chunks (a block each) whose partials a second pass combines
//            in chunk order.
//   columns  (the innermost group is kept: consecutive o are contiguous, so reads are coalesced):
//            a thread per output walking its r range; with few outputs, R is cut into chunks whose
//            partials [chunk, K] a second pass combines per column in chunk order.
// Chunk counts depend only on the shape.
//
// Accumulators: float Sum / Mean / Prod in double (as the CPU; float results equal the CPU's but for
// rounding of the differently ordered double sum: relative differences ~1e-16 before the float
// rounding), int32 / bool sums in int64 (exact, wrapped to int32 as the CPU). Float Max / Min carry a
// NaN flag, the max ignoring NaN and the first zero (lowest r) with its sign: a NaN anywhere gives NaN,
// and a zero result takes the sign of the first zero, as the CPU's "first of equal values" rule.
// ArgMax / ArgMin carry (value, r) with ties to the lowest r, NaN never winning, but a NaN at r = 0
// gives 0 (tfjs's loop starts from element 0).
#include <climits>
#include <utility>

#include "../reduce.h"
#include "../shape_plan.h"
#include "tensor_common.cuh"

namespace fd {
namespace {

using cuda::kBlockThreads;
using cuda::kFullMask;

// ---- accumulators and their warp shuffles ----

struct FMinMax {
  float m;       // the extreme, NaN ignored
  float z;       // the first zero's value (its sign)
  long long zi;  // its reduced index, LLONG_MAX for none
  int nan;
};
template <class T>
struct ArgAcc {
  T m;
  long long i;  // -1: empty
};

__device__ __forceinline__ double shfl_down(double v, int d) { return __shfl_down_sync(kFullMask, v, d); }
__device__ __forceinline__ long long shfl_down(long long v, int d) { return __shfl_down_sync(kFullMask, v, d); }
__device__ __forceinline__ int shfl_down(int v, int d) { return __shfl_down_sync(kFullMask, v, d); }
__device__ __forceinline__ float shfl_down(float v, int d) { return __shfl_down_sync(kFullMask, v, d); }
__device__ __forceinline__ FMinMax shfl_down(FMinMax v, int d) {
  return {shfl_down(v.m, d), shfl_down(v.z, d), shfl_down(v.zi, d), shfl_down(v.nan, d)};
}
template <class T>
__device__ __forceinline__ ArgAcc<T> shfl_down(ArgAcc<T> v, int d) {
  return {shfl_down(v.m, d), shfl_down(v.i, d)};
}

// ---- the ops: identity, load(element, r), comb(earlier, later), fin(acc) -> output ----

struct SumF {
  using In = float;
  using Acc = double;
  using Out = float;
  double count;  // Mean's divisor, 0 for Sum
  __device__ static Acc id() { return 0.0; }
  __device__ static Acc load(In v, long long) { return static_cast<double>(v); }
  __device__ static Acc comb(Acc a, Acc b) { return a + b; }
  __device__ Out fin(Acc a) const { return static_cast<float>(count > 0 ? a / count : a); }
};
template <class T>  // int32 or bool -> int32 (Sum) / float32 (Mean)
struct SumI {
  using In = T;
  using Acc = long long;
  using Out = int32_t;
  __device__ static Acc id() { return 0; }
  __device__ static Acc load(In v, long long) { return static_cast<long long>(v); }
  __device__ static Acc comb(Acc a, Acc b) { return a + b; }
  __device__ Out fin(Acc a) const {
    return static_cast<int32_t>(static_cast<uint32_t>(static_cast<unsigned long long>(a)));
  }
};
template <class T>
struct MeanI {
  using In = T;
  using Acc = long long;
  using Out = float;
  double count;
  __device__ static Acc id() { return 0; }
  __device__ static Acc load(In v, long long) { return static_cast<long long>(v); }
  __device__ static Acc comb(Acc a, Acc b) { return a + b; }
  __device__ Out fin(Acc a) const { return static_cast<float>(static_cast<double>(a) / count); }
};
struct ProdF {
  using In = float;
  using Acc = double;
  using Out = float;
  __device__ static Acc id() { return 1.0; }
  __device__ static Acc load(In v, long long) { return static_cast<double>(v); }
  __device__ static Acc comb(Acc a, Acc b) { return a * b; }
  __device__ Out fin(Acc a) const { return static_cast<float>(a); }
};
template <bool kMax>
struct MinMaxF {
  using In = float;
  using Acc = FMinMax;
  using Out = float;
  __device__ static Acc id() { return {kMax ? -__builtin_huge_valf() : __builtin_huge_valf(), 0.0f, LLONG_MAX, 0}; }
  __device__ static Acc load(In v, long long r) {
    const bool nan = v != v;
    return {nan ? id().m : v, v, v == 0.0f ? r : LLONG_MAX, nan};
  }
  __device__ static Acc comb(Acc a, Acc b) {
    Acc c;
    c.m = kMax ? (b.m > a.m ? b.m : a.m) : (b.m < a.m ? b.m : a.m);
    const bool bz = b.zi < a.zi;
    c.z = bz ? b.z : a.z;
    c.zi = bz ? b.zi : a.zi;
    c.nan = a.nan | b.nan;
    return c;
  }
  __device__ Out fin(Acc a) const { return a.nan ? __builtin_nanf("") : (a.m == 0.0f ? a.z : a.m); }
};
template <class T, bool kMax>  // int32 / bool: ties are indistinguishable
struct MinMaxI {
  using In = T;
  using Acc = int;
  using Out = T;
  __device__ static Acc id() { return kMax ? (sizeof(T) == 1 ? 0 : INT_MIN) : (sizeof(T) == 1 ? 255 : INT_MAX); }
  __device__ static Acc load(In v, long long) { return static_cast<int>(v); }
  __device__ static Acc comb(Acc a, Acc b) { return kMax ? (b > a ? b : a) : (b < a ? b : a); }
  __device__ Out fin(Acc a) const { return static_cast<T>(a); }
};
template <bool kAny>
struct AnyAll {
  using In = uint8_t;
  using Acc = int;
  using Out = uint8_t;
  __device__ static Acc id() { return kAny ? 0 : 1; }
  __device__ static Acc load(In v, long long) { return v != 0; }
  __device__ static Acc comb(Acc a, Acc b) { return kAny ? (a | b) : (a & b); }
  __device__ Out fin(Acc a) const { return static_cast<uint8_t>(a); }
};
template <class T, bool kMax>
struct ArgOp {
  using In = T;
  using Acc = ArgAcc<T>;
  using Out = int32_t;
  __device__ static Acc id() { return {T(0), -1}; }
  __device__ static Acc load(In v, long long r) {
    if (v != v) return r == 0 ? Acc{v, 0} : id();  // a NaN only counts at r = 0, where it wins
    return {v, r};
  }
  __device__ static bool first_nan(const Acc& a) { return a.i == 0 && a.m != a.m; }
  __device__ static Acc comb(Acc a, Acc b) {
    if (first_nan(a) || b.i < 0) return a;
    if (first_nan(b) || a.i < 0) return b;
    const bool better = kMax ? b.m > a.m : b.m < a.m;
    return (better || (b.m == a.m && b.i < a.i)) ? b : a;
  }
  __device__ Out fin(Acc a) const { return static_cast<int32_t>(a.i < 0 ? 0 : a.i); }
};

// ---- index math ----

constexpr int kMaxGroups = (kMaxShapeRank + 1) / 2;

// Offsets of a linear index over up to kMaxGroups groups (outer to inner) with their strides.
struct Index {
  int n;
  long long dim[kMaxGroups];
  long long stride[kMaxGroups];
  __device__ __forceinline__ long long offset(long long lin) const {
    if (n == 1) return lin * stride[0];
    long long off = 0;
    for (int k = n - 1; k >= 0; --k) {
      const long long q = lin / dim[k];
      off += (lin - q * dim[k]) * stride[k];
      lin = q;
    }
    return off;
  }
};

struct Geometry {
  Index kept, red;
  long long K, R;  // outputs, elements reduced into each
};

template <class Op>
__device__ __forceinline__ typename Op::Acc warp_reduce(typename Op::Acc v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = Op::comb(v, shfl_down(v, o));
  return v;
}

// The block's combination, valid in thread 0. Every thread must call it.
template <class Op>
__device__ __forceinline__ typename Op::Acc block_reduce(typename Op::Acc v) {
  using Acc = typename Op::Acc;
  __shared__ Acc part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_reduce<Op>(v);
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? part[lane] : Op::id();
    v = warp_reduce<Op>(v);
  }
  __syncthreads();  // part is reused by the next output of a grid-stride loop
  return v;
}

// Rows, a warp per output.
template <class Op>
__global__ void __launch_bounds__(kBlockThreads)
    rows_warp_kernel(const typename Op::In* x, Geometry g, Op op, typename Op::Out* out) {
  using Acc = typename Op::Acc;
  const int lane = threadIdx.x & 31;
  const long long warps = (long long)gridDim.x * (blockDim.x >> 5);
  for (long long o = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); o < g.K; o += warps) {
    const typename Op::In* base = x + g.kept.offset(o);
    Acc acc = Op::id();
    for (long long r = lane; r < g.R; r += 32) acc = Op::comb(acc, Op::load(base[g.red.offset(r)], r));
    acc = warp_reduce<Op>(acc);
    if (lane == 0) out[o] = op.fin(acc);
  }
}

// Rows, a block per (output, chunk of R): chunks == 1 writes fin(acc) to out, else the partial
// [o * chunks + c] to part.
template <class Op>
__global__ void __launch_bounds__(kBlockThreads)
    rows_block_kernel(const typename Op::In* x, Geometry g, long long chunks, long long chunk, Op op,
                      typename Op::Out* out, typename Op::Acc* part) {
  using Acc = typename Op::Acc;
  const long long items = g.K * chunks;
  for (long long t = blockIdx.x; t < items; t += gridDim.x) {
    const long long o = t / chunks, c = t - o * chunks;
    const long long r0 = c * chunk, r1 = min(g.R, r0 + chunk);
    const typename Op::In* base = x + g.kept.offset(o);
    Acc acc = Op::id();
    for (long long r = r0 + threadIdx.x; r < r1; r += blockDim.x)
      acc = Op::comb(acc, Op::load(base[g.red.offset(r)], r));
    acc = block_reduce<Op>(acc);
    if (threadIdx.x == 0) {
      if (chunks == 1)
        out[o] = op.fin(acc);
      else
        part[t] = acc;
    }
  }
}

// Second pass of split rows: out[o] = fin(partials [o, 0..chunks) combined in order), a block each.
template <class Op>
__global__ void __launch_bounds__(kBlockThreads)
    rows_combine_kernel(const typename Op::Acc* part, long long K, long long chunks, Op op, typename Op::Out* out) {
  using Acc = typename Op::Acc;
  for (long long o = blockIdx.x; o < K; o += gridDim.x) {
    Acc acc = Op::id();
    for (long long c = threadIdx.x; c < chunks; c += blockDim.x) acc = Op::comb(acc, part[o * chunks + c]);
    acc = block_reduce<Op>(acc);
    if (threadIdx.x == 0) out[o] = op.fin(acc);
  }
}

// Columns: a thread per (chunk c, output o), o fastest; walks r in its chunk in order, the reduced
// offset kept by an odometer. chunks == 1 writes fin(acc) to out, else the partial [c * K + o].
template <class Op>
__global__ void __launch_bounds__(kBlockThreads)
    cols_kernel(const typename Op::In* x, Geometry g, long long chunks, long long chunk, Op op, typename Op::Out* out,
                typename Op::Acc* part) {
  using Acc = typename Op::Acc;
  const long long items = g.K * chunks;
  const long long step = (long long)gridDim.x * blockDim.x;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < items; t += step) {
    const long long c = t / g.K, o = t - c * g.K;
    const long long r0 = c * chunk, r1 = min(g.R, r0 + chunk);
    const typename Op::In* base = x + g.kept.offset(o);
    Acc acc = Op::id();
    if (g.red.n <= 1) {
      const long long s = g.red.n == 1 ? g.red.stride[0] : 0;
      for (long long r = r0; r < r1; ++r) acc = Op::comb(acc, Op::load(base[r * s], r));
    } else {
      long long idx[kMaxGroups];
      long long off = 0, lin = r0;
      for (int k = g.red.n - 1; k >= 0; --k) {
        idx[k] = lin % g.red.dim[k];
        lin /= g.red.dim[k];
        off += idx[k] * g.red.stride[k];
      }
      for (long long r = r0; r < r1; ++r) {
        acc = Op::comb(acc, Op::load(base[off], r));
        for (int k = g.red.n - 1; k >= 0; --k) {  // the odometer
          off += g.red.stride[k];
          if (++idx[k] < g.red.dim[k]) break;
          off -= idx[k] * g.red.stride[k];
          idx[k] = 0;
        }
      }
    }
    if (chunks == 1)
      out[o] = op.fin(acc);
    else
      part[t] = acc;
  }
}

// Second pass of split columns: a thread per output, its chunks' partials in order.
template <class Op>
__global__ void __launch_bounds__(kBlockThreads)
    cols_combine_kernel(const typename Op::Acc* part, long long K, long long chunks, Op op, typename Op::Out* out) {
  using Acc = typename Op::Acc;
  const long long step = (long long)gridDim.x * blockDim.x;
  for (long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x; o < K; o += step) {
    Acc acc = Op::id();
    for (long long c = 0; c < chunks; ++c) acc = Op::comb(acc, part[c * K + o]);
    out[o] = op.fin(acc);
  }
}

constexpr long long kWarpRowMax = 1024;    // rows up to this long: a warp each
constexpr long long kRowChunk = 16384;     // elements per block when a long row is split
constexpr long long kColTarget = 1 << 16;  // columns: aim for this many threads
constexpr long long kColMinChunk = 64;     // ... each walking at least this many rows

template <class Op>
Status run_reduce(const typename Op::In* x, const Geometry& g, bool rows, Op op, typename Op::Out* out) {
  using Acc = typename Op::Acc;
  cudaStream_t s = device::stream();
  if (rows) {
    if (g.R <= kWarpRowMax) {
      const long long per_block = kBlockThreads / 32;
      rows_warp_kernel<Op><<<cuda::blocks_for(g.K, per_block), kBlockThreads, 0, s>>>(x, g, op, out);
      return cuda::check_launch("rows_warp_kernel");
    }
    // Split long rows when there are too few outputs to fill the GPU.
    long long chunks = 1;
    if (g.K < 512 && g.R >= 4 * kRowChunk) chunks = (g.R + kRowChunk - 1) / kRowChunk;
    const long long chunk = (g.R + chunks - 1) / chunks;
    cuda::TempBuffer tmp;
    if (chunks > 1) FD_TRY(tmp.alloc(static_cast<size_t>(g.K * chunks) * sizeof(Acc)));
    rows_block_kernel<Op>
        <<<cuda::blocks_for(g.K * chunks, 1), kBlockThreads, 0, s>>>(x, g, chunks, chunk, op, out, tmp.as<Acc>());
    FD_TRY(cuda::check_launch("rows_block_kernel"));
    if (chunks == 1) return kOk;
    rows_combine_kernel<Op><<<cuda::blocks_for(g.K, 1), kBlockThreads, 0, s>>>(tmp.as<Acc>(), g.K, chunks, op, out);
    return cuda::check_launch("rows_combine_kernel");
  }
  long long chunks = 1;
  if (g.K < kColTarget && g.R >= 2 * kColMinChunk) {
    chunks = (kColTarget + g.K - 1) / g.K;
    const long long most = g.R / kColMinChunk;
    if (chunks > most) chunks = most;
    if (chunks < 1) chunks = 1;
  }
  const long long chunk = (g.R + chunks - 1) / chunks;
  cuda::TempBuffer tmp;
  if (chunks > 1) FD_TRY(tmp.alloc(static_cast<size_t>(g.K * chunks) * sizeof(Acc)));
  cols_kernel<Op><<<cuda::blocks_for(g.K * chunks), kBlockThreads, 0, s>>>(x, g, chunks, chunk, op, out, tmp.as<Acc>());
  FD_TRY(cuda::check_launch("cols_kernel"));
  if (chunks == 1) return kOk;
  cols_combine_kernel<Op><<<cuda::blocks_for(g.K), kBlockThreads, 0, s>>>(tmp.as<Acc>(), g.K, chunks, op, out);
  return cuda::check_launch("cols_combine_kernel");
}

template <class Op>
Status run(const void* x, const Geometry& g, bool rows, Op op, void* out) {
  return run_reduce<Op>(static_cast<const typename Op::In*>(x), g, rows, op, static_cast<typename Op::Out*>(out));
}

}  // namespace

Status reduce_cuda(ReduceOp op, DType in, const void* x, const int64_t* shape, int rank, uint32_t axes_mask,
                   void* out) {
  FD_TRY(device::init());
  if (rank < 0 || rank > kMaxShapeRank) return device::fail_with(kBadShape, "reduce_cuda: rank out of range");
  // The pairs reduce_output_type rejects (checked here without it: this file links without the CPU
  // kernels, e.g. in bench/gpu/cuda_selfcheck).
  const bool f32 = in == kF32, boolean = in == kU8;
  if ((op == ReduceOp::kProd && !f32) || ((op == ReduceOp::kAny || op == ReduceOp::kAll) && !boolean) ||
      ((op == ReduceOp::kArgMax || op == ReduceOp::kArgMin) && boolean))
    return device::fail_with(kBadShape, "reduce_cuda: op not supported for this element type");
  int64_t total = 1;
  for (int i = 0; i < rank; ++i) total *= shape[i];
  if (total == 0) return kOk;  // the contract excludes it; nothing to read

  // [kept, reduced] geometry from the canonical groups; strides of x per group.
  AxisGroup groups[kMaxShapeRank];
  const int ng = canonical_axis_groups(shape, rank, axes_mask, groups);
  Geometry g{};
  g.K = g.R = 1;
  long long stride = 1;
  for (int k = ng - 1; k >= 0; --k) {
    Index& ix = groups[k].reduced ? g.red : g.kept;
    ix.dim[ix.n] = groups[k].size;  // filled inner to outer, reversed below
    ix.stride[ix.n++] = stride;
    (groups[k].reduced ? g.R : g.K) *= groups[k].size;
    stride *= groups[k].size;
  }
  for (Index* ix : {&g.kept, &g.red}) {
    for (int a = 0, b = ix->n - 1; a < b; ++a, --b) {
      std::swap(ix->dim[a], ix->dim[b]);
      std::swap(ix->stride[a], ix->stride[b]);
    }
  }
  const bool rows = ng > 0 && groups[ng - 1].reduced;
  double count = 1;  // Mean's divisor: the product of the reduced axes (size-1 ones included)
  for (int i = 0; i < rank; ++i)
    if ((axes_mask >> i) & 1u) count *= static_cast<double>(shape[i]);

  switch (op) {
    case ReduceOp::kSum:
      if (in == kF32) return run(x, g, rows, SumF{0.0}, out);
      if (in == kI32) return run(x, g, rows, SumI<int32_t>{}, out);
      return run(x, g, rows, SumI<uint8_t>{}, out);
    case ReduceOp::kMean:
      if (in == kF32) return run(x, g, rows, SumF{count}, out);
      if (in == kI32) return run(x, g, rows, MeanI<int32_t>{count}, out);
      return run(x, g, rows, MeanI<uint8_t>{count}, out);
    case ReduceOp::kProd: return run(x, g, rows, ProdF{}, out);
    case ReduceOp::kMax:
      if (in == kF32) return run(x, g, rows, MinMaxF<true>{}, out);
      if (in == kI32) return run(x, g, rows, MinMaxI<int32_t, true>{}, out);
      return run(x, g, rows, MinMaxI<uint8_t, true>{}, out);
    case ReduceOp::kMin:
      if (in == kF32) return run(x, g, rows, MinMaxF<false>{}, out);
      if (in == kI32) return run(x, g, rows, MinMaxI<int32_t, false>{}, out);
      return run(x, g, rows, MinMaxI<uint8_t, false>{}, out);
    case ReduceOp::kAny: return run(x, g, rows, AnyAll<true>{}, out);
    case ReduceOp::kAll: return run(x, g, rows, AnyAll<false>{}, out);
    case ReduceOp::kArgMax:
      if (in == kF32) return run(x, g, rows, ArgOp<float, true>{}, out);
      return run(x, g, rows, ArgOp<int32_t, true>{}, out);
    case ReduceOp::kArgMin:
      if (in == kF32) return run(x, g, rows, ArgOp<float, false>{}, out);
      return run(x, g, rows, ArgOp<int32_t, false>{}, out);
  }
  return device::fail_with(kBadShape, "reduce_cuda: unknown op");
}

}  // namespace fd
