// The device API: device info, timing, the cuBLAS math mode and every loss on device buffers (the
// buffers themselves: native/device_buffers.cc; the tensor ops: the files that also register them
// on host arrays, through register_op). In a build without CUDA each call throws the kernels' "built
// without CUDA" message, unless the device is emulated (kernels/cuda/no_cuda.cpp).
#include <string>

#include "args.h"
#include "device.h"
#include "cpu/sgemm.h"
#include "losses.h"
#include "ops.h"

namespace fd_native {
namespace {

// A float32 device buffer of at least `floats` elements, or nullptr when optional and null (the
// losses' arguments: a buffer may be longer than the data it holds).
float* buffer_ptr(const Args& a, size_t i, const char* name, int64_t floats, bool optional = false) {
  if (optional && a.is_null(i)) return nullptr;
  if (i >= a.info.Length()) a.type_error(std::string(name) + " must be a device buffer handle");
  const DeviceBufferInfo& b = device_buffer(a, a.info[i], name);
  if (b.dtype != 0) a.type_error(std::string(name) + " must be a float32 device buffer, got a " + dtype_name(Place::kDevice, b.dtype));
  if (b.length < floats)
    a.range_error(std::string(name) + " must hold at least " + std::to_string(floats) + " floats, has " +
                  std::to_string(b.length));
  return static_cast<float*>(b.ptr);
}

Napi::Value BuiltWithCuda(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), fd::device::built_with_cuda());
}

Napi::Value IsAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), fd::device::init() == fd::kOk);
}

Napi::Value LastError(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), fd::device::last_error()); }

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

// rankingObjective(s, t|null, y|null, mask|null, rows, cols, weights, temperature, sigma, margin,
//                  grad|null, result): result receives 1 + 7 floats (total, then each part).
// The mask is trusted here (a device-side 0/1 check would cost a pass): check it on the host.
Napi::Value RankingObjective(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.rankingObjective", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    a.expect_count(12);
    fd::ObjectiveArgs o;
    const int64_t n = read_objective_scalars(a, o);
    o.s = buffer_ptr(a, 0, "s", n);
    o.t = buffer_ptr(a, 1, "t", n, !needs_teacher(o));
    o.y = buffer_ptr(a, 2, "y", n, !needs_labels(o));
    o.mask = buffer_ptr(a, 3, "mask", n, true);
    float* grad = buffer_ptr(a, 10, "grad", n, true);
    float* result = buffer_ptr(a, 11, "result", 1 + fd::kNumTerms);
    throw_status(a, fd::ranking_objective_cuda(o, grad, result));
    return info.Env().Undefined();
  });
}

// hiddenMSE(a, b, tokenMask|null, layers, batch, len, hidden, grad|null, loss)
Napi::Value HiddenMSE(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.hiddenMSE", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    a.expect_count(9);
    fd::FeatureArgs f;
    f.layers = a.size(3, "layers");
    f.batch = a.size(4, "batch");
    f.len = a.size(5, "len");
    f.hidden = a.size(6, "hidden");
    const int64_t n = checked_product(a, {f.layers, f.batch, f.len, f.hidden}, "hs");
    f.a = buffer_ptr(a, 0, "hs", n);
    f.b = buffer_ptr(a, 1, "ht", n);
    f.token_mask = buffer_ptr(a, 2, "tokenMask", f.batch * f.len, true);
    float* grad = buffer_ptr(a, 7, "grad", n, true);
    float* loss = buffer_ptr(a, 8, "loss", 1);
    throw_status(a, fd::hidden_mse_cuda(f, grad, loss));
    return info.Env().Undefined();
  });
}

// attentionMSE(a, b, tokenMask|null, batch, heads, len, grad|null, loss)
Napi::Value AttentionMSE(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.attentionMSE", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    a.expect_count(8);
    fd::FeatureArgs f;
    f.batch = a.size(3, "batch");
    f.heads = a.size(4, "heads");
    f.len = a.size(5, "len");
    const int64_t n = checked_product(a, {f.batch, f.heads, f.len, f.len}, "as");
    f.a = buffer_ptr(a, 0, "as", n);
    f.b = buffer_ptr(a, 1, "at", n);
    f.token_mask = buffer_ptr(a, 2, "tokenMask", f.batch * f.len, true);
    float* grad = buffer_ptr(a, 6, "grad", n, true);
    float* loss = buffer_ptr(a, 7, "loss", 1);
    throw_status(a, fd::attention_mse_cuda(f, grad, loss));
    return info.Env().Undefined();
  });
}

// scale(x, c, out, n): out[:n] = x[:n] * c
Napi::Value Scale(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.scale", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    a.expect_count(4);
    const int64_t n = a.size(3, "n");
    const float* x = buffer_ptr(a, 0, "x", n);
    const double c = a.number(1, "c");
    float* out = buffer_ptr(a, 2, "out", n);
    throw_status(a, fd::scale_cuda(x, static_cast<float>(c), out, n));
    return info.Env().Undefined();
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
      {"isAvailable", IsAvailable},   {"lastError", LastError},       {"deviceName", DeviceName},
      {"synchronize", Synchronize},   {"emptyCache", EmptyCache},     {"timerStart", TimerStart},
      {"timerStop", TimerStop},       {"rankingObjective", RankingObjective},
      {"hiddenMSE", HiddenMSE},       {"attentionMSE", AttentionMSE}, {"scale", Scale},
      {"setTF32", SetTF32},           {"getTF32", GetTF32},
  };
  for (const auto& [name, fn] : fns) cuda.Set(name, Napi::Function::New(env, fn, name));
  register_device_buffers(cuda);
}

}  // namespace fd_native
