// The device API: device info, timing and the cuBLAS math mode (the buffers themselves:
// native/device_buffers.cc; the losses and tensor ops: the files that also register them on host
// arrays, through register_op). In a build without CUDA each call throws the kernels' "built
// without CUDA" message, unless the device is emulated (kernels/cuda/no_cuda.cpp).
#include <string>

#include "args.h"
#include "device.h"
#include "gemm.h"
#include "losses.h"
#include "ops.h"

namespace fd_native {
namespace {

Napi::Value BuiltWithCuda(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), fd::device::built_with_cuda());
}

Napi::Value IsAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), fd::device::init() == fd::kOk);
}

Napi::Value LastError(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), fd::device::last_error());
}

Napi::Value DeviceName(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.deviceName", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    return Napi::String::New(info.Env(), fd::device::name());
  });
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.synchronize", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    throw_status(a, fd::device::synchronize());
    return info.Env().Undefined();
  });
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.emptyCache", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    throw_status(a, fd::device::empty_cache());
    return info.Env().Undefined();
  });
}

Napi::Value TimerStart(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.timerStart", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    throw_status(a, fd::device::timer_start());
    return info.Env().Undefined();
  });
}

Napi::Value TimerStop(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.timerStop", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    float ms = 0;
    throw_status(a, fd::device::timer_stop(&ms));
    return Napi::Number::New(info.Env(), ms);
  });
}

// setTF32(on): sgemm on the device may use TF32 tensor cores (true) or strict fp32 (false, the default).
Napi::Value SetTF32(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.setTF32", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    a.expect_count(1);
    if (!info[0].IsBoolean()) a.type_error("on must be a boolean");
    throw_status(a, fd::set_tf32_cuda(info[0].As<Napi::Boolean>().Value()));
    return info.Env().Undefined();
  });
}

// getTF32(): the math mode sgemm on the device uses now (what setTF32 last set).
Napi::Value GetTF32(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.getTF32", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    bool on = false;
    throw_status(a, fd::tf32_cuda(&on));
    return Napi::Boolean::New(info.Env(), on);
  });
}

}  // namespace

void register_cuda_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("builtWithCuda", Napi::Function::New(env, BuiltWithCuda, "builtWithCuda"));
  Napi::Object cuda = cuda_exports(env, exports);
  const std::pair<const char*, Napi::Value (*)(const Napi::CallbackInfo&)> fns[] = {
      {"isAvailable", IsAvailable}, {"lastError", LastError},   {"deviceName", DeviceName},
      {"synchronize", Synchronize}, {"emptyCache", EmptyCache}, {"timerStart", TimerStart},
      {"timerStop", TimerStop},     {"setTF32", SetTF32},       {"getTF32", GetTF32},
  };
  for (const auto& [name, fn] : fns) cuda.Set(name, Napi::Function::New(env, fn, name));
  register_device_buffers(cuda);
}

}  // namespace fd_native
