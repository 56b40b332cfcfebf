// The N-API boundary of fused-distill: argument checking, typed-array unpacking and error mapping
// only; the math is in kernels/.
#include <napi.h>

#include "ops.h"

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  fd_native::register_cpu_ops(env, exports);
  fd_native::register_cuda_ops(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(fused_distill, Init)
