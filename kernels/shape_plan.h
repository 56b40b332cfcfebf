// Shape canonicalisation shared by the CPU kernels (kernels/cpu/reduce.cpp, layout.cpp) and their
// CUDA versions (kernels/cuda/reduce.cu, layout.cu): one definition of how a reduction's axes, a
// transpose and a slice are reduced to the fewest dimensions. Host code only.
// Internal to kernels/: not part of the contract.
#pragma once
#include <cstdint>

#include "tensor.h"

namespace fd {

// ---- reductions: size-1 axes dropped, neighbours of the same kind (both reduced or both kept)
// merged, so the groups alternate kept and reduced. Returns the number of groups (<= rank).
struct AxisGroup {
  int64_t size;
  bool reduced;
};
inline int canonical_axis_groups(const int64_t* shape, int rank, uint32_t mask, AxisGroup* g) {
  int n = 0;
  for (int i = 0; i < rank; ++i) {
    if (shape[i] == 1) continue;
    const bool red = (mask >> i) & 1u;
    if (n > 0 && g[n - 1].reduced == red)
      g[n - 1].size *= shape[i];
    else
      g[n++] = {shape[i], red};
  }
  return n;
}

// ---- transpose: the output as `ng` groups of input axes that stay neighbours (size-1 axes
// dropped), in output order, with their sizes and input strides. The innermost run stays
// contiguous when ng <= 1 or istr[ng - 1] == 1; otherwise the input's innermost group sits at some
// output position q < ng - 1 (istr[q] == 1).
struct TransposePlan {
  int ng = 0;
  int64_t gsize[kMaxShapeRank];
  int64_t istr[kMaxShapeRank];
  int64_t total = 1;
};
inline TransposePlan plan_transpose(const int64_t* shape, int rank, const int* perm) {
  TransposePlan t;
  for (int i = 0; i < rank; ++i) t.total *= shape[i];
  // Input axes that are not size 1, renumbered; then the output order over them.
  int newid[kMaxShapeRank];
  int k = 0;
  for (int i = 0; i < rank; ++i) newid[i] = shape[i] == 1 ? -1 : k++;
  int p[kMaxShapeRank];
  int64_t size[kMaxShapeRank];
  int np = 0;
  for (int j = 0; j < rank; ++j)
    if (newid[perm[j]] >= 0) p[np++] = newid[perm[j]];
  for (int i = 0; i < rank; ++i)
    if (newid[i] >= 0) size[newid[i]] = shape[i];
  // Merge output neighbours that are input neighbours too: groups of consecutive input axes.
  int glast[kMaxShapeRank];  // last input axis of each group, in output order
  int ng = 0;
  for (int j = 0; j < np; ++j) {
    if (ng > 0 && p[j] == glast[ng - 1] + 1) {
      t.gsize[ng - 1] *= size[p[j]];
    } else {
      t.gsize[ng++] = size[p[j]];
    }
    glast[ng - 1] = p[j];
  }
  // A group's input stride is that of its last input axis.
  int64_t axis_stride[kMaxShapeRank];
  for (int64_t a = np - 1, s = 1; a >= 0; --a) {
    axis_stride[a] = s;
    s *= size[a];
  }
  for (int g = 0; g < ng; ++g) t.istr[g] = axis_stride[glast[g]];
  t.ng = ng;
  return t;
}

// ---- slice: x + base read over `n` output dims with input strides (size-1 axes dropped; an axis
// merged into the previous one when it is taken whole, the two then being contiguous in x too).
struct SlicePlan {
  int n = 0;
  int64_t dims[kMaxShapeRank];
  int64_t strides[kMaxShapeRank];
  int64_t base = 0;
  int64_t total = 1;
};
inline SlicePlan plan_slice(const int64_t* shape, int rank, const int64_t* begin, const int64_t* size) {
  SlicePlan sp;
  for (int i = 0; i < rank; ++i) sp.total *= size[i];
  int64_t stride[kMaxShapeRank];
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; --i) {
    stride[i] = s;
    sp.base += begin[i] * s;
    s *= shape[i];
  }
  for (int i = 0; i < rank; ++i) {
    if (size[i] == 1) continue;
    const bool whole = size[i] == shape[i];
    if (sp.n > 0 && whole && sp.strides[sp.n - 1] == stride[i] * shape[i]) {
      sp.dims[sp.n - 1] *= size[i];
      sp.strides[sp.n - 1] = stride[i];
    } else {
      sp.dims[sp.n] = size[i];
      sp.strides[sp.n++] = stride[i];
    }
  }
  return sp;
}

}  // namespace fd
