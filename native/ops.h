// The addon's exports, grouped by file. Ops registered through register_op run on host arrays and
// device buffers alike: loss_ops.cc (the losses), optimizer_ops.cc (AdamW, sum of squares),
// cpu_ops.cc (random ops; also the thread count), gemm_ops.cc (matrix products), nn_ops.cc
// (LayerNorm, GELU), math_ops.cc and shape_ops.cc (elementwise, reduction and layout kernels).
// cuda_ops.cc: device info, timing and math mode; host_buffers.cc: the 'native' backend's memory.
#pragma once
#include <napi.h>

namespace fd_native {
void register_loss_ops(Napi::Env env, Napi::Object exports);
void register_cpu_ops(Napi::Env env, Napi::Object exports);
void register_gemm_ops(Napi::Env env, Napi::Object exports);
void register_cuda_ops(Napi::Env env, Napi::Object exports);
void register_host_buffers(Napi::Env env, Napi::Object exports);
void register_math_ops(Napi::Env env, Napi::Object exports);
void register_shape_ops(Napi::Env env, Napi::Object exports);
void register_nn_ops(Napi::Env env, Napi::Object exports);         // nn_ops.cc: LayerNorm and GELU on host arrays
void register_optimizer_ops(Napi::Env env, Napi::Object exports);  // optimizer_ops.cc: AdamW and the sum of squares
void register_nccl_ops(Napi::Env env, Napi::Object exports);       // nccl_ops.cc: exports.cuda.nccl (collectives)
}  // namespace fd_native

namespace fd_native {
// The device buffer functions of exports.cuda (native/device_buffers.cc), called by register_cuda_ops.
void register_device_buffers(Napi::Object cuda);
}  // namespace fd_native
