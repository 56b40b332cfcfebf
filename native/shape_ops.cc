// Reductions, softmax and layout ops on host arrays (the 'native' backend's tensor memory) and, with
// the same checks, on device buffers (cuda.reduce etc., through register_op): argument checking
// only, the work is in kernels/cpu/ and the device's *_cuda. Tensors are Float32Array
// (float32), Int32Array (int32) or Uint8Array (bool), or device buffers of those dtypes; shapes, axes
// and permutations are plain arrays of integers. Every mismatch throws a TypeError/RangeError naming the argument,
// before any memory is touched; an output must not overlap an input. Plain arrays are read first, typed arrays last:
// reading an array element can run JS (a getter) that could free a buffer already looked at.
#include <cmath>
#include <string>
#include <vector>

#include "args.h"
#include "layout.h"
#include "ops.h"
#include "reduce.h"
#include "softmax.h"

namespace fd_native {
namespace {

using fd::DType;

struct Tensor {
  void* data = nullptr;
  DType type = fd::kF32;
  int64_t length = 0;
  int64_t bytes() const { return fd::elem_bytes(type); }
};

const char* type_name(const Args& a, DType t) { return dtype_name(a.place, static_cast<int>(t)); }

// Any Float32Array, Int32Array or Uint8Array that is not detached (it may be empty), or on the device
// a buffer of any dtype.
std::string any_tensor(const Args& a, const std::string& name) {
  return name + " must be a " + type_name(a, fd::kF32) + ", " + type_name(a, fd::kI32) + " or " + type_name(a, fd::kU8);
}

Tensor tensor_value(const Args& a, Napi::Value v, const std::string& name) {
  const std::string expected = any_tensor(a, name);
  const TypedView view = operand_view(a, v, name, expected);
  Tensor t;
  switch (view.type) {
    case napi_float32_array: t.type = fd::kF32; break;
    case napi_int32_array: t.type = fd::kI32; break;
    case napi_uint8_array: t.type = fd::kU8; break;
    default: a.type_error(expected);
  }
  if (view.length > 0 && view.data == nullptr) a.type_error(expected + ", got a buffer with no data");
  t.data = view.data;
  t.length = view.length;
  return t;
}

Tensor tensor(const Args& a, size_t i, const char* name) {
  if (i >= a.info.Length()) a.type_error(any_tensor(a, name));
  return tensor_value(a, a.info[i], name);
}

// A typed array of the given element type and length.
Tensor tensor_of(const Args& a, size_t i, const char* name, DType type, int64_t length) {
  const std::string expected = std::string(name) + " must be a " + type_name(a, type) + " of length " +
                               std::to_string(length);
  if (i >= a.info.Length() || !(a.place == Place::kHost ? a.info[i].IsTypedArray() : a.info[i].IsNumber()))
    a.type_error(expected);
  Tensor t = tensor(a, i, name);
  if (t.type != type) a.type_error(expected + ", got a " + type_name(a, t.type));
  if (t.length != length) a.range_error(expected + ", got length " + std::to_string(t.length));
  return t;
}

// An integer in [lo, hi].
int64_t integer(const Args& a, Napi::Value v, const std::string& name, int64_t lo, int64_t hi) {
  if (!v.IsNumber()) a.type_error(name + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < static_cast<double>(lo) || d > static_cast<double>(hi))
    a.range_error(name + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                  (std::isfinite(d) ? std::to_string(d) : std::string(std::isnan(d) ? "NaN" : "Infinity")));
  return static_cast<int64_t>(d);
}

// An array of integers in [lo, hi] of the given length (any length up to kMaxShapeRank if length < 0).
std::vector<int64_t> int_array(const Args& a, Napi::Value v, const char* name, int64_t lo, int64_t hi,
                               int64_t length = -1) {
  if (!v.IsArray()) a.type_error(std::string(name) + " must be an array of integers");
  Napi::Array arr = v.As<Napi::Array>();
  const int64_t n = arr.Length();
  if (length >= 0 && n != length)
    a.range_error(std::string(name) + " must have " + std::to_string(length) + " entries, got " + std::to_string(n));
  if (n > fd::kMaxShapeRank)
    a.range_error(std::string(name) + " has " + std::to_string(n) + " entries; at most " +
                  std::to_string(fd::kMaxShapeRank) + " axes are supported");
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    out[i] = integer(a, arr.Get(static_cast<uint32_t>(i)), std::string(name) + "[" + std::to_string(i) + "]", lo, hi);
  return out;
}

std::vector<int64_t> shape_arg(const Args& a, size_t i, const char* name) {
  if (i >= a.info.Length()) a.type_error(std::string(name) + " must be an array of integers");
  return int_array(a, a.info[i], name, 0, kMaxElements);
}

// Product of dims, RangeError past kMaxElements.
int64_t elements(const Args& a, const std::vector<int64_t>& dims, const char* what) {
  int64_t p = 1;
  for (int64_t d : dims) {
    if (d == 0) return 0;
  }
  for (int64_t d : dims) {
    if (d > kMaxElements / p) a.range_error(std::string(what) + " has more than 2^40 elements");
    p *= d;
  }
  return p;
}

void check_length(const Args& a, const Tensor& t, const char* name, int64_t expected, const char* shape_name) {
  if (t.length != expected)
    a.range_error(std::string(name) + " has length " + std::to_string(t.length) + " but " + shape_name + " describes " +
                  std::to_string(expected) + " elements");
}

void check_apart(const Args& a, const char* out_name, const Tensor& out, const Tensor& in) {
  if (overlaps(out.data, out.length, in.data, in.length, out.bytes(), in.bytes()))
    a.range_error(std::string(out_name) + " must not overlap an input");
}

// Axes in [-rank, rank), normalised; a duplicate is an error.
uint32_t axes_mask(const Args& a, size_t i, int rank) {
  if (i >= a.info.Length()) a.type_error("axes must be an array of integers");
  const std::vector<int64_t> axes = int_array(a, a.info[i], "axes", -rank, rank - 1);
  uint32_t mask = 0;
  for (int64_t ax : axes) {
    const int64_t n = ax < 0 ? ax + rank : ax;
    if ((mask >> n) & 1u) a.range_error("axes has axis " + std::to_string(n) + " twice");
    mask |= 1u << n;
  }
  return mask;
}

bool parse_op(const std::string& s, fd::ReduceOp* op) {
  static const char* const names[] = {"sum", "mean", "prod", "max", "min", "any", "all", "argMax", "argMin"};
  for (int k = 0; k < 9; ++k)
    if (s == names[k]) {
      *op = static_cast<fd::ReduceOp>(k);
      return true;
    }
  return false;
}

// reduce(op, x, shape, axes, out): op one of sum, mean, prod, max, min, any, all, argMax, argMin.
// out holds the kept axes; its type is fixed by op and x's type (see kernels/reduce.h).
Napi::Value Reduce(const Args& a) {
  const Napi::CallbackInfo& info = a.info;
  a.expect_count(5);
  if (!info[0].IsString()) a.type_error("op must be a string");
  const std::string op_name = info[0].As<Napi::String>().Utf8Value();
  fd::ReduceOp op;
  if (!parse_op(op_name, &op))
    a.range_error("op must be one of sum, mean, prod, max, min, any, all, argMax, argMin, got '" + op_name + "'");
  const std::vector<int64_t> shape = shape_arg(a, 2, "shape");
  const int rank = static_cast<int>(shape.size());
  const uint32_t mask = axes_mask(a, 3, rank);
  const Tensor x = tensor(a, 1, "x");
  check_length(a, x, "x", elements(a, shape, "shape"), "shape");
  if (x.length == 0) a.range_error("x must not be empty");
  const bool arg = op == fd::ReduceOp::kArgMax || op == fd::ReduceOp::kArgMin;
  if (arg && __builtin_popcount(mask) != 1) a.range_error(op_name + " needs exactly one axis");
  const int out_type = fd::reduce_output_type(op, x.type);
  if (out_type < 0) a.type_error(op_name + " does not support x of type " + type_name(a, x.type));
  int64_t kept = 1;
  for (int i = 0; i < rank; ++i)
    if (!((mask >> i) & 1u)) kept *= shape[i];
  const Tensor out = tensor_of(a, 4, "out", static_cast<DType>(out_type), kept);
  check_apart(a, "out", out, x);
  if (a.place == Place::kHost)
    fd::reduce_cpu(op, x.type, x.data, shape.data(), rank, mask, out.data);
  else
    throw_status(a, fd::reduce_cuda(op, x.type, x.data, shape.data(), rank, mask, out.data));
  return info.Env().Undefined();
}

// softmax(x, rows, cols, out, log?): row-wise (log-)softmax of x [rows, cols]; out may be x itself.
Napi::Value Softmax(const Args& a) {
  const Napi::CallbackInfo& info = a.info;
  a.expect_count(4);
  const int64_t rows = a.size(1, "rows");
  const int64_t cols = a.size(2, "cols");
  const int64_t n = checked_product(a, {rows, cols}, "x");
  float* x = a.floats(0, "x", n);
  float* out = a.floats(3, "out", n);
  const bool log = info.Length() > 4 && info[4].ToBoolean().Value();
  if (out != x && overlaps(out, n, x, n)) a.range_error("out must be x itself or not overlap it");
  if (a.place == Place::kHost)
    fd::softmax_cpu(x, rows, cols, out, log);
  else
    throw_status(a, fd::softmax_cuda(x, rows, cols, out, log));
  return info.Env().Undefined();
}

// transpose(x, shape, perm, out): out axis j is x axis perm[j].
Napi::Value Transpose(const Args& a) {
  const Napi::CallbackInfo& info = a.info;
  a.expect_count(4);
  const std::vector<int64_t> shape = shape_arg(a, 1, "shape");
  const int rank = static_cast<int>(shape.size());
  const std::vector<int64_t> p = int_array(a, info[2], "perm", 0, rank - 1, rank);
  const Tensor x = tensor(a, 0, "x");
  check_length(a, x, "x", elements(a, shape, "shape"), "shape");
  int perm[fd::kMaxShapeRank];
  uint32_t seen = 0;
  for (int j = 0; j < rank; ++j) {
    if ((seen >> p[j]) & 1u)
      a.range_error("perm must be a permutation of 0.." + std::to_string(rank - 1) + ", axis " + std::to_string(p[j]) +
                    " appears twice");
    seen |= 1u << p[j];
    perm[j] = static_cast<int>(p[j]);
  }
  const Tensor out = tensor_of(a, 3, "out", x.type, x.length);
  check_apart(a, "out", out, x);
  if (a.place == Place::kHost)
    fd::transpose_cpu(x.data, shape.data(), rank, perm, out.data, x.bytes());
  else if (x.length > 0)
    throw_status(a, fd::transpose_cuda(x.data, shape.data(), rank, perm, out.data, x.bytes()));
  return info.Env().Undefined();
}

// slice(x, shape, begin, size, out): out = x[begin : begin + size] on every axis.
Napi::Value Slice(const Args& a) {
  const Napi::CallbackInfo& info = a.info;
  a.expect_count(5);
  const std::vector<int64_t> shape = shape_arg(a, 1, "shape");
  const int rank = static_cast<int>(shape.size());
  const std::vector<int64_t> begin = int_array(a, info[2], "begin", 0, kMaxElements, rank);
  const std::vector<int64_t> size = int_array(a, info[3], "size", 0, kMaxElements, rank);
  const Tensor x = tensor(a, 0, "x");
  check_length(a, x, "x", elements(a, shape, "shape"), "shape");
  for (int i = 0; i < rank; ++i)
    if (begin[i] + size[i] > shape[i])
      a.range_error("begin[" + std::to_string(i) + "] + size[" + std::to_string(i) +
                    "] = " + std::to_string(begin[i] + size[i]) + " exceeds shape[" + std::to_string(i) +
                    "] = " + std::to_string(shape[i]));
  const Tensor out = tensor_of(a, 4, "out", x.type, elements(a, size, "size"));
  check_apart(a, "out", out, x);
  if (a.place == Place::kHost)
    fd::slice_cpu(x.data, shape.data(), rank, begin.data(), size.data(), out.data, x.bytes());
  else if (out.length > 0)
    throw_status(a, fd::slice_cuda(x.data, shape.data(), rank, begin.data(), size.data(), out.data, x.bytes()));
  return info.Env().Undefined();
}

// concat(inputs, shapes, axis, out): inputs (one element type) joined along axis; every shape has the
// same rank and equal dimensions except on axis.
Napi::Value Concat(const Args& a) {
  const Napi::CallbackInfo& info = a.info;
  a.expect_count(4);
  if (!info[0].IsArray()) a.type_error("inputs must be an array of typed arrays");
  if (!info[1].IsArray()) a.type_error("shapes must be an array of shapes");
  Napi::Array ins = info[0].As<Napi::Array>(), shp = info[1].As<Napi::Array>();
  const int64_t n = ins.Length();
  if (n < 1) a.range_error("inputs must not be empty");
  if (n > (int64_t{1} << 20)) a.range_error("inputs has more than 2^20 entries");
  if (static_cast<int64_t>(shp.Length()) != n)
    a.range_error("shapes has " + std::to_string(shp.Length()) + " entries for " + std::to_string(n) + " inputs");
  // Every array element is read (which may run JS: getters) before any typed array's memory is
  // taken, so nothing can detach a buffer between the checks and the copy.
  std::vector<Napi::Value> values(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) values[k] = ins.Get(static_cast<uint32_t>(k));
  std::vector<Tensor> tensors(static_cast<size_t>(n));
  std::vector<std::vector<int64_t>> shapes(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    const std::string nm = "shapes[" + std::to_string(k) + "]";
    shapes[k] = int_array(a, shp.Get(static_cast<uint32_t>(k)), nm.c_str(), 0, kMaxElements);
  }
  const int rank = static_cast<int>(shapes[0].size());
  if (rank < 1) a.range_error("shapes[0] must have rank >= 1");
  const int64_t axis = integer(a, info[2], "axis", -rank, rank - 1);
  const int ax = static_cast<int>(axis < 0 ? axis + rank : axis);
  std::vector<int64_t> out_shape = shapes[0];
  out_shape[ax] = 0;
  for (int64_t k = 0; k < n; ++k) {
    const std::string nm = "shapes[" + std::to_string(k) + "]";
    if (static_cast<int>(shapes[k].size()) != rank)
      a.range_error(nm + " has rank " + std::to_string(shapes[k].size()) + ", shapes[0] has rank " +
                    std::to_string(rank));
    for (int i = 0; i < rank; ++i)
      if (i != ax && shapes[k][i] != shapes[0][i])
        a.range_error(nm + "[" + std::to_string(i) + "] = " + std::to_string(shapes[k][i]) +
                      " differs from shapes[0][" + std::to_string(i) + "] = " + std::to_string(shapes[0][i]));
    out_shape[ax] += shapes[k][ax];
    if (out_shape[ax] > kMaxElements) a.range_error("the output has more than 2^40 elements");
  }
  const int64_t total = elements(a, out_shape, "the output");
  for (int64_t k = 0; k < n; ++k) {
    const std::string nm = "inputs[" + std::to_string(k) + "]";
    Tensor& t = tensors[k];
    t = tensor_value(a, values[k], nm);
    if (t.type != tensors[0].type)
      a.type_error(nm + " is a " + type_name(a, t.type) + " but inputs[0] is a " + type_name(a, tensors[0].type));
    const int64_t expected = elements(a, shapes[k], nm.c_str());
    if (t.length != expected)
      a.range_error(nm + " has length " + std::to_string(t.length) + " but shapes[" + std::to_string(k) +
                    "] describes " + std::to_string(expected) + " elements");
  }
  const Tensor out = tensor_of(a, 3, "out", tensors[0].type, total);
  for (const Tensor& t : tensors) check_apart(a, "out", out, t);
  int64_t outer = 1;
  for (int i = 0; i < ax; ++i) outer *= out_shape[i];
  std::vector<const void*> ptrs;
  std::vector<int64_t> inner;
  for (int64_t k = 0; k < n; ++k) {
    if (tensors[k].length == 0) continue;
    ptrs.push_back(tensors[k].data);
    inner.push_back(outer == 0 ? 0 : tensors[k].length / outer);
  }
  if (total > 0) {
    if (a.place == Place::kHost)
      fd::concat_cpu(ptrs.data(), inner.data(), static_cast<int>(ptrs.size()), outer, out.data, out.bytes());
    else
      throw_status(
          a, fd::concat_cuda(ptrs.data(), inner.data(), static_cast<int>(ptrs.size()), outer, out.data, out.bytes()));
  }
  return info.Env().Undefined();
}

// tile(x, shape, reps, out): out has shape[i] * reps[i] on axis i.
Napi::Value Tile(const Args& a) {
  const Napi::CallbackInfo& info = a.info;
  a.expect_count(4);
  const std::vector<int64_t> shape = shape_arg(a, 1, "shape");
  const int rank = static_cast<int>(shape.size());
  const std::vector<int64_t> reps = int_array(a, info[2], "reps", 0, kMaxElements, rank);
  const Tensor x = tensor(a, 0, "x");
  check_length(a, x, "x", elements(a, shape, "shape"), "shape");
  std::vector<int64_t> out_shape(static_cast<size_t>(rank));
  for (int i = 0; i < rank; ++i) {
    if (shape[i] > 0 && reps[i] > kMaxElements / shape[i]) a.range_error("the output has more than 2^40 elements");
    out_shape[i] = shape[i] * reps[i];
  }
  const Tensor out = tensor_of(a, 3, "out", x.type, elements(a, out_shape, "the output"));
  check_apart(a, "out", out, x);
  if (out.length > 0) {
    if (a.place == Place::kHost)
      fd::tile_cpu(x.data, shape.data(), rank, reps.data(), out.data, x.bytes());
    else
      throw_status(a, fd::tile_cuda(x.data, shape.data(), rank, reps.data(), out.data, x.bytes()));
  }
  return info.Env().Undefined();
}

// pad(x, shape, before, after, value, out): out = x with before[i] / after[i] elements of value added
// on each side of axis i; value is a typed array of x's element type and length 1 (its conversion
// from a JS number is the typed array's own). Host arrays only (the 'cuda' backend pads with fill and
// concat).
Napi::Value Pad(const Args& a) {
  const Napi::CallbackInfo& info = a.info;
  a.expect_count(6);
  if (a.place != Place::kHost)
    a.type_error("pad runs on host arrays only (the 'cuda' backend pads with cuda.fill and cuda.concat)");
  const std::vector<int64_t> shape = shape_arg(a, 1, "shape");
  const int rank = static_cast<int>(shape.size());
  const std::vector<int64_t> before = int_array(a, info[2], "before", 0, kMaxElements, rank);
  const std::vector<int64_t> after = int_array(a, info[3], "after", 0, kMaxElements, rank);
  const Tensor x = tensor(a, 0, "x");
  check_length(a, x, "x", elements(a, shape, "shape"), "shape");
  const Tensor value = tensor_of(a, 4, "value", x.type, 1);
  std::vector<int64_t> out_shape(static_cast<size_t>(rank));
  for (int i = 0; i < rank; ++i) {
    if (before[i] > kMaxElements - shape[i] - after[i]) a.range_error("the output has more than 2^40 elements");
    out_shape[i] = shape[i] + before[i] + after[i];
  }
  const Tensor out = tensor_of(a, 5, "out", x.type, elements(a, out_shape, "the output"));
  check_apart(a, "out", out, x);
  fd::pad_cpu(x.data, shape.data(), rank, before.data(), after.data(), value.data, out.data, x.bytes());
  return info.Env().Undefined();
}

// gather(x, dims, indices, out): tfjs's GatherV2 with x viewed as dims = [batch, outer, dim, slice]
// and indices as [batch, n]: out[b, o, i, :] = x[b, o, indices[b, i], :].
Napi::Value Gather(const Args& a) {
  const Napi::CallbackInfo& info = a.info;
  a.expect_count(4);
  const std::vector<int64_t> d = int_array(a, info[1], "dims", 0, kMaxElements, 4);
  const Tensor x = tensor(a, 0, "x");
  const int64_t batch = d[0], outer = d[1], dim = d[2], slice = d[3];
  if (batch < 1) a.range_error("dims[0] (batch) must be >= 1");
  check_length(a, x, "x", elements(a, d, "dims"), "dims");
  const Tensor idx = tensor(a, 2, "indices");
  if (idx.type != fd::kI32)
    a.type_error(std::string("indices must be an ") + type_name(a, fd::kI32) + ", got a " + type_name(a, idx.type));
  if (idx.length % batch != 0)
    a.range_error("indices has length " + std::to_string(idx.length) + ", not a multiple of the batch " +
                  std::to_string(batch));
  const int64_t n = idx.length / batch;
  const int64_t total = elements(a, {batch, outer, n, slice}, "the output");
  const Tensor out = tensor_of(a, 3, "out", x.type, total);
  check_apart(a, "out", out, x);
  check_apart(a, "out", out, idx);
  const int32_t* ind = static_cast<const int32_t*>(idx.data);
  if (a.place == Place::kHost) {
    const int64_t bad = fd::first_out_of_range(ind, idx.length, dim);
    if (bad >= 0)
      a.range_error("indices[" + std::to_string(bad) + "] = " + std::to_string(ind[bad]) + " is out of range [0, " +
                    std::to_string(dim) + ")");
    fd::gather_cpu(x.data, batch, outer, dim, slice, ind, n, out.data, x.bytes());
  } else if (total > 0) {
    // No bounds check on the device (it would cost a host sync): an out-of-range index gives zeros.
    throw_status(a, fd::gather_cuda(x.data, batch, outer, dim, slice, ind, n, out.data, x.bytes()));
  }
  return info.Env().Undefined();
}

// unsortedSegmentSum(x, rows, cols, segmentIds, numSegments, out): out [numSegments, cols], row s the
// sum of the rows of x [rows, cols] whose id is s; ids outside [0, numSegments) are dropped.
Napi::Value UnsortedSegmentSum(const Args& a) {
  const Napi::CallbackInfo& info = a.info;
  a.expect_count(6);
  const int64_t rows = a.size(1, "rows");
  const int64_t cols = a.size(2, "cols");
  const int64_t segments = a.size(4, "numSegments");
  const int64_t n = checked_product(a, {rows, cols}, "x");
  const int64_t m = checked_product(a, {segments, cols}, "out");
  const Tensor x = tensor_of(a, 0, "x", fd::kF32, n);
  const Tensor ids = tensor_of(a, 3, "segmentIds", fd::kI32, rows);
  const Tensor out = tensor_of(a, 5, "out", fd::kF32, m);
  check_apart(a, "out", out, x);
  check_apart(a, "out", out, ids);
  const auto* xf = static_cast<const float*>(x.data);
  const auto* id = static_cast<const int32_t*>(ids.data);
  auto* of = static_cast<float*>(out.data);
  if (a.place == Place::kHost)
    fd::unsorted_segment_sum_cpu(xf, rows, cols, id, segments, of);
  else
    throw_status(a, fd::unsorted_segment_sum_cuda(xf, rows, cols, id, segments, of));
  return info.Env().Undefined();
}

}  // namespace

void register_shape_ops(Napi::Env env, Napi::Object exports) {
  register_op(env, exports, "reduce", Reduce);
  register_op(env, exports, "softmax", Softmax);
  register_op(env, exports, "transpose", Transpose);
  register_op(env, exports, "slice", Slice);
  register_op(env, exports, "pad", Pad);
  register_op(env, exports, "concat", Concat);
  register_op(env, exports, "tile", Tile);
  register_op(env, exports, "gather", Gather);
  register_op(env, exports, "unsortedSegmentSum", UnsortedSegmentSum);
}

}  // namespace fd_native
