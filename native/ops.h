// The addon's exports, grouped by file: loss_ops.cc (the losses on host arrays and device buffers),
// cpu_ops.cc (the optimizer, random ops and thread count), gemm_ops.cc (matrix
// products on host arrays), cuda_ops.cc (device info and timing), host_buffers.cc (the
// 'native' backend's tensor memory), math_ops.cc and shape_ops.cc (its elementwise, reduction and
// layout kernels).
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
void register_nn_ops(Napi::Env env, Napi::Object exports);  // nn_ops.cc: LayerNorm and GELU on host arrays
void register_optimizer_ops(Napi::Env env, Napi::Object exports);  // optimizer_ops.cc: AdamW and the sum of squares
}  // namespace fd_native

namespace fd_native {
// The device buffer functions of exports.cuda (native/device_buffers.cc), called by register_cuda_ops.
void register_device_buffers(Napi::Object cuda);
}  // namespace fd_native
