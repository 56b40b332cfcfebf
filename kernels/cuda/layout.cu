// fd::transpose_cuda, slice_cuda, concat_cuda, tile_cuda, gather_cuda, unsorted_segment_sum_cuda:
// the layout ops of the 'cuda' backend, bit-exact copies (element-size generic: 4 or 1 bytes) plus
// the segment sum behind the gather gradient. Shapes are canonicalised by the CPU's plans
// (kernels/shape_plan.h).
//
//   strided copy  (slice, tile, and a transpose whose innermost run stays contiguous): out[i] =
//                 x[base + sum idx_d(i) stride_d] over at most 32 merged dims (a tile axis is two
//                 dims, its repeat with stride 0 and the axis itself), a grid-stride loop with
//                 32-bit index math where it fits. Copies are widened to 16-, 8- or 4-byte units
//                 when the innermost run, the strides and the pointers allow (a [B, L, H, D] ->
//                 [B, H, L, D] head split moves D floats as float4s); a plain contiguous copy is
//                 cudaMemcpyAsync.
//   transpose     where the innermost axis moves: 32 x 32 tiles through shared memory (reads and
//                 writes both coalesced), for any permutation of that kind, not only the last two
//                 axes: the input's innermost axis and the output's innermost axis span the tile,
//                 every other axis is a tile index.
//   concat        one launch per input, its [outer, inner_k] block written at its column offset.
//   gather        a grid-stride loop over the output's slices (widened as above); an index
//                 outside [0, dim) writes zeros (no host sync to check bounds).
//   segment sum   deterministic and bit-identical to the CPU: a stable counting sort of the row
//                 ids (integer atomics for the histogram, a one-block scan, and a single warp that
//                 places the rows in order with __match_any_sync), then a thread per (segment,
//                 column) adds its segment's rows in row order in double from +0 and rounds once.
//                 O(rows + segments) for the sort, O(segments * cols + rows * cols) for the sums.
#include <algorithm>
#include <initializer_list>
#include <numeric>

#include "../layout.h"
#include "../shape_plan.h"
#include "tensor_common.cuh"

namespace fd {
namespace {

using cuda::kBlockThreads;
using cuda::kFullMask;

// ---- the strided copy ----

constexpr int kMaxCopyDims = 2 * kMaxShapeRank;

struct CopyPlan {
  int n = 0;  // dims, outer to inner
  int64_t dims[kMaxCopyDims];
  int64_t strides[kMaxCopyDims];  // source strides, in elements (units once widened)
  int64_t base = 0;
  int64_t total = 1;
};

// Drops size-1 dims and merges a dim into its outer neighbour when the two are contiguous in the
// source (stride_outer == stride_inner * dim_inner; two stride-0 dims merge too).
CopyPlan merge_dims(const int64_t* dims, const int64_t* strides, int n, int64_t base) {
  CopyPlan p;
  p.base = base;
  for (int i = 0; i < n; ++i) {
    p.total *= dims[i];
    if (dims[i] == 1) continue;
    if (p.n > 0 && p.strides[p.n - 1] == strides[i] * dims[i]) {
      p.dims[p.n - 1] *= dims[i];
      p.strides[p.n - 1] = strides[i];
    } else {
      p.dims[p.n] = dims[i];
      p.strides[p.n++] = strides[i];
    }
  }
  return p;
}

// The widest unit (16, 8, 4, 2 bytes or the element) that every address of the copy is a multiple
// of, the innermost dim being contiguous; the plan is rescaled to that unit.
int64_t widen(CopyPlan& p, int64_t elem, const void* src, const void* dst) {
  if (p.n == 0 || p.strides[p.n - 1] != 1) return elem;
  for (int64_t w = 16; w > elem; w /= 2) {
    bool ok = (p.dims[p.n - 1] * elem) % w == 0 && (p.base * elem) % w == 0 && cuda::aligned(src, w) &&
              cuda::aligned(dst, w);
    for (int d = 0; d + 1 < p.n && ok; ++d) ok = (p.strides[d] * elem) % w == 0;
    if (!ok) continue;
    const int64_t k = w / elem;
    p.dims[p.n - 1] /= k;
    p.total /= k;
    p.base /= k;
    for (int d = 0; d + 1 < p.n; ++d) p.strides[d] /= k;
    return w;
  }
  return elem;
}

template <class U, class I>
__global__ void __launch_bounds__(kBlockThreads) strided_copy_kernel(const U* src, U* dst, const CopyPlan p) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.total; i += step) {
    I lin = static_cast<I>(i);
    I off = static_cast<I>(p.base);
    for (int d = p.n - 1; d >= 0; --d) {
      const I dd = static_cast<I>(p.dims[d]);
      const I q = lin / dd;
      off += (lin - q * dd) * static_cast<I>(p.strides[d]);
      lin = q;
    }
    dst[i] = src[off];
  }
}

template <class U>
Status launch_copy(const void* src, void* dst, const CopyPlan& p) {
  // 32-bit index math when every index and offset fits.
  int64_t max_off = p.base;
  for (int d = 0; d < p.n; ++d) max_off += (p.dims[d] - 1) * p.strides[d];
  const int grid = cuda::blocks_for(p.total);
  if (p.total < (int64_t(1) << 31) && max_off < (int64_t(1) << 31))
    strided_copy_kernel<U, uint32_t>
        <<<grid, kBlockThreads, 0, device::stream()>>>(static_cast<const U*>(src), static_cast<U*>(dst), p);
  else
    strided_copy_kernel<U, int64_t>
        <<<grid, kBlockThreads, 0, device::stream()>>>(static_cast<const U*>(src), static_cast<U*>(dst), p);
  return cuda::check_launch("strided_copy_kernel");
}

// Runs the copy x -> out described by (dims, strides, n, base) in elements of `elem` bytes.
Status strided_copy(const void* x, void* out, const int64_t* dims, const int64_t* strides, int n, int64_t base,
                    int64_t elem) {
  CopyPlan p = merge_dims(dims, strides, n, base);
  if (p.total == 0) return kOk;
  if (p.n == 0 || (p.n == 1 && p.strides[0] == 1)) {  // one contiguous run
    FD_CUDA_TRY(cudaMemcpyAsync(out, static_cast<const char*>(x) + p.base * elem, static_cast<size_t>(p.total * elem),
                                cudaMemcpyDeviceToDevice, device::stream()));
    return kOk;
  }
  switch (widen(p, elem, x, out)) {
    case 16: return launch_copy<uint4>(x, out, p);
    case 8: return launch_copy<uint2>(x, out, p);
    case 4: return launch_copy<uint32_t>(x, out, p);
    case 2: return launch_copy<uint16_t>(x, out, p);
    default: return launch_copy<uint8_t>(x, out, p);
  }
}

// ---- tiled transpose ----

constexpr int kTile = 32, kTileRows = 8;

struct TileGeom {
  int64_t na, sa;  // the output's innermost axis: length, input stride
  int64_t nb, ob;  // the input's innermost axis: length, output stride
  int64_t tiles_a, tiles_b, nouter;
  int nd;  // the other axes: sizes, input and output strides (outer to inner)
  int64_t dims[kMaxShapeRank], istr[kMaxShapeRank], ostr[kMaxShapeRank];
};

template <class T>
__global__ void __launch_bounds__(kTile* kTileRows) transpose_tile_kernel(const T* x, T* out, const TileGeom g) {
  __shared__ T tile[kTile][kTile + 1];
  const int64_t tiles = g.nouter * g.tiles_a * g.tiles_b;
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    int64_t o = t / (g.tiles_a * g.tiles_b);
    const int64_t ab = t - o * (g.tiles_a * g.tiles_b);
    const int64_t a0 = (ab / g.tiles_b) * kTile, b0 = (ab % g.tiles_b) * kTile;
    int64_t ioff = 0, ooff = 0;
    for (int d = g.nd - 1; d >= 0; --d) {
      const int64_t q = o / g.dims[d], k = o - q * g.dims[d];
      ioff += k * g.istr[d];
      ooff += k * g.ostr[d];
      o = q;
    }
    // Read: consecutive threads along b (the input's contiguous axis).
    for (int i = ty; i < kTile; i += kTileRows) {
      const int64_t a = a0 + i, b = b0 + tx;
      if (a < g.na && b < g.nb) tile[i][tx] = x[ioff + a * g.sa + b];
    }
    __syncthreads();
    // Write: consecutive threads along a (the output's contiguous axis).
    for (int j = ty; j < kTile; j += kTileRows) {
      const int64_t b = b0 + j, a = a0 + tx;
      if (a < g.na && b < g.nb) out[ooff + b * g.ob + a] = tile[tx][j];
    }
    __syncthreads();
  }
}

template <class T>
Status transpose_typed(const void* x, const int64_t* shape, int rank, const int* perm, void* out, int64_t elem) {
  const TransposePlan t = plan_transpose(shape, rank, perm);
  if (t.total == 0) return kOk;
  const int ng = t.ng;
  if (ng <= 1 || t.istr[ng - 1] == 1) return strided_copy(x, out, t.gsize, t.istr, ng, 0, elem);
  TileGeom g{};
  int q = 0;
  while (t.istr[q] != 1) ++q;
  int64_t ostr[kMaxShapeRank];
  for (int64_t k = ng - 1, s = 1; k >= 0; --k) {
    ostr[k] = s;
    s *= t.gsize[k];
  }
  g.na = t.gsize[ng - 1];
  g.sa = t.istr[ng - 1];
  g.nb = t.gsize[q];
  g.ob = ostr[q];
  g.nouter = 1;
  for (int k = 0; k < ng - 1; ++k) {
    if (k == q) continue;
    g.dims[g.nd] = t.gsize[k];
    g.istr[g.nd] = t.istr[k];
    g.ostr[g.nd++] = ostr[k];
    g.nouter *= t.gsize[k];
  }
  g.tiles_a = (g.na + kTile - 1) / kTile;
  g.tiles_b = (g.nb + kTile - 1) / kTile;
  const int64_t tiles = g.nouter * g.tiles_a * g.tiles_b;
  const int grid = static_cast<int>(std::min<int64_t>(tiles, 65536));
  transpose_tile_kernel<T>
      <<<grid, dim3(kTile, kTileRows), 0, device::stream()>>>(static_cast<const T*>(x), static_cast<T*>(out), g);
  return cuda::check_launch("transpose_tile_kernel");
}

// ---- concat: in [outer, inner] -> out columns [col, col + inner) of rows of `width` (in units) ----

template <class U>
__global__ void __launch_bounds__(kBlockThreads)
    concat_kernel(const U* in, int64_t outer, int64_t inner, U* out, int64_t width, int64_t col) {
  const int64_t total = outer * inner;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const int64_t r = i / inner, c = i - r * inner;
    out[r * width + col + c] = in[i];
  }
}

template <class U>
Status launch_concat(const void* in, int64_t outer, int64_t inner, void* out, int64_t width, int64_t col, int64_t k) {
  concat_kernel<U><<<cuda::blocks_for(outer * inner / k), kBlockThreads, 0, device::stream()>>>(
      static_cast<const U*>(in), outer, inner / k, static_cast<U*>(out), width / k, col / k);
  return cuda::check_launch("concat_kernel");
}

// ---- gather ----

template <class U>
__global__ void __launch_bounds__(kBlockThreads)
    gather_kernel(const U* x, int64_t outer, int64_t dim, int64_t slice, const int32_t* indices, int64_t n, U* out,
                  int64_t rows) {
  const int64_t total = rows * slice;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t u = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; u < total; u += step) {
    const int64_t r = u / slice, c = u - r * slice;
    const int64_t bo = r / n, i = r - bo * n, bi = bo / outer;
    const int64_t idx = indices[bi * n + i];
    U v{};
    if (idx >= 0 && idx < dim) v = x[(bo * dim + idx) * slice + c];
    out[u] = v;
  }
}

template <class U>
Status launch_gather(const void* x, int64_t batch, int64_t outer, int64_t dim, int64_t slice, const int32_t* indices,
                     int64_t n, void* out) {
  const int64_t rows = batch * outer * n;
  gather_kernel<U><<<cuda::blocks_for(rows * slice), kBlockThreads, 0, device::stream()>>>(
      static_cast<const U*>(x), outer, dim, slice, indices, n, static_cast<U*>(out), rows);
  return cuda::check_launch("gather_kernel");
}

// The widest unit w (16..elem bytes) dividing `bytes` with every pointer aligned to it.
int64_t unit_for(int64_t bytes, int64_t elem, std::initializer_list<const void*> ptrs) {
  for (int64_t w = 16; w > elem; w /= 2) {
    bool ok = bytes % w == 0;
    for (const void* p : ptrs) ok = ok && cuda::aligned(p, w);
    if (ok) return w;
  }
  return elem;
}

// ---- unsorted segment sum ----

__global__ void segment_histogram_kernel(const int32_t* ids, int64_t rows, int64_t segments,
                                         unsigned long long* count) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < rows; j += step) {
    const int32_t s = ids[j];
    if (s >= 0 && s < segments) atomicAdd(count + s, 1ull);  // integer: order-independent
  }
}

// start[s] = sum of count[0, s) for s in [0, segments]; one block, chunks of its size in order.
constexpr int kScanThreads = 1024;
__global__ void __launch_bounds__(kScanThreads)
    segment_scan_kernel(const unsigned long long* count, int64_t segments, unsigned long long* start) {
  __shared__ unsigned long long warp_tot[kScanThreads / 32];
  __shared__ unsigned long long carry;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (threadIdx.x == 0) carry = 0;
  __syncthreads();
  for (int64_t b = 0; b < segments; b += kScanThreads) {
    const int64_t s = b + threadIdx.x;
    const unsigned long long v = s < segments ? count[s] : 0ull;
    unsigned long long incl = v;  // inclusive scan within the warp
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const unsigned long long y = __shfl_up_sync(kFullMask, incl, o);
      if (lane >= o) incl += y;
    }
    if (lane == 31) warp_tot[warp] = incl;
    __syncthreads();
    unsigned long long before = carry;
    for (int w = 0; w < warp; ++w) before += warp_tot[w];
    if (s < segments) start[s] = before + incl - v;
    __syncthreads();
    if (threadIdx.x == kScanThreads - 1) carry = before + incl;
    __syncthreads();
  }
  if (threadIdx.x == 0) start[segments] = carry;
}

// order[cursor[id]++] = j for the rows in order: one warp, 32 rows per step; rows sharing an id in
// a step take consecutive places in lane order (so each segment lists its rows in increasing j).
__global__ void segment_place_kernel(const int32_t* ids, int64_t rows, int64_t segments, unsigned long long* cursor,
                                     int64_t* order) {
  const int lane = threadIdx.x;
  for (int64_t j0 = 0; j0 < rows; j0 += 32) {
    const int64_t j = j0 + lane;
    const bool live = j < rows;
    const int32_t s = live ? ids[j] : -1;
    const bool valid = live && s >= 0 && s < segments;
    const int key = valid ? s : -1;
    const unsigned peers = __match_any_sync(kFullMask, key);
    const int leader = __ffs(peers) - 1;
    unsigned long long pos = 0;
    if (valid && lane == leader) {
      pos = cursor[s];
      cursor[s] = pos + __popc(peers);
    }
    pos = __shfl_sync(kFullMask, pos, leader);
    if (valid) order[pos + __popc(peers & ((1u << lane) - 1u))] = j;
    __syncwarp();  // the cursor update is visible to the next step's leaders (same warp)
  }
}

__global__ void __launch_bounds__(kBlockThreads)
    segment_sum_kernel(const float* x, int64_t cols, const unsigned long long* start, const int64_t* order,
                       int64_t segments, float* out) {
  const int64_t total = segments * cols;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const int64_t s = i / cols, c = i - s * cols;
    double acc = 0.0;  // from +0, as the CPU (so a segment of -0 rows gives +0)
    for (unsigned long long k = start[s]; k < start[s + 1]; ++k) acc += x[order[k] * cols + c];
    out[i] = static_cast<float>(acc);
  }
}

template <class F>
Status by_size(int64_t elem, F&& f) {
  if (elem == 1) return f(uint8_t{});
  if (elem == 4) return f(uint32_t{});
  return device::fail_with(kBadShape, "layout op: element size must be 1 or 4 bytes");
}

}  // namespace

Status transpose_cuda(const void* x, const int64_t* shape, int rank, const int* perm, void* out, int64_t elem) {
  FD_TRY(device::init());
  return by_size(elem, [&](auto t) { return transpose_typed<decltype(t)>(x, shape, rank, perm, out, elem); });
}

Status slice_cuda(const void* x, const int64_t* shape, int rank, const int64_t* begin, const int64_t* size, void* out,
                  int64_t elem) {
  FD_TRY(device::init());
  if (elem != 1 && elem != 4) return device::fail_with(kBadShape, "slice_cuda: element size must be 1 or 4 bytes");
  const SlicePlan sp = plan_slice(shape, rank, begin, size);
  if (sp.total == 0) return kOk;
  return strided_copy(x, out, sp.dims, sp.strides, sp.n, sp.base, elem);
}

Status concat_cuda(const void* const* inputs, const int64_t* inner, int n, int64_t outer, void* out, int64_t elem) {
  FD_TRY(device::init());
  if (elem != 1 && elem != 4) return device::fail_with(kBadShape, "concat_cuda: element size must be 1 or 4 bytes");
  int64_t width = 0;
  for (int k = 0; k < n; ++k) width += inner[k];
  if (outer == 0 || width == 0) return kOk;
  int64_t col = 0;
  for (int k = 0; k < n; ++k) {
    if (inner[k] > 0) {
      const int64_t w = unit_for(std::gcd(std::gcd(inner[k], width), col) * elem, elem, {inputs[k], out});
      const int64_t units = w / elem;
      Status st;
      switch (w) {
        case 16: st = launch_concat<uint4>(inputs[k], outer, inner[k], out, width, col, units); break;
        case 8: st = launch_concat<uint2>(inputs[k], outer, inner[k], out, width, col, units); break;
        case 4: st = launch_concat<uint32_t>(inputs[k], outer, inner[k], out, width, col, units); break;
        case 2: st = launch_concat<uint16_t>(inputs[k], outer, inner[k], out, width, col, units); break;
        default: st = launch_concat<uint8_t>(inputs[k], outer, inner[k], out, width, col, units); break;
      }
      FD_TRY(st);
    }
    col += inner[k];
  }
  return kOk;
}

Status tile_cuda(const void* x, const int64_t* shape, int rank, const int64_t* reps, void* out, int64_t elem) {
  FD_TRY(device::init());
  if (elem != 1 && elem != 4) return device::fail_with(kBadShape, "tile_cuda: element size must be 1 or 4 bytes");
  // Output axis i = (repeat, position): dims [reps_i, shape_i] with source strides [0, xstride_i].
  int64_t dims[kMaxCopyDims], strides[kMaxCopyDims];
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; --i) {
    dims[2 * i] = reps[i];
    strides[2 * i] = 0;
    dims[2 * i + 1] = shape[i];
    strides[2 * i + 1] = s;
    s *= shape[i];
  }
  return strided_copy(x, out, dims, strides, 2 * rank, 0, elem);
}

Status gather_cuda(const void* x, int64_t batch, int64_t outer, int64_t dim, int64_t slice, const int32_t* indices,
                   int64_t n, void* out, int64_t elem) {
  FD_TRY(device::init());
  if (elem != 1 && elem != 4) return device::fail_with(kBadShape, "gather_cuda: element size must be 1 or 4 bytes");
  if (batch * outer * n * slice == 0) return kOk;
  const int64_t w = unit_for(slice * elem, elem, {x, out});
  const int64_t units = slice * elem / w;
  switch (w) {
    case 16: return launch_gather<uint4>(x, batch, outer, dim, units, indices, n, out);
    case 8: return launch_gather<uint2>(x, batch, outer, dim, units, indices, n, out);
    case 4: return launch_gather<uint32_t>(x, batch, outer, dim, units, indices, n, out);
    case 2: return launch_gather<uint16_t>(x, batch, outer, dim, units, indices, n, out);
    default: return launch_gather<uint8_t>(x, batch, outer, dim, units, indices, n, out);
  }
}

Status unsorted_segment_sum_cuda(const float* x, int64_t rows, int64_t cols, const int32_t* ids, int64_t segments,
                                 float* out) {
  FD_TRY(device::init());
  if (segments <= 0 || cols <= 0) return kOk;
  cudaStream_t st = device::stream();
  // count [segments] then start [segments + 1] (the cursor copy reuses count), order [rows].
  cuda::TempBuffer count, start, order;
  const size_t seg_bytes = static_cast<size_t>(segments + 1) * sizeof(unsigned long long);
  FD_TRY(count.alloc(seg_bytes));
  FD_TRY(start.alloc(seg_bytes));
  FD_TRY(order.alloc(static_cast<size_t>(rows > 0 ? rows : 1) * sizeof(int64_t)));
  FD_CUDA_TRY(cudaMemsetAsync(count.as<void>(), 0, seg_bytes, st));
  if (rows > 0) {
    segment_histogram_kernel<<<cuda::blocks_for(rows), kBlockThreads, 0, st>>>(ids, rows, segments,
                                                                               count.as<unsigned long long>());
    FD_TRY(cuda::check_launch("segment_histogram_kernel"));
  }
  segment_scan_kernel<<<1, kScanThreads, 0, st>>>(count.as<unsigned long long>(), segments,
                                                  start.as<unsigned long long>());
  FD_TRY(cuda::check_launch("segment_scan_kernel"));
  if (rows > 0) {
    FD_CUDA_TRY(cudaMemcpyAsync(count.as<void>(), start.as<void>(), seg_bytes, cudaMemcpyDeviceToDevice, st));
    segment_place_kernel<<<1, 32, 0, st>>>(ids, rows, segments, count.as<unsigned long long>(), order.as<int64_t>());
    FD_TRY(cuda::check_launch("segment_place_kernel"));
  }
  segment_sum_kernel<<<cuda::blocks_for(segments * cols), kBlockThreads, 0, st>>>(
      x, cols, start.as<unsigned long long>(), order.as<int64_t>(), segments, out);
  return cuda::check_launch("segment_sum_kernel");
}

}  // namespace fd
