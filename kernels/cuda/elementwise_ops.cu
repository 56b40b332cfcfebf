// fd::binary_cuda, unary_cuda, cast_cuda, fill_cuda: the elementwise ops of the 'cuda' backend.
// The per-element functions are kernels/elementwise_scalar.h's (the CPU loops call the same
// code), so results are the CPU's bits: exactly for arithmetic, comparisons, rounding and casts; for
// the transcendental ops up to where GCC and nvcc contract a * b + c into an FMA differently, and for
// pow / sin / cos up to the device's double libm (1-2 double ulp) rounding to a different float.
//
// Binary ops take the CPU's broadcast plan (size-1 dims dropped, contiguous dims merged) and run one
// grid-stride kernel over the output: a rank-1 plan (same shape, a scalar on either side) needs no
// index math; otherwise each group of elements splits its index into (row, column) and the row into
// the plan's outer dims, with 32-bit division when everything is below 2^31. Groups are 4 elements
// (float4 / int4 loads, a 4-wide store) when the innermost dim is a multiple of 4 and the pointers
// are aligned; a broadcast input along the innermost dim is then one scalar load per group.
// Every kernel reads its element(s) before writing them: out may be a or b (the CPU's rule).
#include "../elementwise.h"
#include "../elementwise_scalar.h"
#include "tensor_common.cuh"

namespace fd {
namespace {

using cuda::kBlockThreads;

// Loads elements [i, i + V) of an input whose innermost stride is `s` (1, or 0 when it broadcasts).
template <class T, int V>
__device__ __forceinline__ void load_group(const T* p, int64_t off, int64_t s, T (&v)[V]) {
  if (s == 0) {
    const T x = p[off];
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = x;
  } else if constexpr (V == 4) {
    cuda::load4(p + off, v);
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = p[off + j];
  }
}

// kFlat: a rank-1 plan. I: the index type of the division (uint32_t or int64_t).
template <class Op, class T, class U, int V, bool kFlat, class I>
__global__ void __launch_bounds__(kBlockThreads)
    binary_kernel(const T* a, const T* b, U* out, const ew::BroadcastPlan p) {
  const int last = p.rank - 1;
  const I n_inner = static_cast<I>(p.dim[last]);
  const int64_t isa = p.sa[last], isb = p.sb[last];
  const int64_t groups = p.total / V;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += step) {
    const int64_t i = g * V;
    int64_t ao, bo;
    if (kFlat) {
      ao = i * isa;
      bo = i * isb;
    } else {
      I row = static_cast<I>(i) / n_inner;
      const I col = static_cast<I>(i) - row * n_inner;
      ao = int64_t(col) * isa;
      bo = int64_t(col) * isb;
      for (int d = last - 1; d >= 0; --d) {
        const I dd = static_cast<I>(p.dim[d]);
        const I q = row / dd;
        const I k = row - q * dd;
        row = q;
        ao += int64_t(k) * p.sa[d];
        bo += int64_t(k) * p.sb[d];
      }
    }
    T va[V], vb[V];
    load_group<T, V>(a, ao, isa, va);
    load_group<T, V>(b, bo, isb, vb);
    U r[V];
#pragma unroll
    for (int j = 0; j < V; ++j) r[j] = Op::f(va[j], vb[j]);
    if constexpr (V == 4) {
      cuda::store4(out + i, r);
    } else {
      out[i] = r[0];
    }
  }
}

template <class Op, class T, class U>
Status run_binary(const ew::BroadcastPlan& p, const T* a, const T* b, U* out) {
  const int last = p.rank - 1;
  const int64_t n_inner = p.dim[last];
  // Vector groups: the innermost dim splits into whole groups, and every vector access is aligned
  // (the outer strides of a non-broadcast input are multiples of n_inner, so of 4).
  const bool vec = n_inner % 4 == 0 && (p.sa[last] == 0 || cuda::aligned(a, 16)) &&
                   (p.sb[last] == 0 || cuda::aligned(b, 16)) && cuda::aligned(out, 4 * sizeof(U));
  const bool flat = p.rank == 1;
  const bool small = p.total < (int64_t(1) << 31);
  const int64_t groups = vec ? p.total / 4 : p.total;
  const int grid = cuda::blocks_for(groups);
  cudaStream_t s = device::stream();
  if (vec) {
    if (flat)
      binary_kernel<Op, T, U, 4, true, int64_t><<<grid, kBlockThreads, 0, s>>>(a, b, out, p);
    else if (small)
      binary_kernel<Op, T, U, 4, false, uint32_t><<<grid, kBlockThreads, 0, s>>>(a, b, out, p);
    else
      binary_kernel<Op, T, U, 4, false, int64_t><<<grid, kBlockThreads, 0, s>>>(a, b, out, p);
  } else {
    if (flat)
      binary_kernel<Op, T, U, 1, true, int64_t><<<grid, kBlockThreads, 0, s>>>(a, b, out, p);
    else if (small)
      binary_kernel<Op, T, U, 1, false, uint32_t><<<grid, kBlockThreads, 0, s>>>(a, b, out, p);
    else
      binary_kernel<Op, T, U, 1, false, int64_t><<<grid, kBlockThreads, 0, s>>>(a, b, out, p);
  }
  return cuda::check_launch("binary_kernel");
}

// out[i] = f(x[i]) for unary ops and casts; V = 4: vector loads and stores (both pointers aligned),
// the last n % 4 elements one by one.
template <class F, class T, class U, int V>
__global__ void __launch_bounds__(kBlockThreads) map_kernel(const T* x, U* out, int64_t n, F f) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if constexpr (V == 4) {
    const int64_t nv = n / 4;
    for (int64_t v = tid; v < nv; v += step) {
      T in[4];
      cuda::load4(x + 4 * v, in);
      U r[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) r[j] = f(in[j]);
      cuda::store4(out + 4 * v, r);
    }
    done = nv * 4;
  }
  for (int64_t i = done + tid; i < n; i += step) out[i] = f(x[i]);
}

template <class F, class T, class U>
Status run_map(const T* x, U* out, int64_t n, F f) {
  const bool vec = cuda::aligned(x, 4 * sizeof(T)) && cuda::aligned(out, 4 * sizeof(U));
  const int grid = cuda::blocks_for(vec ? (n + 3) / 4 : n);
  if (vec)
    map_kernel<F, T, U, 4><<<grid, kBlockThreads, 0, device::stream()>>>(x, out, n, f);
  else
    map_kernel<F, T, U, 1><<<grid, kBlockThreads, 0, device::stream()>>>(x, out, n, f);
  return cuda::check_launch("map_kernel");
}

template <class T>
__global__ void __launch_bounds__(kBlockThreads) fill_kernel(T* out, int64_t n, T v) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) out[i] = v;
}

// Fills n 4-byte elements with `bits`: one memset when its four bytes are equal (0 above all),
// else a kernel writing 16 bytes per store where aligned.
Status fill4(void* out, int64_t n, uint32_t bits) {
  const uint32_t b0 = bits & 0xffu;
  if (bits == b0 * 0x01010101u) {
    FD_CUDA_TRY(cudaMemsetAsync(out, static_cast<int>(b0), static_cast<size_t>(n) * 4, device::stream()));
    return kOk;
  }
  uint32_t* o = static_cast<uint32_t*>(out);
  if (cuda::aligned(o, 16) && n >= 4) {
    const int64_t nv = n / 4;
    fill_kernel<uint4><<<cuda::blocks_for(nv), kBlockThreads, 0, device::stream()>>>(
        reinterpret_cast<uint4*>(o), nv, make_uint4(bits, bits, bits, bits));
    FD_TRY(cuda::check_launch("fill_kernel"));
    o += nv * 4;
    n -= nv * 4;
    if (n == 0) return kOk;
  }
  fill_kernel<uint32_t><<<cuda::blocks_for(n), kBlockThreads, 0, device::stream()>>>(o, n, bits);
  return cuda::check_launch("fill_kernel");
}

}  // namespace

Status binary_cuda(int op, int in, const void* a, const int64_t* a_shape, int a_rank, const void* b,
                   const int64_t* b_shape, int b_rank, void* out) {
  FD_TRY(device::init());
  if (a_rank > kMaxRank || b_rank > kMaxRank) return device::fail_with(kBadShape, "binary_cuda: rank above kMaxRank");
  const ew::BroadcastPlan p = ew::make_broadcast_plan(a_shape, a_rank, b_shape, b_rank);
  if (p.total == 0) return kOk;
  Status st = kOk;
  const bool known = ew::dispatch_binary(op, in, [&](auto f, auto t, auto u) {
    using Op = decltype(f);
    using T = decltype(t);
    using U = decltype(u);
    st = run_binary<Op>(p, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<U*>(out));
  });
  return known ? st : device::fail_with(kBadShape, "binary_cuda: op not supported for this input type");
}

Status unary_cuda(int op, const float* x, void* out, int64_t n, double p0, double p1) {
  FD_TRY(device::init());
  if (n <= 0) return kOk;
  Status st = kOk;
  const bool known = ew::dispatch_unary(op, p0, p1, [&](auto f, int64_t) {
    using U = decltype(f(0.0f));
    st = run_map(x, static_cast<U*>(out), n, f);
  });
  return known ? st : device::fail_with(kBadShape, "unary_cuda: unknown op");
}

Status cast_cuda(int in, const void* x, int out_type, void* out, int64_t n) {
  FD_TRY(device::init());
  if (n <= 0) return kOk;
  if (in == out_type) {
    if (out != x)
      FD_CUDA_TRY(cudaMemcpyAsync(out, x, static_cast<size_t>(n) * (in == kU8 ? 1 : 4), cudaMemcpyDeviceToDevice,
                                  device::stream()));
    return kOk;
  }
  Status st = kOk;
  const bool known = ew::dispatch_cast(in, out_type, [&](auto f, auto t, auto u) {
    using T = decltype(t);
    using U = decltype(u);
    st = run_map(static_cast<const T*>(x), static_cast<U*>(out), n, f);
  });
  return known ? st : device::fail_with(kBadShape, "cast_cuda: unknown element type");
}

Status fill_cuda(int type, void* out, int64_t n, double value) {
  FD_TRY(device::init());
  if (n <= 0) return kOk;
  switch (type) {
    case kF32: return fill4(out, n, static_cast<uint32_t>(float_bits(ew::fill_f32(value))));
    case kI32: return fill4(out, n, static_cast<uint32_t>(ew::fill_i32(value)));
    case kU8:
      FD_CUDA_TRY(cudaMemsetAsync(out, ew::fill_u8(value), static_cast<size_t>(n), device::stream()));
      return kOk;
    default: return device::fail_with(kBadShape, "fill_cuda: unknown element type");
  }
}

}  // namespace fd
