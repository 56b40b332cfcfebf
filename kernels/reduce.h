// Reductions over any set of axes for the tfjs backends: reduce_cpu ('native', kernels/cpu/reduce.cpp)
// and reduce_cuda ('cuda', kernels/cuda/reduce.cu). No N-API here: native/shape_ops.cc checks every
// argument (the shape against the length, the axes) before calling these, so they assume valid input.
//
// Shapes are int64 arrays of length `rank` (0 <= rank <= kMaxShapeRank). Math is float32 (and int32
// where tfjs has an int32 result). Results never depend on the thread count (see cpu/parallel.h):
// every output element is reduced serially in a fixed order, and where a long reduction is split
// across threads, its chunk boundaries depend only on the shape and the partials are combined in
// chunk order.
#pragma once
#include <cstdint>

#include "status.h"
#include "tensor.h"

namespace fd {

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
int reduce_output_type(ReduceOp op, DType in);
void reduce_cpu(ReduceOp op, DType in, const void* x, const int64_t* shape, int rank, uint32_t axes_mask, void* out);

// ---- CUDA (kernels/cuda/reduce.cu; kernels/cuda/no_cuda.cpp in CPU builds) ----
// The same parameters and semantics as the CPU function above, on DEVICE pointers (shape is a host
// array). Work is queued on the library's stream, nothing synchronises.
Status reduce_cuda(ReduceOp op, DType in, const void* x, const int64_t* shape, int rank, uint32_t axes_mask, void* out);

}  // namespace fd
