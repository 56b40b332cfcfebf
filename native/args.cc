#include "args.h"

#include <cmath>
#include <cstdio>

#include "device.h"

namespace fd_native {

void Args::type_error(const std::string& what) const {
  throw Napi::TypeError::New(info.Env(), std::string("fused-distill: ") + fn + ": " + what);
}
void Args::range_error(const std::string& what) const {
  throw Napi::RangeError::New(info.Env(), std::string("fused-distill: ") + fn + ": " + what);
}

void Args::expect_count(size_t n) const {
  if (info.Length() < n)
    type_error("expected " + std::to_string(n) + " arguments, got " + std::to_string(info.Length()));
}

bool Args::is_null(size_t i) const { return i >= info.Length() || info[i].IsNull() || info[i].IsUndefined(); }

int64_t Args::size(size_t i, const char* name) const {
  if (i >= info.Length() || !info[i].IsNumber()) type_error(std::string(name) + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v) || v != std::floor(v) || v < 1 || v > static_cast<double>(kMaxElements))
    range_error(std::string(name) + " must be an integer in [1, 2^40], got " + std::to_string(v));
  return static_cast<int64_t>(v);
}

double Args::number(size_t i, const char* name) const {
  if (i >= info.Length() || !info[i].IsNumber()) type_error(std::string(name) + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v)) range_error(std::string(name) + " must be finite, got " + std::to_string(v));
  return v;
}

// Raw napi_get_typedarray_info rather than Napi::TypedArray::ArrayBuffer(): the wasm backend's heap
// can be a SharedArrayBuffer, which node-addon-api's ArrayBuffer accessors reject.
TypedView typed_view(const Args& a, napi_value v, const std::string& expected) {
  if (!Napi::Value(a.info.Env(), v).IsTypedArray()) a.type_error(expected);
  napi_env env = a.info.Env();
  TypedView t;
  size_t count = 0;
  napi_value buffer;
  if (napi_get_typedarray_info(env, v, &t.type, &count, &t.data, &buffer, nullptr) != napi_ok) a.type_error(expected);
  bool is_plain = false, detached = false;
  if (napi_is_arraybuffer(env, buffer, &is_plain) == napi_ok && is_plain &&
      napi_is_detached_arraybuffer(env, buffer, &detached) == napi_ok && detached)
    a.type_error(expected + ", got a detached buffer");
  t.length = static_cast<int64_t>(count);
  return t;
}

int dtype_of(napi_typedarray_type t) {
  return t == napi_float32_array ? 0 : t == napi_int32_array ? 1 : t == napi_uint8_array ? 2 : -1;
}

const char* dtype_name(Place place, int dtype) {
  if (place == Place::kDevice)
    return dtype == 0 ? "float32 device buffer" : dtype == 1 ? "int32 device buffer" : "bool device buffer";
  return dtype == 0 ? "Float32Array" : dtype == 1 ? "Int32Array" : "Uint8Array";
}

TypedView operand_view(const Args& a, napi_value v, const std::string& name, const std::string& expected) {
  if (a.place == Place::kHost) return typed_view(a, v, expected);
  if (!Napi::Value(a.info.Env(), v).IsNumber()) a.type_error(expected);
  const DeviceBufferInfo& b = device_buffer(a, v, name);
  static const napi_typedarray_type kTypes[] = {napi_float32_array, napi_int32_array, napi_uint8_array};
  TypedView t;
  t.type = kTypes[b.dtype];
  t.data = b.ptr;
  t.length = b.length;
  return t;
}

namespace {
// length < 0: any length, returned in *actual_length. Float32Arrays are operands (at a.place);
// Float64Arrays are always host arrays (offsets, the objective's parts).
template <class T>
T* typed(const Args& a, size_t i, const char* name, int64_t length, bool optional, napi_typedarray_type type,
         const char* type_name, int64_t* actual_length = nullptr) {
  if (optional && a.is_null(i)) return nullptr;
  const std::string expected = std::string(name) + " must be a " + type_name +
                               (length >= 0 ? " of length " + std::to_string(length) : std::string()) +
                               (optional ? " (or null)" : "");
  if (i >= a.info.Length()) a.type_error(expected);
  const TypedView view = type == napi_float64_array ? typed_view(a, a.info[i], expected)
                                                    : operand_view(a, a.info[i], name, expected);
  if (view.type != type) a.type_error(expected);
  const size_t count = static_cast<size_t>(view.length);
  void* data = view.data;
  if (length < 0) {
    *actual_length = static_cast<int64_t>(count);
    if (count == 0) return static_cast<T*>(data);
  } else if (static_cast<int64_t>(count) != length) {
    a.range_error(expected + ", got length " + std::to_string(count));
  }
  if (data == nullptr) a.type_error(expected + ", got a buffer with no data");
  return static_cast<T*>(data);
}
}  // namespace

float* Args::floats(size_t i, const char* name, int64_t length, bool optional) const {
  return typed<float>(*this, i, name, length, optional, napi_float32_array, dtype_name(place, 0));
}
float* Args::floats_any_length(size_t i, const char* name, int64_t* length) const {
  return typed<float>(*this, i, name, -1, false, napi_float32_array, dtype_name(place, 0), length);
}
int64_t Args::floats_length(size_t i, const char* name) const {
  const std::string expected = std::string(name) + " must be a " + dtype_name(place, 0);
  if (place == Place::kHost) {
    if (i >= info.Length() || !info[i].IsTypedArray()) type_error(expected);
    return static_cast<int64_t>(info[i].As<Napi::TypedArray>().ElementLength());
  }
  if (i >= info.Length()) type_error(expected);
  const TypedView v = operand_view(*this, info[i], name, expected);
  if (v.type != napi_float32_array) type_error(expected);
  return v.length;
}
double* Args::doubles(size_t i, const char* name, int64_t length, bool optional) const {
  return typed<double>(*this, i, name, length, optional, napi_float64_array, "Float64Array");
}

int64_t checked_product(const Args& a, std::initializer_list<int64_t> dims, const char* what) {
  int64_t p = 1;
  for (int64_t d : dims) {
    // p is 0 after a zero dimension (sgemm's k): no division then, the product stays 0.
    if (p != 0 && d > kMaxElements / p) a.range_error(std::string(what) + " has more than 2^40 elements");
    p *= d;
  }
  return p;
}

std::string js_number(float v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

void check_mask(const Args& a, const float* mask, int64_t n, const char* name) {
  int64_t bad = -1;
  float value = 0;
  if (a.place == Place::kHost) {
    if (fd::check_mask_cpu(mask, n, &bad) == fd::kOk) return;
    value = mask[bad];
  } else {
    // One kernel finds the first bad index; reading it (and the value) back synchronises, a cost
    // paid only by calls with a mask.
    const fd::Status st = fd::check_mask_cuda(mask, n, &bad);
    if (st == fd::kOk) return;
    if (st != fd::kBadMask) throw_status(a, st);
    throw_status(a, fd::device::download(&value, mask + bad, sizeof(float)));
  }
  a.range_error(std::string(name) + " must hold only 0 and 1, got " + js_number(value) + " at index " +
                std::to_string(bad));
}

void check_unit_labels(const Args& a, const float* y, const float* mask, int64_t n) {
  int64_t bad = -1;
  float value = 0;
  if (a.place == Place::kHost) {
    if (fd::check_unit_labels_cpu(y, mask, n, &bad) == fd::kOk) return;
    value = y[bad];
  } else {
    const fd::Status st = fd::check_unit_labels_cuda(y, mask, n, &bad);
    if (st == fd::kOk) return;
    if (st != fd::kBadLabel) throw_status(a, st);
    throw_status(a, fd::device::download(&value, y + bad, sizeof(float)));
  }
  a.range_error("y must hold labels in [0, 1] for pointwiseBCE, got " + js_number(value) + " at index " +
                std::to_string(bad));
}

void throw_status(const Args& a, fd::Status status, int64_t bytes) {
  switch (status) {
    case fd::kOk: return;
    case fd::kBadMask: a.range_error("mask must hold only 0 and 1");
    case fd::kBadShape: a.range_error("a size or leading dimension is out of range");
    case fd::kBadLabel: a.range_error("y holds a label outside its loss's domain");
    case fd::kNoMemory:
      a.range_error(bytes > 0 ? "out of memory: needs " + std::to_string(bytes) + " bytes" : "out of memory");
    default:
      throw Napi::Error::New(a.info.Env(), std::string("fused-distill: ") + a.fn + ": " + fd::device::last_error());
  }
}

bool overlaps(const void* a, int64_t na, const void* b, int64_t nb, int64_t elem_a, int64_t elem_b) {
  if (!a || !b) return false;
  const auto* pa = static_cast<const uint8_t*>(a);
  const auto* pb = static_cast<const uint8_t*>(b);
  return pa < pb + nb * elem_b && pb < pa + na * elem_a;
}

void check_no_overlap(const Args& a, const char* out_name, const void* out, int64_t n_out, int64_t elem_out,
                      std::initializer_list<std::pair<const float*, int64_t>> inputs) {
  for (const auto& [in, n] : inputs)
    if (overlaps(out, n_out, in, n, elem_out, 4))
      a.range_error(std::string(out_name) + " must not overlap an input or output");
}

namespace {
struct OpEntry {
  OpBody body;
  std::string fn;
  Place place;
};

Napi::Value call_op(const Napi::CallbackInfo& info) {
  const auto* e = static_cast<const OpEntry*>(info.Data());
  return guarded(info, e->fn.c_str(), [&](const Args& host) -> Napi::Value {
    const Args a{host.info, host.fn, e->place};
    if (a.place == Place::kDevice) ensure_device(a);
    return e->body(a);
  });
}
}  // namespace

Napi::Object cuda_exports(Napi::Env env, Napi::Object exports) {
  if (exports.Has("cuda")) {
    Napi::Value v = exports.Get("cuda");
    if (v.IsObject()) return v.As<Napi::Object>();
  }
  Napi::Object cuda = Napi::Object::New(env);
  exports.Set("cuda", cuda);
  return cuda;
}

void register_op(Napi::Env env, Napi::Object exports, const char* name, OpBody body) {
  Napi::Object cuda = cuda_exports(env, exports);
  for (Place place : {Place::kHost, Place::kDevice}) {
    const bool device = place == Place::kDevice;
    auto* e = new OpEntry{body, device ? std::string("cuda.") + name : std::string(name), place};
    Napi::Function f = Napi::Function::New(env, call_op, name, e);
    f.AddFinalizer([](Napi::Env, OpEntry* p) { delete p; }, e);
    (device ? cuda : exports).Set(name, f);
  }
}

}  // namespace fd_native
