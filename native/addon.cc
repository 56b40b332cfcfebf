// The N-API boundary of fused-distill: argument checking, typed-array unpacking and error mapping
// only; the math is in kernels/.
#include <napi.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <cstdlib>

#include "args.h"
#include "elementwise.h"
#include "tensor.h"
#include "losses.h"
#include "ops.h"

namespace {

// tfjs's 'cpu' backend gives every op output a fresh ArrayBuffer and frees it only at garbage
// collection. With glibc's defaults, multi-MB buffers come from mmap and go back to the OS on free,
// so every gradient is written into never-touched pages: measured here, a 6 MB gradient cost ~1,540
// page faults and ~2 ms against 0.15 ms for the kernel. Keeping blocks up to 32 MB on the heap and not
// trimming it below 512 MB lets freed buffers be reused warm (hiddenMSE 16x128x768 through tfjs:
// 2.0 ms -> 0.4-0.6 ms). This is process-wide, like the MALLOC_*_ environment variables it mirrors; set
// FUSED_DISTILL_KEEP_MALLOC=1 to leave glibc's settings alone.
void tune_malloc() {
#if defined(__GLIBC__)
  if (std::getenv("FUSED_DISTILL_KEEP_MALLOC")) return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
}

// The contract's constants the TypeScript side mirrors (src/native.ts checks them at load).
Napi::Object constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  Napi::Array terms = Napi::Array::New(env, fd::kNumTerms);
  for (uint32_t k = 0; k < fd::kNumTerms; ++k) terms.Set(k, Napi::String::New(env, fd::kTermNames[k]));
  c.Set("termNames", terms);
  c.Set("maxElements", Napi::Number::New(env, static_cast<double>(fd_native::kMaxElements)));
  c.Set("elementwiseMaxRank", Napi::Number::New(env, fd::kMaxRank));
  c.Set("shapeMaxRank", Napi::Number::New(env, fd::kMaxShapeRank));
  return c;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  tune_malloc();
  exports.Set("constants", constants(env));
  fd_native::register_loss_ops(env, exports);
  fd_native::register_cpu_ops(env, exports);
  fd_native::register_gemm_ops(env, exports);
  fd_native::register_cuda_ops(env, exports);
  fd_native::register_host_buffers(env, exports);
  fd_native::register_math_ops(env, exports);
  fd_native::register_shape_ops(env, exports);
  fd_native::register_nn_ops(env, exports);
  fd_native::register_optimizer_ops(env, exports);
  fd_native::register_nccl_ops(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(fused_distill, Init)
