// Row-wise softmax and log-softmax for the tfjs backends: softmax_cpu ('native',
// kernels/cpu/softmax.cpp) and softmax_cuda ('cuda', kernels/cuda/softmax.cu). No N-API here:
// native/shape_ops.cc checks the arguments before calling these.
#pragma once
#include <cstdint>

#include "status.h"

namespace fd {

// Row-wise over x [rows, cols]: out = exp(x - max) / sum exp(x - max), or with log, the log-softmax
// x - max - log(sum). A row holding NaN or +Inf gives NaN, a row of all -Inf gives NaN (as tfjs);
// out may be x itself.
void softmax_cpu(const float* x, int64_t rows, int64_t cols, float* out, bool log);

// One row in place, single-threaded (for callers already inside a parallel loop, as the fused
// attention): row = softmax(row * scale + bias), bias of length n. The scale, bias and max share one
// pass; otherwise the same arithmetic as softmax_cpu on the scaled row (bit-identical to it).
void scaled_softmax_row(float* row, int64_t n, float scale, const float* bias);

// ---- CUDA (kernels/cuda/softmax.cu; kernels/cuda/no_cuda.cpp in CPU builds) ----
// The same parameters and semantics as the CPU function above, on DEVICE pointers. Work is queued
// on the library's stream, nothing synchronises.
Status softmax_cuda(const float* x, int64_t rows, int64_t cols, float* out, bool log);

}  // namespace fd
