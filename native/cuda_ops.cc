// The device API: buffers on the GPU named by integer handles (so a stale or forged handle is an
// error, never a wild pointer), uploads/downloads, timing, and every loss on device buffers.
// In a build without CUDA each call throws the kernels' "built without CUDA" message.
#include <string>
#include <unordered_map>

#include "args.h"
#include "device.h"
#include "losses.h"
#include "ops.h"

namespace fd_native {
namespace {

struct DeviceBuffer {
  float* ptr;
  int64_t floats;
};
std::unordered_map<int64_t, DeviceBuffer> g_buffers;
int64_t g_next_handle = 1;

void ensure_device(const Args& a) { throw_status(a, fd::device::init()); }

DeviceBuffer& buffer(const Args& a, size_t i, const char* name) {
  if (i >= a.info.Length() || !a.info[i].IsNumber()) a.type_error(std::string(name) + " must be a device buffer handle");
  const double h = a.info[i].As<Napi::Number>().DoubleValue();
  auto it = g_buffers.find(static_cast<int64_t>(h));
  if (h != static_cast<double>(static_cast<int64_t>(h)) || it == g_buffers.end())
    a.range_error(std::string(name) + " is not a live device buffer handle");
  return it->second;
}

// A device buffer of at least `floats` floats, or nullptr when optional and null.
float* buffer_ptr(const Args& a, size_t i, const char* name, int64_t floats, bool optional = false) {
  if (optional && a.is_null(i)) return nullptr;
  DeviceBuffer& b = buffer(a, i, name);
  if (b.floats < floats)
    a.range_error(std::string(name) + " must hold at least " + std::to_string(floats) + " floats, has " +
                  std::to_string(b.floats));
  return b.ptr;
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

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.alloc", [&](const Args& a) -> Napi::Value {
    a.expect_count(1);
    ensure_device(a);
    const int64_t floats = a.size(0, "floats");
    void* p = nullptr;
    throw_status(a, fd::device::alloc(static_cast<size_t>(floats) * sizeof(float), &p));
    const int64_t h = g_next_handle++;
    g_buffers[h] = DeviceBuffer{static_cast<float*>(p), floats};
    return Napi::Number::New(info.Env(), static_cast<double>(h));
  });
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.free", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    a.expect_count(1);
    DeviceBuffer& b = buffer(a, 0, "buffer");
    void* p = b.ptr;
    g_buffers.erase(static_cast<int64_t>(a.info[0].As<Napi::Number>().DoubleValue()));
    throw_status(a, fd::device::release(p));
    return info.Env().Undefined();
  });
}

Napi::Value BufferSize(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.size", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    a.expect_count(1);
    return Napi::Number::New(info.Env(), static_cast<double>(buffer(a, 0, "buffer").floats));
  });
}

// upload(buffer, src) / download(buffer, dst): the host array may be shorter than the buffer.
Napi::Value Copy(const Napi::CallbackInfo& info, bool to_device) {
  return guarded(info, to_device ? "cuda.upload" : "cuda.download", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    a.expect_count(2);
    DeviceBuffer& b = buffer(a, 0, "buffer");
    if (!a.info[1].IsTypedArray()) a.type_error(std::string(to_device ? "src" : "dst") + " must be a Float32Array");
    const int64_t n = static_cast<int64_t>(a.info[1].As<Napi::TypedArray>().ElementLength());
    if (n < 1 || n > b.floats)
      a.range_error(std::string(to_device ? "src" : "dst") + " must have 1.." + std::to_string(b.floats) +
                    " elements, has " + std::to_string(n));
    float* host = a.floats(1, to_device ? "src" : "dst", n);
    const size_t bytes = static_cast<size_t>(n) * sizeof(float);
    throw_status(a, to_device ? fd::device::upload(b.ptr, host, bytes) : fd::device::download(host, b.ptr, bytes));
    return info.Env().Undefined();
  });
}
Napi::Value Upload(const Napi::CallbackInfo& info) { return Copy(info, true); }
Napi::Value Download(const Napi::CallbackInfo& info) { return Copy(info, false); }

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.synchronize", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    throw_status(a, fd::device::synchronize());
    return info.Env().Undefined();
  });
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.memoryStats", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    size_t in_use = 0, cached = 0;
    throw_status(a, fd::device::memory_stats(&in_use, &cached));
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("bytesInUse", static_cast<double>(in_use));
    o.Set("bytesCached", static_cast<double>(cached));
    o.Set("buffers", static_cast<double>(g_buffers.size()));
    return o;
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

}  // namespace

void register_cuda_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("builtWithCuda", Napi::Function::New(env, BuiltWithCuda, "builtWithCuda"));
  Napi::Object cuda = Napi::Object::New(env);
  const std::pair<const char*, Napi::Value (*)(const Napi::CallbackInfo&)> fns[] = {
      {"isAvailable", IsAvailable},   {"lastError", LastError},       {"deviceName", DeviceName},
      {"alloc", Alloc},               {"free", Free},                 {"size", BufferSize},
      {"upload", Upload},             {"download", Download},         {"synchronize", Synchronize},
      {"memoryStats", MemoryStats},   {"emptyCache", EmptyCache},     {"timerStart", TimerStart},
      {"timerStop", TimerStop},       {"rankingObjective", RankingObjective},
      {"hiddenMSE", HiddenMSE},       {"attentionMSE", AttentionMSE}, {"scale", Scale},
  };
  for (const auto& [name, fn] : fns) cuda.Set(name, Napi::Function::New(env, fn, name));
  exports.Set("cuda", cuda);
}

}  // namespace fd_native
