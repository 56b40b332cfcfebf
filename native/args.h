// Argument checking and typed-array unpacking for the addon's functions. Every check throws a
// JS TypeError/RangeError naming the function, the argument and what was expected; nothing here
// can crash the process.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

#include "losses.h"

namespace fd_native {

// Largest element count any argument may describe: far above real use, far below int64 overflow
// when multiplied by 4 bytes or by another dimension.
constexpr int64_t kMaxElements = int64_t{1} << 40;

// Where an op's tensors live: host typed arrays (exports.X) or device buffer handles (exports.cuda.X).
// One op body serves both (register_op): only the operand reading and the kernel called differ.
enum class Place { kHost, kDevice };

struct Args {
  const Napi::CallbackInfo& info;
  const char* fn;  // the JS function's name, for messages
  Place place = Place::kHost;

  [[noreturn]] void type_error(const std::string& what) const;
  [[noreturn]] void range_error(const std::string& what) const;

  void expect_count(size_t n) const;  // at least n arguments
  bool is_null(size_t i) const;       // null or undefined
  // A positive integer size (1 .. kMaxElements).
  int64_t size(size_t i, const char* name) const;
  // A finite number.
  double number(size_t i, const char* name) const;
  // A float32 operand (a Float32Array, or on the device a float32 buffer) of exactly `length`
  // elements, not detached. optional: null/undefined gives nullptr.
  float* floats(size_t i, const char* name, int64_t length, bool optional = false) const;
  // A float32 operand of any length; *length receives it. The data pointer may be null only when the
  // length is 0.
  float* floats_any_length(size_t i, const char* name, int64_t* length) const;
  // The length of the float32 operand at i (TypeError "<name> must be a Float32Array" otherwise).
  int64_t floats_length(size_t i, const char* name) const;
  // A host Float64Array of exactly `length` elements (optional like floats), on either place.
  double* doubles(size_t i, const char* name, int64_t length, bool optional = false) const;
};

// A typed array's element type, data and length, checked not detached; throws a TypeError with
// `expected` when v is not a typed array. The one place the addon unpacks typed arrays.
struct TypedView {
  napi_typedarray_type type;
  void* data = nullptr;
  int64_t length = 0;
};
TypedView typed_view(const Args& a, napi_value v, const std::string& expected);

// An op's tensor argument at a.place: a typed array on the host (typed_view), a device buffer handle
// on the device, whose dtype is reported as the matching typed array type (float32 ->
// napi_float32_array, int32 -> napi_int32_array, bool -> napi_uint8_array) and whose size as the
// length. Throws TypeError `expected` for the wrong kind of value, RangeError for a dead handle.
TypedView operand_view(const Args& a, napi_value v, const std::string& name, const std::string& expected);
// What a tensor of element type `dtype` (0 float32, 1 int32, 2 bool: fd::DType) is
// called at a place, for messages: "Float32Array" / "float32 device buffer", etc.
const char* dtype_name(Place place, int dtype);
// The dtype of a typed array type (-1 for the other typed arrays).
int dtype_of(napi_typedarray_type t);

// A device buffer handle's entry (native/device_buffers.cc): TypeError naming `name` when v is not a
// number, RangeError when it names no live buffer.
struct DeviceBufferInfo {
  void* ptr;
  int dtype;       // 0 float32, 1 int32, 2 bool
  int64_t length;  // elements
};
const DeviceBufferInfo& device_buffer(const Args& a, napi_value v, const std::string& name);
// Throws the device's error (built without CUDA, no device) unless it answers.
void ensure_device(const Args& a);

// Registers an op body twice: exports[name] on host arrays and exports.cuda[name] (named
// "cuda.<name>" in messages) on device buffers; the device entry checks the device first.
using OpBody = Napi::Value (*)(const Args&);
void register_op(Napi::Env env, Napi::Object exports, const char* name, OpBody body);
// exports.cuda, created on first use (the registration order of the files does not matter).
Napi::Object cuda_exports(Napi::Env env, Napi::Object exports);

// rows * cols (etc.) with an overflow check against kMaxElements.
int64_t checked_product(const Args& a, std::initializer_list<int64_t> dims, const char* what);

// Throws a RangeError naming `name` and the first value other than 0 or 1 in mask, with its index: on
// the host arrays or the device buffers of a.place.
void check_mask(const Args& a, const float* mask, int64_t n, const char* name);
// Throws a RangeError naming the first label of a valid entry outside [0, 1] (pointwiseBCE's domain;
// NaN passes, to propagate), with its index and value: at a.place, like check_mask.
void check_unit_labels(const Args& a, const float* y, const float* mask, int64_t n);
// A float as JavaScript prints it (2, 0.5, NaN, -Infinity), for messages.
std::string js_number(float v);

// True when the float arrays [a, a+na) and [b, b+nb) share memory (null never overlaps).
bool overlaps(const void* a, int64_t na, const void* b, int64_t nb, int64_t elem_a = 4, int64_t elem_b = 4);
// Throws a RangeError when `out` (n_out elements of elem_out bytes) overlaps any of the n-float inputs.
void check_no_overlap(const Args& a, const char* out_name, const void* out, int64_t n_out, int64_t elem_out,
                      std::initializer_list<std::pair<const float*, int64_t>> inputs);

// Throws a JS Error for a failed kernel status (CUDA's message included). kNoMemory is a RangeError
// "out of memory: needs <bytes> bytes" when the kernel reported the bytes it needed.
void throw_status(const Args& a, fd::Status status, int64_t bytes = 0);

// Runs body, turning any C++ exception that is not already a JS error into one, so that nothing
// escapes into Node as an abort.
template <class Body>
Napi::Value guarded(const Napi::CallbackInfo& info, const char* fn, Body&& body) {
  try {
    return body(Args{info, fn});
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(info.Env(), std::string("fused-distill: ") + fn + ": out of memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string("fused-distill: ") + fn + ": " + e.what());
  }
}

}  // namespace fd_native
