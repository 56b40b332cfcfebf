// Layout ops: pure copies (bit-exact, element-size generic: 4-byte float32/int32, 1-byte bool) plus
// the segment sum behind tfjs's gather gradient.
//
// Transpose and Slice first canonicalise the shape (size-1 axes dropped, axes that stay neighbours
// merged), which turns most real cases into copies of contiguous runs: BERT's head split
// [B, L, H, D] -> [B, H, L, D] is a copy of D-element runs. When the innermost axis moves (a matrix
// transpose, [.., M, N] -> [.., N, M]) the copy goes through T x T tiles, so that both the reads and
// the writes stay within a few cache lines per tile.
#include <algorithm>
#if defined(__AVX__)
#include <immintrin.h>
#endif
#include <cstring>
#include <vector>

#include "../layout.h"
#include "../shape_plan.h"
#include "parallel.h"

namespace fd {
namespace {

// Bytes per parallel block of a copy (a copy is ~1 cycle/element: larger blocks than arithmetic).
constexpr int64_t kCopyBlockBytes = 256 << 10;

// The `work` of a copy for threads_for: a second thread only pays for itself past ~1 MB of copying
// (threads_for asks 32768 units per thread; a copy moves 16 bytes per unit here).
template <class T>
inline int64_t copy_work(int64_t elements) {
  return elements * static_cast<int64_t>(sizeof(T)) / 16;
}

// A multi-index over `dims` (row-major) that keeps the matching offset into a strided source.
struct Walker {
  int n = 0;
  int64_t dims[kMaxShapeRank];
  int64_t strides[kMaxShapeRank];
  int64_t idx[kMaxShapeRank];
  int64_t offset = 0;

  void seek(int64_t linear) {
    offset = 0;
    for (int j = n - 1; j >= 0; --j) {
      idx[j] = linear % dims[j];
      linear /= dims[j];
      offset += idx[j] * strides[j];
    }
  }
  void next() {
    for (int j = n - 1; j >= 0; --j) {
      offset += strides[j];
      if (++idx[j] < dims[j]) return;
      offset -= idx[j] * strides[j];
      idx[j] = 0;
    }
  }
};

template <class T>
inline void copy_run(T* __restrict dst, const T* __restrict src, int64_t n) {
  if (n * static_cast<int64_t>(sizeof(T)) >= 64) {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(T));
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  }
}

// out [rows, run] (contiguous) from runs of `run` contiguous source elements; row r starts at
// src + offset of r's multi-index over (dims, strides).
template <class T>
void copy_rows(const T* src, const int64_t* dims, const int64_t* strides, int nd, int64_t run, T* out) {
  int64_t rows = 1;
  for (int j = 0; j < nd; ++j) rows *= dims[j];
  const int64_t total = rows * run;
  if (rows == 1) {  // one long run: split it
    const int64_t block = std::max<int64_t>(1, kCopyBlockBytes / static_cast<int64_t>(sizeof(T)));
    for_each_block(run, block, copy_work<T>(total),
                   [&](int64_t, int64_t b, int64_t e) { copy_run(out + b, src + b, e - b); });
    return;
  }
  const int64_t block = std::max<int64_t>(1, kCopyBlockBytes / static_cast<int64_t>(sizeof(T)) / run);
  for_each_block(rows, block, copy_work<T>(total), [&](int64_t, int64_t b, int64_t e) {
    Walker w;
    w.n = nd;
    for (int j = 0; j < nd; ++j) {
      w.dims[j] = dims[j];
      w.strides[j] = strides[j];
    }
    w.seek(b);
    for (int64_t r = b; r < e; ++r, w.next()) copy_run(out + r * run, src + w.offset, run);
  });
}

// ---- transpose ----

// dst[j * ds + i] = src[i * ss + j] for i, j in [0, 8): one 8 x 8 block of a matrix transpose.
template <class T>
inline void block8(const T* __restrict src, int64_t ss, T* __restrict dst, int64_t ds) {
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) dst[j * ds + i] = src[i * ss + j];
}

#if defined(__AVX__)
// 4-byte elements in AVX registers (moves and shuffles only: the bits are copied as they are).
template <>
inline void block8<uint32_t>(const uint32_t* __restrict src, int64_t ss, uint32_t* __restrict dst, int64_t ds) {
  const float* s = reinterpret_cast<const float*>(src);
  float* d = reinterpret_cast<float*>(dst);
  __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ss), r2 = _mm256_loadu_ps(s + 2 * ss),
         r3 = _mm256_loadu_ps(s + 3 * ss), r4 = _mm256_loadu_ps(s + 4 * ss), r5 = _mm256_loadu_ps(s + 5 * ss),
         r6 = _mm256_loadu_ps(s + 6 * ss), r7 = _mm256_loadu_ps(s + 7 * ss);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
               t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
               t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)),
               u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
               u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)),
               u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)),
               u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)),
               u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2)),
               u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)),
               u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(d + ds, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(d + 2 * ds, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(d + 3 * ds, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(d + 4 * ds, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(d + 5 * ds, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(d + 6 * ds, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(d + 7 * ds, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

// 1-byte elements: the 8 x 8 byte block as eight 64-bit rows, transposed by swapping 1-, 2- and
// 4-byte sub-blocks between row pairs (little-endian byte order).
template <>
inline void block8<uint8_t>(const uint8_t* __restrict src, int64_t ss, uint8_t* __restrict dst, int64_t ds) {
  uint64_t r[8];
  for (int i = 0; i < 8; ++i) std::memcpy(&r[i], src + i * ss, 8);
  auto swap = [&](int a, int b, int shift, uint64_t mask) {
    const uint64_t t = ((r[a] >> shift) ^ r[b]) & mask;
    r[b] ^= t;
    r[a] ^= t << shift;
  };
  for (int a = 0; a < 8; a += 2) swap(a, a + 1, 8, 0x00FF00FF00FF00FFull);
  for (int a : {0, 1, 4, 5}) swap(a, a + 2, 16, 0x0000FFFF0000FFFFull);
  for (int a = 0; a < 4; ++a) swap(a, a + 4, 32, 0x00000000FFFFFFFFull);
  for (int i = 0; i < 8; ++i) std::memcpy(dst + i * ds, &r[i], 8);
}

// dst[ib * ob + ia] = src[ia * sa + ib] for ia in [a0, a1), ib in [b0, b1): 8 x 8 blocks, then the
// ragged edges element by element.
template <class T>
void tile_transpose(const T* __restrict src, int64_t sa, T* __restrict dst, int64_t ob, int64_t a0, int64_t a1,
                    int64_t b0, int64_t b1) {
  const int64_t a8 = a0 + (a1 - a0) / 8 * 8, b8 = b0 + (b1 - b0) / 8 * 8;
  for (int64_t ia = a0; ia < a8; ia += 8)
    for (int64_t ib = b0; ib < b8; ib += 8) block8<T>(src + ia * sa + ib, sa, dst + ib * ob + ia, ob);
  for (int64_t ib = b8; ib < b1; ++ib)
    for (int64_t ia = a0; ia < a1; ++ia) dst[ib * ob + ia] = src[ia * sa + ib];
  for (int64_t ib = b0; ib < b8; ++ib)
    for (int64_t ia = a8; ia < a1; ++ia) dst[ib * ob + ia] = src[ia * sa + ib];
}

template <class T>
void transpose_typed(const T* x, const int64_t* shape, int rank, const int* perm, T* out) {
  int64_t total = 1;
  for (int i = 0; i < rank; ++i) total *= shape[i];
  if (total == 0) return;

  const TransposePlan plan = plan_transpose(shape, rank, perm);
  const int ng = plan.ng;
  const int64_t* gsize = plan.gsize;
  const int64_t* istr = plan.istr;
  if (ng <= 1 || istr[ng - 1] == 1) {  // the innermost run stays contiguous: copies of runs
    const int64_t run = ng == 0 ? 1 : gsize[ng - 1];
    copy_rows(x, gsize, istr, ng - 1 < 0 ? 0 : ng - 1, run, out);
    return;
  }

  // The innermost output axis (input stride sa, na elements) is not the input's innermost one,
  // which sits at output position q (input stride 1, nb elements, output stride ob).
  int q = 0;
  while (istr[q] != 1) ++q;
  const int64_t na = gsize[ng - 1], sa = istr[ng - 1], nb = gsize[q];
  int64_t ostr[kMaxShapeRank];
  {
    int64_t s = 1;
    for (int g = ng - 1; g >= 0; --g) {
      ostr[g] = s;
      s *= gsize[g];
    }
  }
  const int64_t ob = ostr[q];
  // The other output axes, walked for both the input and the output offset.
  Walker in_w, out_w;
  for (int g = 0; g < ng - 1; ++g) {
    if (g == q) continue;
    in_w.dims[in_w.n] = gsize[g];
    in_w.strides[in_w.n++] = istr[g];
    out_w.dims[out_w.n] = gsize[g];
    out_w.strides[out_w.n++] = ostr[g];
  }
  constexpr int64_t kT = sizeof(T) == 1 ? 64 : 32;  // tile edge: one or two cache lines of T
  const int64_t nouter = total / (na * nb);
  const int64_t strips = (nb + kT - 1) / kT;
  const int64_t units = nouter * strips;
  const int64_t per_unit = kT * na;
  const int64_t block = std::max<int64_t>(1, kCopyBlockBytes / static_cast<int64_t>(sizeof(T)) / per_unit);
  for_each_block(units, block, copy_work<T>(2 * total), [&](int64_t, int64_t b, int64_t e) {
    Walker iw = in_w, ow = out_w;
    int64_t cur = -1;
    for (int64_t u = b; u < e; ++u) {
      const int64_t o = u / strips, b0 = (u % strips) * kT, b1 = std::min(nb, b0 + kT);
      if (o != cur) {
        iw.seek(o);
        ow.seek(o);
        cur = o;
      }
      for (int64_t a0 = 0; a0 < na; a0 += kT)
        tile_transpose(x + iw.offset, sa, out + ow.offset, ob, a0, std::min(na, a0 + kT), b0, b1);
    }
  });
}

// ---- slice ----

template <class T>
void slice_typed(const T* x, const int64_t* shape, int rank, const int64_t* begin, const int64_t* size, T* out) {
  int64_t total = 1;
  for (int i = 0; i < rank; ++i) total *= size[i];
  if (total == 0) return;
  const SlicePlan sp = plan_slice(shape, rank, begin, size);
  const int n = sp.n;
  const int64_t* dims = sp.dims;
  const int64_t* strides = sp.strides;
  const int64_t base = sp.base;
  if (n == 0 || strides[n - 1] != 1) {  // the innermost axis is strided (or there is none): runs of 1
    copy_rows(x + base, dims, strides, n, 1, out);
    return;
  }
  copy_rows(x + base, dims, strides, n - 1, dims[n - 1], out);
}

// ---- concat ----

template <class T>
void concat_typed(const void* const* inputs, const int64_t* inner, int n, int64_t outer, T* out) {
  int64_t width = 0;
  for (int k = 0; k < n; ++k) width += inner[k];
  const int64_t total = outer * width;
  if (total == 0) return;
  const int64_t chunk = std::max<int64_t>(1, kCopyBlockBytes / static_cast<int64_t>(sizeof(T)));
  if (width >= chunk) {
    // Long rows (few of them): each input's part of each row is split into chunks of `chunk`.
    std::vector<int64_t> col(static_cast<size_t>(n), 0), start(static_cast<size_t>(outer * n) + 1, 0);
    for (int k = 1; k < n; ++k) col[k] = col[k - 1] + inner[k - 1];
    for (int64_t piece = 0; piece < outer * n; ++piece)
      start[piece + 1] = start[piece] + (inner[piece % n] + chunk - 1) / chunk;
    for_each_block(start.back(), 1, copy_work<T>(total), [&](int64_t c, int64_t, int64_t) {
      const int64_t piece = std::upper_bound(start.begin(), start.end(), c) - start.begin() - 1;
      const int64_t r = piece / n;
      const int k = static_cast<int>(piece % n);
      const int64_t b = (c - start[piece]) * chunk, e = std::min(inner[k], b + chunk);
      copy_run(out + r * width + col[k] + b, static_cast<const T*>(inputs[k]) + r * inner[k] + b, e - b);
    });
    return;
  }
  const int64_t block = std::max<int64_t>(1, chunk / std::max<int64_t>(1, width));
  for_each_block(outer, block, copy_work<T>(total), [&](int64_t, int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      T* dst = out + r * width;
      for (int k = 0; k < n; ++k) {
        copy_run(dst, static_cast<const T*>(inputs[k]) + r * inner[k], inner[k]);
        dst += inner[k];
      }
    }
  });
}

// ---- tile ----

template <class T>
void tile_typed(const T* x, const int64_t* shape, int rank, const int64_t* reps, T* out) {
  if (rank == 0) {
    out[0] = x[0];
    return;
  }
  int64_t total = 1;
  for (int i = 0; i < rank; ++i) total *= shape[i] * reps[i];
  if (total == 0) return;
  const int64_t len = shape[rank - 1], width = len * reps[rank - 1];
  const int64_t rows = total / width;
  int64_t xstride[kMaxShapeRank];
  {
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; --i) {
      xstride[i] = s;
      s *= shape[i];
    }
  }
  const int64_t block = std::max<int64_t>(1, kCopyBlockBytes / static_cast<int64_t>(sizeof(T)) / width);
  for_each_block(rows, block, copy_work<T>(total), [&](int64_t, int64_t b, int64_t e) {
    int64_t idx[kMaxShapeRank];  // multi-index of row b over the output's leading axes
    {
      int64_t lin = b;
      for (int j = rank - 2; j >= 0; --j) {
        const int64_t d = shape[j] * reps[j];
        idx[j] = lin % d;
        lin /= d;
      }
    }
    for (int64_t r = b; r < e; ++r) {
      int64_t off = 0;
      for (int j = 0; j < rank - 1; ++j) off += (idx[j] % shape[j]) * xstride[j];
      T* dst = out + r * width;
      copy_run(dst, x + off, len);
      for (int64_t filled = len; filled < width;) {  // doubling copies of the filled prefix
        const int64_t n = std::min(filled, width - filled);
        copy_run(dst + filled, dst, n);
        filled += n;
      }
      for (int j = rank - 2; j >= 0; --j) {
        if (++idx[j] < shape[j] * reps[j]) break;
        idx[j] = 0;
      }
    }
  });
}

// ---- pad ----

// Every output row (the innermost axis) is written once: the constant where the row lies in the
// padding of an outer axis, else the constant, x's row, the constant.
template <class T>
void pad_typed(const T* x, const int64_t* shape, int rank, const int64_t* before, const int64_t* after, T value,
               T* out) {
  int64_t oshape[kMaxShapeRank] = {};
  int64_t total = 1;
  for (int j = 0; j < rank; ++j) {
    oshape[j] = shape[j] + before[j] + after[j];
    total *= oshape[j];
  }
  if (total == 0) return;
  if (rank == 0) {
    out[0] = x[0];
    return;
  }
  const int64_t width = oshape[rank - 1], len = shape[rank - 1], lead = before[rank - 1];
  const int64_t rows = total / width;
  int64_t xstride[kMaxShapeRank];  // x's row stride per leading axis, in rows
  {
    int64_t s = 1;
    for (int j = rank - 2; j >= 0; --j) {
      xstride[j] = s;
      s *= shape[j];
    }
  }
  const int64_t block = std::max<int64_t>(1, kCopyBlockBytes / static_cast<int64_t>(sizeof(T)) / width);
  for_each_block(rows, block, copy_work<T>(total), [&](int64_t, int64_t b, int64_t e) {
    int64_t idx[kMaxShapeRank];  // multi-index of row b over the output's leading axes
    int64_t lin = b;
    for (int j = rank - 2; j >= 0; --j) {
      idx[j] = lin % oshape[j];
      lin /= oshape[j];
    }
    for (int64_t r = b; r < e; ++r) {
      T* dst = out + r * width;
      int64_t xrow = 0;
      bool inside = len > 0;
      for (int j = 0; j < rank - 1 && inside; ++j) {
        const int64_t i = idx[j] - before[j];
        inside = i >= 0 && i < shape[j];
        xrow += i * xstride[j];
      }
      if (inside) {
        std::fill(dst, dst + lead, value);
        copy_run(dst + lead, x + xrow * len, len);
        std::fill(dst + lead + len, dst + width, value);
      } else {
        std::fill(dst, dst + width, value);
      }
      for (int j = rank - 2; j >= 0; --j) {
        if (++idx[j] < oshape[j]) break;
        idx[j] = 0;
      }
    }
  });
}

// ---- gather ----

template <class T>
void gather_typed(const T* x, int64_t batch, int64_t outer, int64_t dim, int64_t slice, const int32_t* indices,
                  int64_t n, T* out) {
  const int64_t rows = batch * outer * n;
  const int64_t total = rows * slice;
  if (total == 0) return;
  const int64_t block = std::max<int64_t>(1, kCopyBlockBytes / static_cast<int64_t>(sizeof(T)) / slice);
  for_each_block(rows, block, copy_work<T>(total), [&](int64_t, int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t i = r % n, bo = r / n, bi = bo / outer;
      const int64_t src_row = bo * dim + indices[bi * n + i];
      copy_run(out + r * slice, x + src_row * slice, slice);
    }
  });
}

template <class F>
void by_size(int64_t elem, F&& f) {
  if (elem == 1)
    f(uint8_t{});
  else
    f(uint32_t{});
}

}  // namespace

void transpose_cpu(const void* x, const int64_t* shape, int rank, const int* perm, void* out, int64_t elem) {
  by_size(elem, [&](auto t) {
    using T = decltype(t);
    transpose_typed(static_cast<const T*>(x), shape, rank, perm, static_cast<T*>(out));
  });
}

void slice_cpu(const void* x, const int64_t* shape, int rank, const int64_t* begin, const int64_t* size, void* out,
               int64_t elem) {
  by_size(elem, [&](auto t) {
    using T = decltype(t);
    slice_typed(static_cast<const T*>(x), shape, rank, begin, size, static_cast<T*>(out));
  });
}

void pad_cpu(const void* x, const int64_t* shape, int rank, const int64_t* before, const int64_t* after,
             const void* value, void* out, int64_t elem) {
  by_size(elem, [&](auto t) {
    using T = decltype(t);
    T v;
    std::memcpy(&v, value, sizeof(T));
    pad_typed(static_cast<const T*>(x), shape, rank, before, after, v, static_cast<T*>(out));
  });
}

void concat_cpu(const void* const* inputs, const int64_t* inner, int n, int64_t outer, void* out, int64_t elem) {
  by_size(elem, [&](auto t) {
    using T = decltype(t);
    concat_typed<T>(inputs, inner, n, outer, static_cast<T*>(out));
  });
}

void tile_cpu(const void* x, const int64_t* shape, int rank, const int64_t* reps, void* out, int64_t elem) {
  by_size(elem, [&](auto t) {
    using T = decltype(t);
    tile_typed(static_cast<const T*>(x), shape, rank, reps, static_cast<T*>(out));
  });
}

void gather_cpu(const void* x, int64_t batch, int64_t outer, int64_t dim, int64_t slice, const int32_t* indices,
                int64_t n, void* out, int64_t elem) {
  by_size(elem, [&](auto t) {
    using T = decltype(t);
    gather_typed(static_cast<const T*>(x), batch, outer, dim, slice, indices, n, static_cast<T*>(out));
  });
}

int64_t first_out_of_range(const int32_t* indices, int64_t n, int64_t dim) {
  // Branch-free scan in blocks, then the exact position inside the first bad block.
  constexpr int64_t kBlock = 1024;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    int bad = 0;
#pragma omp simd reduction(| : bad)
    for (int64_t i = b; i < e; ++i) bad |= (indices[i] < 0) | (static_cast<int64_t>(indices[i]) >= dim);
    if (bad)
      for (int64_t i = b; i < e; ++i)
        if (indices[i] < 0 || indices[i] >= dim) return i;
  }
  return -1;
}

void unsorted_segment_sum_cpu(const float* x, int64_t rows, int64_t cols, const int32_t* ids, int64_t segments,
                              float* out) {
  // Counting sort of the rows by segment (stable: each segment's rows stay in j order).
  std::vector<int64_t> start(static_cast<size_t>(segments) + 1, 0);
  for (int64_t j = 0; j < rows; ++j)
    if (ids[j] >= 0 && ids[j] < segments) ++start[static_cast<size_t>(ids[j]) + 1];
  for (int64_t s = 0; s < segments; ++s) start[s + 1] += start[s];
  std::vector<int64_t> order(static_cast<size_t>(start[segments]));
  {
    std::vector<int64_t> pos(start.begin(), start.end() - 1);
    for (int64_t j = 0; j < rows; ++j)
      if (ids[j] >= 0 && ids[j] < segments) order[static_cast<size_t>(pos[ids[j]]++)] = j;
  }
  const int64_t block = std::max<int64_t>(1, (kCopyBlockBytes / 4) / std::max<int64_t>(1, cols));
  const int64_t work = segments * cols + rows * cols;
  for_each_block(segments, block, work, [&](int64_t, int64_t b, int64_t e) {
    std::vector<double> acc;
    for (int64_t s = b; s < e; ++s) {
      float* dst = out + s * cols;
      const int64_t j0 = start[s], j1 = start[s + 1];
      if (j0 == j1) {
        std::memset(dst, 0, static_cast<size_t>(cols) * sizeof(float));
        continue;
      }
      acc.assign(static_cast<size_t>(cols), 0.0);  // from +0, as tfjs's sum (so -0 rows give +0)
      double* __restrict a = acc.data();
      for (int64_t j = j0; j < j1; ++j) {
        const float* __restrict src = x + order[j] * cols;
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) a[c] += src[c];
      }
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) dst[c] = static_cast<float>(a[c]);
    }
  });
}

}  // namespace fd
