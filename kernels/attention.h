// The kernel contract of fused multi-head self-attention, forward and backward: scale, additive key
// bias, softmax and the probability x value product in one call each way, on the dense layers'
// natural [batch, len, hidden] layout (head h is columns h*dh .. (h+1)*dh - 1 of every row, dh =
// hidden / heads), so no head transposes are ever materialised. kernels/cpu/attention.cpp and
// kernels/cuda/attention.cu implement the same functions. No N-API, no JS.
#pragma once
#include <cstdint>

#include "gemm.h"
#include "status.h"

namespace fd {

// For every batch entry b and head h, with Q, K, V the head's [len, dh] column slices of q, k, v:
//   S = scale * Q K^T + key_bias[b]   (key_bias[b] broadcast over the rows: an additive key mask)
//   P = softmax over the rows of S    (as kernels/softmax.h: a row with NaN or +Inf gives NaN)
//   out[b, :, h*dh .. ] = P V
// probs [batch, heads, len, len] receives P (kept for backward); null when not wanted, the kernel
// then uses its own workspace. Outputs must not overlap the inputs or each other. The products run
// through sgemm (precision: GemmArgs.precision) and each (b, h) is computed by one thread: results do
// not depend on the thread count.
struct AttentionArgs {
  const float* q = nullptr;                           // [batch, len, hidden]
  const float* k = nullptr;                           // [batch, len, hidden]
  const float* v = nullptr;                           // [batch, len, hidden]
  const float* key_bias = nullptr;                    // [batch, len]
  int64_t batch = 0, len = 0, hidden = 0, heads = 0;  // hidden % heads == 0
  float scale = 1.0f;
  GemmPrecision precision = GemmPrecision::kFp32;
  float* out = nullptr;    // [batch, len, hidden]
  float* probs = nullptr;  // [batch, heads, len, len] or null
};

// Backward from the saved probabilities P, per (b, h), with dO the head's slice of dout:
//   dV = P^T dO,  dP = dO V^T,  G = P * (dP - rowsum(dP * P)),  dS = scale * G,
//   dQ = dS K,    dK = dS^T Q,  dkey_bias[b, j] = sum over heads and rows i of G[i, j]
// (the bias enters S unscaled). dkey_bias may be null (not wanted); its sum runs over heads and rows
// in a fixed order. Outputs must not overlap the inputs or each other.
struct AttentionGradArgs {
  const float* dout = nullptr;   // [batch, len, hidden]
  const float* q = nullptr;      // [batch, len, hidden]
  const float* k = nullptr;      // [batch, len, hidden]
  const float* v = nullptr;      // [batch, len, hidden]
  const float* probs = nullptr;  // [batch, heads, len, len], from attention_*
  int64_t batch = 0, len = 0, hidden = 0, heads = 0;
  float scale = 1.0f;
  GemmPrecision precision = GemmPrecision::kFp32;
  float* dq = nullptr;         // [batch, len, hidden]
  float* dk = nullptr;         // [batch, len, hidden]
  float* dv = nullptr;         // [batch, len, hidden]
  float* dkey_bias = nullptr;  // [batch, len] or null
};

// ---- CPU (kernels/cpu/attention.cpp) ----
// Parallel over (b, h) (kernels/cpu/parallel.h); each calls sgemm_cpu on strided views (lda = hidden),
// single-threaded inside the parallel loop. kNoMemory when a workspace cannot be allocated,
// kBadShape for sizes that do not fit the contract; kOk otherwise.
Status attention_cpu(const AttentionArgs& args);
Status attention_grad_cpu(const AttentionGradArgs& args);

// ---- CUDA (kernels/cuda/attention.cu; kernels/cuda/no_cuda.cpp in CPU builds) ----
// Device pointers, the same semantics: per head a strided batched sgemm_cuda (cuBLAS) over the batch, and
// a warp-per-row softmax kernel between; queued on fd::device::stream(), no synchronisation.
Status attention_cuda(const AttentionArgs& args);
Status attention_grad_cuda(const AttentionGradArgs& args);

}  // namespace fd
