// Elementwise tensor ops for the 'native' tfjs backend: binaryOp (broadcasting), unaryOp, cast and
// fill on typed arrays (Float32Array = float32, Int32Array = int32, Uint8Array = bool), written in
// place into `out`; the same ops on device buffers as cuda.binaryOp etc. (register_op: one set of
// checks, a buffer's dtype in the typed array's place). Opcodes keep the surface small; their numbers
// are exported as mathOps so JS never hard-codes them. Argument checking only: the math is
// kernels/cpu/elementwise_*.cpp and the device's *_cuda.
#include <cmath>
#include <string>

#include "args.h"
#include "elementwise.h"
#include "ops.h"

namespace fd_native {
namespace {

int64_t elem_bytes(int t) { return t == fd::kU8 ? 1 : 4; }

struct Typed {
  int type = -1;
  void* data = nullptr;
  int64_t length = 0;
};

// A Float32Array, Int32Array or Uint8Array (`allowed` is a bit set of fd::DType), not detached; on the
// device, a buffer of those dtypes.
Typed typed_any(const Args& a, size_t i, const char* name, unsigned allowed) {
  std::string expected = std::string(name) + " must be a";
  bool first = true;
  for (int t = fd::kF32; t <= fd::kU8; ++t) {
    if (!(allowed & (1u << t))) continue;
    expected += std::string(first ? " " : " or ") + dtype_name(a.place, t);
    first = false;
  }
  if (i >= a.info.Length()) a.type_error(expected);
  const TypedView view = operand_view(a, a.info[i], name, expected);
  Typed t;
  t.type = dtype_of(view.type);
  if (t.type < 0 || !(allowed & (1u << t.type))) a.type_error(expected);
  t.data = view.data;
  t.length = view.length;
  if (t.length > 0 && t.data == nullptr) a.type_error(expected + ", got a buffer with no data");
  return t;
}

constexpr unsigned kAnyType = 7u;

void expect_length(const Args& a, const Typed& t, const char* name, int64_t length) {
  if (t.length != length)
    a.range_error(std::string(name) + " must have " + std::to_string(length) + " elements, got " +
                  std::to_string(t.length));
}

// A shape: an array of at most fd::kMaxRank integers in [0, 2^40]; returns the element count.
int64_t read_shape(const Args& a, size_t i, const char* name, int64_t* dims, int* rank) {
  if (i >= a.info.Length() || !a.info[i].IsArray()) a.type_error(std::string(name) + " must be an array of dimensions");
  Napi::Array arr = a.info[i].As<Napi::Array>();
  const uint32_t r = arr.Length();
  if (r > static_cast<uint32_t>(fd::kMaxRank))
    a.range_error(std::string(name) + " has rank " + std::to_string(r) + ", more than " + std::to_string(fd::kMaxRank));
  int64_t total = 1;
  for (uint32_t k = 0; k < r; ++k) {
    Napi::Value v = arr.Get(k);
    const std::string what = std::string(name) + "[" + std::to_string(k) + "]";
    if (!v.IsNumber()) a.type_error(what + " must be a number");
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || d < 0 || d > static_cast<double>(kMaxElements))
      a.range_error(what + " must be an integer in [0, 2^40], got " + std::to_string(d));
    dims[k] = static_cast<int64_t>(d);
    if (dims[k] != 0 && total > kMaxElements / dims[k])
      a.range_error(std::string(name) + " has more than 2^40 elements");
    total *= dims[k];
  }
  *rank = static_cast<int>(r);
  return total;
}

int read_opcode(const Args& a, size_t i, int count) {
  if (i >= a.info.Length() || !a.info[i].IsNumber()) a.type_error("op must be a number (an opcode from mathOps)");
  const double d = a.info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d < count && d == std::floor(d)))
    a.range_error("op must be an opcode in [0, " + std::to_string(count) + "), got " + std::to_string(d));
  return static_cast<int>(d);
}

// Any JS number (NaN and infinities included: they are meaningful fill values and attributes).
double any_number(const Args& a, size_t i, const char* name) {
  if (i >= a.info.Length() || !a.info[i].IsNumber()) a.type_error(std::string(name) + " must be a number");
  return a.info[i].As<Napi::Number>().DoubleValue();
}

// out may be `in` itself (same memory, type and length: an elementwise op reads each element before
// writing it), never a partial overlap.
void check_alias(const Args& a, const Typed& out, const Typed& in, const char* in_name) {
  if (out.data == in.data && out.type == in.type && out.length == in.length) return;
  if (overlaps(out.data, out.length, in.data, in.length, elem_bytes(out.type), elem_bytes(in.type)))
    a.range_error(std::string("out must not overlap ") + in_name + " (except by being " + in_name + " itself)");
}

// binaryOp(op, a, aShape, b, bShape, out): out = op(a, b) broadcast (numpy rules). a and b are both
// Float32Array or both Int32Array; out's type is the op's output type (mathOps.binaryOut).
Napi::Value BinaryOp(const Args& a) {
  a.expect_count(6);
  const int op = read_opcode(a, 0, fd::kNumBinaryOps);
  constexpr unsigned kInputs = (1u << fd::kF32) | (1u << fd::kI32);
  int64_t as[fd::kMaxRank], bs[fd::kMaxRank], os[fd::kMaxRank];
  int ar = 0, br = 0, orank = 0;
  // The shapes (plain arrays, whose getters could run JS) before the tensors (see shape_ops.cc).
  const int64_t a_length = read_shape(a, 2, "aShape", as, &ar);
  const int64_t b_length = read_shape(a, 4, "bShape", bs, &br);
  const Typed x = typed_any(a, 1, "a", kInputs);
  expect_length(a, x, "a", a_length);
  const Typed y = typed_any(a, 3, "b", kInputs);
  if (y.type != x.type)
    a.type_error(std::string("b must be a ") + dtype_name(a.place, x.type) + " like a, got a " +
                 dtype_name(a.place, y.type));
  expect_length(a, y, "b", b_length);
  if (!fd::broadcast_shape(as, ar, bs, br, os, &orank)) {
    auto str = [](const int64_t* s, int r) {
      std::string o = "[";
      for (int k = 0; k < r; ++k) o += (k ? ", " : "") + std::to_string(s[k]);
      return o + "]";
    };
    a.range_error("shapes " + str(as, ar) + " and " + str(bs, br) + " do not broadcast");
  }
  const int out_type = fd::binary_out_type(op, x.type);
  if (out_type < 0)
    a.type_error(std::string(fd::binary_op_name(op)) + " does not take " + dtype_name(a.place, x.type) + " inputs");
  const Typed out = typed_any(a, 5, "out", 1u << out_type);
  int64_t n = 1;
  for (int k = 0; k < orank; ++k) {
    if (os[k] != 0 && n > kMaxElements / os[k]) a.range_error("the broadcast result has more than 2^40 elements");
    n *= os[k];
  }
  expect_length(a, out, "out", n);
  check_alias(a, out, x, "a");
  check_alias(a, out, y, "b");
  if (n > 0) {
    if (a.place == Place::kHost)
      fd::binary_cpu(op, x.type, x.data, as, ar, y.data, bs, br, out.data);
    else
      throw_status(a, fd::binary_cuda(op, x.type, x.data, as, ar, y.data, bs, br, out.data));
  }
  return a.info.Env().Undefined();
}

// unaryOp(op, x, out, p0?, p1?): out[i] = op(x[i]) on float32; p0 is LeakyRelu's and Step's alpha,
// (p0, p1) ClipByValue's (min, max). out is a Float32Array (x itself allowed) or, for IsNan, IsInf
// and IsFinite, a Uint8Array.
Napi::Value UnaryOp(const Args& a) {
  a.expect_count(3);
  const int op = read_opcode(a, 0, fd::kNumUnaryOps);
  const Typed x = typed_any(a, 1, "x", 1u << fd::kF32);
  const Typed out = typed_any(a, 2, "out", 1u << fd::unary_out_type(op));
  expect_length(a, out, "out", x.length);
  check_alias(a, out, x, "x");
  const bool one = op == fd::kLeakyRelu || op == fd::kStep, two = op == fd::kClipByValue;
  const double p0 = one || two ? any_number(a, 3, two ? "min" : "alpha") : 0.0;
  const double p1 = two ? any_number(a, 4, "max") : 0.0;
  const auto* xf = static_cast<const float*>(x.data);
  if (a.place == Place::kHost)
    fd::unary_cpu(op, xf, out.data, x.length, p0, p1);
  else if (x.length > 0)
    throw_status(a, fd::unary_cuda(op, xf, out.data, x.length, p0, p1));
  return a.info.Env().Undefined();
}

// cast(x, out): tfjs's Cast between the three numeric dtypes, by the arrays' types.
Napi::Value Cast(const Args& a) {
  a.expect_count(2);
  const Typed x = typed_any(a, 0, "x", kAnyType);
  const Typed out = typed_any(a, 1, "out", kAnyType);
  expect_length(a, out, "out", x.length);
  check_alias(a, out, x, "x");
  if (a.place == Place::kHost)
    fd::cast_cpu(x.type, x.data, out.type, out.data, x.length);
  else if (x.length > 0)
    throw_status(a, fd::cast_cuda(x.type, x.data, out.type, out.data, x.length));
  return a.info.Env().Undefined();
}

// fill(out, value): every element = value, converted as the typed array's own fill would.
Napi::Value Fill(const Args& a) {
  a.expect_count(2);
  const Typed out = typed_any(a, 0, "out", kAnyType);
  const double value = any_number(a, 1, "value");
  if (a.place == Place::kHost)
    fd::fill_cpu(out.type, out.data, out.length, value);
  else if (out.length > 0)
    throw_status(a, fd::fill_cuda(out.type, out.data, out.length, value));
  return a.info.Env().Undefined();
}

// mathOps: { binary: {Add: 0, ...}, unary: {Exp: 0, ...} }, keyed by tfjs kernel name.
Napi::Object OpTables(Napi::Env env) {
  Napi::Object tables = Napi::Object::New(env);
  Napi::Object binary = Napi::Object::New(env), unary = Napi::Object::New(env);
  for (int op = 0; op < fd::kNumBinaryOps; ++op) binary.Set(fd::binary_op_name(op), Napi::Number::New(env, op));
  for (int op = 0; op < fd::kNumUnaryOps; ++op) unary.Set(fd::unary_op_name(op), Napi::Number::New(env, op));
  tables.Set("binary", binary);
  tables.Set("unary", unary);
  return tables;
}

}  // namespace

void register_math_ops(Napi::Env env, Napi::Object exports) {
  register_op(env, exports, "binaryOp", BinaryOp);
  register_op(env, exports, "unaryOp", UnaryOp);
  register_op(env, exports, "cast", Cast);
  register_op(env, exports, "fill", Fill);
  exports.Set("mathOps", OpTables(env));
}

}  // namespace fd_native
