// Reductions, softmax and layout ops of the 'native' tfjs backend (kernels/cpu/shape_*.cpp). No
// N-API here: native/shape_ops.cc checks every argument (shapes against lengths, axes, permutations,
// index bounds, overlap) before calling these, so they assume valid input.
//
// Shapes are int64 arrays of length `rank` (0 <= rank <= kMaxShapeRank); a dimension may be 0 only
// where a function says so. Copies are element-size generic (4 bytes: float32 and int32, 1 byte:
// bool); math is float32 (and int32 where tfjs has an int32 result). Results never depend on the
// thread count (see parallel.h): every output element is reduced serially in a fixed order, and where
// a long reduction is split across threads, its chunk boundaries depend only on the shape and the
// partials are combined in chunk order.
#pragma once
#include <cstdint>

#include "../losses.h"

namespace fd {

constexpr int kMaxShapeRank = 16;

enum class ElemType : int { kFloat32 = 0, kInt32 = 1, kBool = 2 };

inline int64_t elem_bytes(ElemType t) { return t == ElemType::kBool ? 1 : 4; }

// ---- reductions (shape_reduce.cpp) ----
// x (shape, rank) reduced over the axes whose bit is set in axes_mask (bit i = axis i, normalised,
// no duplicates). The output holds the kept axes in order (its element count is the product of the
// kept dimensions). x must not be empty. Element types (in -> out):
//   kSum   float32 -> float32 (accumulated in double), int32|bool -> int32 (int64, wrapped)
//   kMean  float32|int32|bool -> float32 (the sum / the reduced count)
//   kProd  float32 -> float32 (double)
//   kMax, kMin  float32|int32|bool -> same; a NaN anywhere gives NaN, ties keep the first (as tfjs)
//   kAny, kAll  bool -> bool
//   kArgMax, kArgMin  float32|int32 -> int32; exactly one reduced axis; the first extreme wins and a
//     NaN never does, unless it is the first element (tfjs's loop starts from element 0)
enum class ReduceOp : int { kSum = 0, kMean, kProd, kMax, kMin, kAny, kAll, kArgMax, kArgMin };

// Output element type of `op` for input type `in`, or -1 when the pair is not supported.
int reduce_output_type(ReduceOp op, ElemType in);
void reduce_cpu(ReduceOp op, ElemType in, const void* x, const int64_t* shape, int rank, uint32_t axes_mask,
                void* out);

// ---- softmax (shape_softmax.cpp) ----
// Row-wise over x [rows, cols]: out = exp(x - max) / sum exp(x - max), or with log, the log-softmax
// x - max - log(sum). A row holding NaN or +Inf gives NaN, a row of all -Inf gives NaN (as tfjs);
// out may be x itself.
void softmax_cpu(const float* x, int64_t rows, int64_t cols, float* out, bool log);

// ---- layout (shape_layout.cpp) ----
// out = x transposed by perm (out axis j is x axis perm[j]); any dimension may be 0.
void transpose_cpu(const void* x, const int64_t* shape, int rank, const int* perm, void* out, int64_t elem);
// out[i...] = x[begin + i...] for i < size (begin + size <= shape per axis).
void slice_cpu(const void* x, const int64_t* shape, int rank, const int64_t* begin, const int64_t* size, void* out,
               int64_t elem);
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

// ---- CUDA (kernels/cuda/; kernels/cuda/no_cuda.cpp in CPU builds) ----
// The same parameters and semantics as the CPU functions above, on DEVICE pointers (shape, perm,
// begin, size, reps and the `inputs` pointer array are host arrays). Work is queued on the library's
// stream, nothing synchronises.
Status reduce_cuda(ReduceOp op, ElemType in, const void* x, const int64_t* shape, int rank, uint32_t axes_mask,
                   void* out);
Status softmax_cuda(const float* x, int64_t rows, int64_t cols, float* out, bool log);
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
