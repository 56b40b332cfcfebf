// Matrix products on host memory (the native tfjs backend's matMul / batchMatMul) and, with
// the same checks, on device buffers (cuda.sgemm, cuBLAS; the offsets stay host Float64Arrays).
#include <cmath>
#include <string>
#include <vector>

#include "args.h"
#include "gemm.h"
#include "ops.h"

namespace fd_native {
namespace {

// An integer count in [0, 2^40] (k may be 0: the product is then all zeros).
int64_t count_arg(const Args& a, size_t i, const char* name) {
  const double v = a.number(i, name);
  if (v != std::floor(v) || v < 0 || v > static_cast<double>(kMaxElements))
    a.range_error(std::string(name) + " must be an integer in [0, 2^40], got " + std::to_string(v));
  return static_cast<int64_t>(v);
}

bool bool_arg(const Args& a, size_t i, const char* name) {
  if (i >= a.info.Length() || !a.info[i].IsBoolean()) a.type_error(std::string(name) + " must be a boolean");
  return a.info[i].As<Napi::Boolean>().Value();
}

// One operand: its data, its length, and per-batch offsets (from `offsets_index`, or derived from the
// length: `per` elements per batch entry, or one entry broadcast over the batch).
struct Operand {
  const float* data = nullptr;
  int64_t length = 0;
  int64_t stride = 0;
  std::vector<int64_t> offsets;  // empty: use stride
};

Operand read_operand(const Args& a, size_t index, const char* name, size_t offsets_index, const char* offsets_name,
                     int64_t batch, int64_t per, const char* dims) {
  Operand op;
  op.data = a.floats_any_length(index, name, &op.length);
  const double* off = a.doubles(offsets_index, offsets_name, batch, true);
  if (!off) {
    const int64_t all = batch * per;  // the caller checked it against 2^40
    if (op.length == all) {
      op.stride = per;
    } else if (op.length == per) {
      op.stride = 0;
    } else {
      a.range_error(std::string(name) + " must be a " + dtype_name(a.place, 0) + " of length batch*" + dims + " = " +
                    std::to_string(all) + " or " + dims + " = " + std::to_string(per) +
                    " (broadcast over the batch), got length " + std::to_string(op.length));
    }
    return op;
  }
  if (op.length < per)
    a.range_error(std::string(name) + " must hold at least " + dims + " = " + std::to_string(per) + " elements when " +
                  offsets_name + " is given, got length " + std::to_string(op.length));
  const int64_t last = op.length - per;
  op.offsets.resize(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) {
    const double v = off[i];
    if (!std::isfinite(v) || v != std::floor(v) || v < 0 || v > static_cast<double>(last))
      a.range_error(std::string(offsets_name) + "[" + std::to_string(i) + "] must be an integer in [0, " +
                    std::to_string(last) + "] (" + name + " has " + std::to_string(op.length) + " elements, " + dims +
                    " = " + std::to_string(per) + " per entry), got " + std::to_string(v));
    op.offsets[static_cast<size_t>(i)] = static_cast<int64_t>(v);
  }
  return op;
}

// The optional precision argument: 'fp32' (also when absent), 'bf16', and on the device 'tf32'.
fd::GemmPrecision precision_arg(const Args& a, size_t i) {
  if (i >= a.info.Length() || a.is_null(i)) return fd::GemmPrecision::kFp32;
  const bool device = a.place == Place::kDevice;
  const char* allowed = device ? "'fp32', 'bf16' or 'tf32'" : "'fp32' or 'bf16'";
  if (!a.info[i].IsString()) a.type_error(std::string("precision must be ") + allowed);
  const std::string v = a.info[i].As<Napi::String>().Utf8Value();
  if (v == "fp32") return fd::GemmPrecision::kFp32;
  if (v == "bf16") return fd::GemmPrecision::kBf16;
  if (v == "tf32" && device) return fd::GemmPrecision::kTf32;
  a.range_error(std::string("precision must be ") + allowed + ", got '" + v + "'" +
                (v == "tf32" ? " (TF32 exists on the device only)" : ""));
}

// sgemm(a, b, c, batch, m, n, k, transA, transB, aOffsets|null, bOffsets|null[, precision]): for every batch entry,
// c[i] = op(a[i]) op(b[i]), all dense row-major. a[i] is m x k (k x m when transA), b[i] is k x n
// (n x k when transB), c is batch x m x n and is overwritten. a holds batch*m*k elements, or m*k to
// broadcast one matrix over the batch; aOffsets (a Float64Array of batch integers) instead gives
// where each entry starts, for general broadcasting. The same for b. c must not overlap a or b.
// precision: 'fp32' (default) or 'bf16' (inputs rounded to bfloat16, fp32 accumulation); on the
// device also 'tf32'.
Napi::Value Sgemm(const Args& a) {
  a.expect_count(11);
  fd::GemmArgs g;
  g.batch = a.size(3, "batch");
  g.m = a.size(4, "m");
  g.n = a.size(5, "n");
  g.k = count_arg(a, 6, "k");
  g.trans_a = bool_arg(a, 7, "transA");
  g.trans_b = bool_arg(a, 8, "transB");
  g.precision = precision_arg(a, 11);
  const int64_t mk = checked_product(a, {g.m, g.k}, "a");
  const int64_t kn = checked_product(a, {g.k, g.n}, "b");
  const int64_t mn = checked_product(a, {g.m, g.n}, "c");
  const int64_t c_len = checked_product(a, {g.batch, g.m, g.n}, "c");
  checked_product(a, {g.batch, g.m, g.k}, "a");
  checked_product(a, {g.batch, g.k, g.n}, "b");
  const Operand A = read_operand(a, 0, "a", 9, "aOffsets", g.batch, mk, g.trans_a ? "k*m" : "m*k");
  const Operand B = read_operand(a, 1, "b", 10, "bOffsets", g.batch, kn, g.trans_b ? "n*k" : "k*n");
  float* c = a.floats(2, "c", c_len);
  check_no_overlap(a, "c", c, c_len, 4, {{A.data, A.length}, {B.data, B.length}});
  g.a = A.data;
  g.lda = g.trans_a ? g.m : g.k;
  g.stride_a = A.stride;
  g.a_offsets = A.offsets.empty() ? nullptr : A.offsets.data();
  g.b = B.data;
  g.ldb = g.trans_b ? g.k : g.n;
  g.stride_b = B.stride;
  g.b_offsets = B.offsets.empty() ? nullptr : B.offsets.data();
  g.c = c;
  g.ldc = g.n;
  g.stride_c = mn;
  throw_status(a, a.place == Place::kHost ? fd::sgemm_cpu(g) : fd::sgemm_cuda(g));
  return a.info.Env().Undefined();
}

Napi::Value GemmIsa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), fd::sgemm_isa()); }

}  // namespace

void register_gemm_ops(Napi::Env env, Napi::Object exports) {
  register_op(env, exports, "sgemm", Sgemm);
  exports.Set("gemmIsa", Napi::Function::New(env, GemmIsa, "gemmIsa"));
}

}  // namespace fd_native
