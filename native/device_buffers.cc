// Device buffers: typed handles {ptr, dtype, length} in one table, so a stale or forged handle is an
// error, never a wild pointer. alloc/free/dtype/size, uploads and downloads of the matching typed
// array, device-to-device copies, and the memory statistics. Every op on device buffers finds its
// operands here (device_buffer, through operand_view in args.cc).
#include <cmath>
#include <string>
#include <unordered_map>

#include "args.h"
#include "device.h"
#include "elementwise.h"
#include "ops.h"

namespace fd_native {
namespace {

std::unordered_map<int64_t, DeviceBufferInfo> g_buffers;
int64_t g_next_handle = 1;

const char* const kDTypeNames[] = {"float32", "int32", "bool"};
int64_t elem_bytes(int dtype) { return dtype == fd::kU8 ? 1 : 4; }

int64_t handle_of(const Args& a, size_t i) { return static_cast<int64_t>(a.info[i].As<Napi::Number>().DoubleValue()); }

const DeviceBufferInfo& buffer_arg(const Args& a, size_t i, const char* name) {
  if (i >= a.info.Length()) a.type_error(std::string(name) + " must be a device buffer handle");
  return device_buffer(a, a.info[i], name);
}

// alloc(length, dtype = 'float32'): an uninitialised buffer of `length` >= 1 elements.
Napi::Value Alloc(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.alloc", [&](const Args& a) -> Napi::Value {
    a.expect_count(1);
    ensure_device(a);
    const int64_t length = a.size(0, "length");
    int dtype = fd::kF32;
    if (!a.is_null(1)) {
      if (!info[1].IsString()) a.type_error("dtype must be 'float32', 'int32' or 'bool'");
      const std::string s = info[1].As<Napi::String>().Utf8Value();
      dtype = s == "float32" ? fd::kF32 : s == "int32" ? fd::kI32 : s == "bool" ? fd::kU8 : -1;
      if (dtype < 0) a.range_error("dtype must be 'float32', 'int32' or 'bool', got '" + s + "'");
    }
    void* p = nullptr;
    throw_status(a, fd::device::alloc(static_cast<size_t>(length * elem_bytes(dtype)), &p));
    const int64_t h = g_next_handle++;
    g_buffers[h] = DeviceBufferInfo{p, dtype, length};
    return Napi::Number::New(info.Env(), static_cast<double>(h));
  });
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.free", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    a.expect_count(1);
    void* p = buffer_arg(a, 0, "buffer").ptr;
    g_buffers.erase(handle_of(a, 0));
    throw_status(a, fd::device::release(p));
    return info.Env().Undefined();
  });
}

Napi::Value BufferSize(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.size", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    a.expect_count(1);
    return Napi::Number::New(info.Env(), static_cast<double>(buffer_arg(a, 0, "buffer").length));
  });
}

Napi::Value BufferDType(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.dtype", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    a.expect_count(1);
    return Napi::String::New(info.Env(), kDTypeNames[buffer_arg(a, 0, "buffer").dtype]);
  });
}

// upload(buffer, src) / download(buffer, dst): the typed array of the buffer's dtype, 1..size
// elements (the first ones of the buffer).
Napi::Value Transfer(const Napi::CallbackInfo& info, bool to_device) {
  return guarded(info, to_device ? "cuda.upload" : "cuda.download", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    a.expect_count(2);
    const DeviceBufferInfo b = buffer_arg(a, 0, "buffer");
    const char* name = to_device ? "src" : "dst";
    const std::string expected = std::string(name) + " must be a " + dtype_name(Place::kHost, b.dtype) +
                                 " (the buffer is " + kDTypeNames[b.dtype] + ")";
    const TypedView host = typed_view(a, info[1], expected);
    if (dtype_of(host.type) != b.dtype) a.type_error(expected);
    if (host.length < 1 || host.length > b.length)
      a.range_error(std::string(name) + " must have 1.." + std::to_string(b.length) + " elements, has " +
                    std::to_string(host.length));
    if (host.data == nullptr) a.type_error(expected + ", got a buffer with no data");
    const size_t bytes = static_cast<size_t>(host.length * elem_bytes(b.dtype));
    throw_status(
        a, to_device ? fd::device::upload(b.ptr, host.data, bytes) : fd::device::download(host.data, b.ptr, bytes));
    return info.Env().Undefined();
  });
}
Napi::Value Upload(const Napi::CallbackInfo& info) { return Transfer(info, true); }
Napi::Value Download(const Napi::CallbackInfo& info) { return Transfer(info, false); }

// copy(dst, src, n): the first n elements of src into dst, same dtype, on the device's stream.
Napi::Value Copy(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.copy", [&](const Args& a) -> Napi::Value {
    ensure_device(a);
    a.expect_count(3);
    const DeviceBufferInfo dst = buffer_arg(a, 0, "dst");
    const DeviceBufferInfo src = buffer_arg(a, 1, "src");
    const int64_t n = a.size(2, "n");
    if (src.dtype != dst.dtype)
      a.type_error(std::string("src is a ") + kDTypeNames[src.dtype] + " buffer but dst is a " +
                   kDTypeNames[dst.dtype] + " buffer");
    if (n > src.length || n > dst.length)
      a.range_error("n = " + std::to_string(n) + " exceeds the size of " + (n > src.length ? "src" : "dst") + " (" +
                    std::to_string(n > src.length ? src.length : dst.length) + ")");
    if (src.ptr != dst.ptr) throw_status(a, fd::copy_cuda(dst.ptr, src.ptr, n * elem_bytes(src.dtype)));
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

}  // namespace

void ensure_device(const Args& a) { throw_status(a, fd::device::init()); }

const DeviceBufferInfo& device_buffer(const Args& a, napi_value v, const std::string& name) {
  const Napi::Value value(a.info.Env(), v);
  if (!value.IsNumber()) a.type_error(name + " must be a device buffer handle");
  const double h = value.As<Napi::Number>().DoubleValue();
  // The range check first: casting NaN or a huge double to int64 is undefined.
  if (!(h >= 1 && h < 9007199254740992.0) || h != std::floor(h))
    a.range_error(name + " is not a live device buffer handle");
  auto it = g_buffers.find(static_cast<int64_t>(h));
  if (it == g_buffers.end()) a.range_error(name + " is not a live device buffer handle (freed, or never allocated)");
  return it->second;
}

void register_device_buffers(Napi::Object cuda) {
  Napi::Env env = cuda.Env();
  const std::pair<const char*, Napi::Value (*)(const Napi::CallbackInfo&)> fns[] = {
      {"alloc", Alloc},   {"free", Free},         {"size", BufferSize}, {"dtype", BufferDType},
      {"upload", Upload}, {"download", Download}, {"copy", Copy},       {"memoryStats", MemoryStats},
  };
  for (const auto& [name, fn] : fns) cuda.Set(name, Napi::Function::New(env, fn, name));
}

}  // namespace fd_native
