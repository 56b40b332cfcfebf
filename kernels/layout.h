// Layout ops of the tfjs backends: transpose, slice, concat, tile, gather and the segment sum behind
// gather's gradient; *_cpu ('native', kernels/cpu/layout.cpp) and *_cuda ('cuda',
// kernels/cuda/layout.cu). No N-API here: native/shape_ops.cc checks every argument (shapes against
// lengths, permutations, index bounds, overlap) before calling these, so they assume valid input.
//
// Shapes are int64 arrays of length `rank` (0 <= rank <= kMaxShapeRank); a dimension may be 0 only
// where a function says so. Copies are element-size generic (4 bytes: float32 and int32, 1 byte:
// bool). Results never depend on the thread count.
#pragma once
#include <cstdint>

#include "status.h"
#include "tensor.h"

namespace fd {

// out = x transposed by perm (out axis j is x axis perm[j]); any dimension may be 0.
void transpose_cpu(const void* x, const int64_t* shape, int rank, const int* perm, void* out, int64_t elem);
// out[i...] = x[begin + i...] for i < size (begin + size <= shape per axis).
void slice_cpu(const void* x, const int64_t* shape, int rank, const int64_t* begin, const int64_t* size, void* out,
               int64_t elem);
// out (shape[i] + before[i] + after[i] per axis) = value (elem bytes, copied as they are) everywhere
// except the block at offset `before`, which is x: tfjs's PadV2 with a constant (the gradient of
// Slice). Any dimension of x may be 0. CPU only: the 'cuda' backend composes fill and concat.
void pad_cpu(const void* x, const int64_t* shape, int rank, const int64_t* before, const int64_t* after,
             const void* value, void* out, int64_t elem);
// Inputs viewed as [outer, inner[k]] and written side by side into out [outer, sum inner].
void concat_cpu(const void* const* inputs, const int64_t* inner, int n, int64_t outer, void* out, int64_t elem);
// out (shape[i] * reps[i]) = x repeated reps[i] times along each axis.
void tile_cpu(const void* x, const int64_t* shape, int rank, const int64_t* reps, void* out, int64_t elem);
// tfjs's GatherV2 on x viewed as [batch, outer, dim, slice] with indices [batch, n]:
// out[b, o, i, :] = x[b, o, indices[b, i], :]. Every index must be in [0, dim) (checked by the caller).
void gather_cpu(const void* x, int64_t batch, int64_t outer, int64_t dim, int64_t slice, const int32_t* indices,
                int64_t n, void* out, int64_t elem);
// Index of the first entry of indices[0, n) outside [0, dim), or -1.
int64_t first_out_of_range(const int32_t* indices, int64_t n, int64_t dim);
// out [segments, cols] = for each s, the sum of the rows x[j, :] with ids[j] == s, in j order (in
// double, rounded once); rows whose id is outside [0, segments) are dropped, as tfjs's CPU kernel does.
void unsorted_segment_sum_cpu(const float* x, int64_t rows, int64_t cols, const int32_t* ids, int64_t segments,
                              float* out);

// ---- CUDA (kernels/cuda/layout.cu; kernels/cuda/no_cuda.cpp in CPU builds) ----
// The same parameters and semantics as the CPU functions above, on DEVICE pointers (shape, perm,
// begin, size, reps and the `inputs` pointer array are host arrays). Work is queued on the library's
// stream, nothing synchronises.
Status transpose_cuda(const void* x, const int64_t* shape, int rank, const int* perm, void* out, int64_t elem);
Status slice_cuda(const void* x, const int64_t* shape, int rank, const int64_t* begin, const int64_t* size, void* out,
                  int64_t elem);
Status concat_cuda(const void* const* inputs, const int64_t* inner, int n, int64_t outer, void* out, int64_t elem);
Status tile_cuda(const void* x, const int64_t* shape, int rank, const int64_t* reps, void* out, int64_t elem);
// An index outside [0, dim) gives zeros in its output slice (TensorFlow's GPU rule: no host sync to check).
Status gather_cuda(const void* x, int64_t batch, int64_t outer, int64_t dim, int64_t slice, const int32_t* indices,
                   int64_t n, void* out, int64_t elem);
Status unsorted_segment_sum_cuda(const float* x, int64_t rows, int64_t cols, const int32_t* ids, int64_t segments,
                                 float* out);

}  // namespace fd
