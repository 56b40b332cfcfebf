// Losses on host memory: Float32Arrays from tfjs's 'cpu' backend or views of the 'wasm' heap,
// read and written in place (no copies). The random ops are registered on host arrays and device
// buffers alike (register_op).
#include <cmath>
#include <string>

#include "args.h"
#include "losses.h"
#include "ops.h"
#include "random.h"

namespace fd_native {
namespace {

// rankingObjective(s, t|null, y|null, mask|null, rows, cols, weights[7], temperature, sigma, margin,
//                  grad|null, parts: Float64Array[7]|null) -> total
Napi::Value RankingObjective(const Napi::CallbackInfo& info) {
  return guarded(info, "rankingObjective", [&](const Args& a) -> Napi::Value {
    a.expect_count(12);
    fd::ObjectiveArgs o;
    const int64_t n = read_objective_scalars(a, o);
    o.s = a.floats(0, "s", n);
    o.t = a.floats(1, "t", n, !needs_teacher(o));
    o.y = a.floats(2, "y", n, !needs_labels(o));
    o.mask = a.floats(3, "mask", n, true);
    float* grad = a.floats(10, "grad", n, true);
    double* parts = a.doubles(11, "parts", fd::kNumTerms, true);
    if (o.mask) check_mask(a, o.mask, n, "mask");
    check_no_overlap(a, "grad", grad, n, 4, {{o.s, n}, {o.t, n}, {o.y, n}, {o.mask, n}});
    check_no_overlap(a, "parts", parts, fd::kNumTerms, 8, {{o.s, n}, {o.t, n}, {o.y, n}, {o.mask, n}, {grad, n}});
    fd::ObjectiveResult r;
    throw_status(a, fd::ranking_objective_cpu(o, grad, &r));
    if (parts)
      for (int k = 0; k < fd::kNumTerms; ++k) parts[k] = r.part[k];
    return Napi::Number::New(info.Env(), r.total);
  });
}

// hiddenMSE(a, b, tokenMask|null, layers, batch, len, hidden, grad|null) -> loss
Napi::Value HiddenMSE(const Napi::CallbackInfo& info) {
  return guarded(info, "hiddenMSE", [&](const Args& a) -> Napi::Value {
    a.expect_count(8);
    fd::FeatureArgs f;
    f.layers = a.size(3, "layers");
    f.batch = a.size(4, "batch");
    f.len = a.size(5, "len");
    f.hidden = a.size(6, "hidden");
    const int64_t n = checked_product(a, {f.layers, f.batch, f.len, f.hidden}, "hs");
    const int64_t tokens = checked_product(a, {f.batch, f.len}, "tokenMask");
    f.a = a.floats(0, "hs", n);
    f.b = a.floats(1, "ht", n);
    f.token_mask = a.floats(2, "tokenMask", tokens, true);
    float* grad = a.floats(7, "grad", n, true);
    if (f.token_mask) check_mask(a, f.token_mask, tokens, "tokenMask");
    check_no_overlap(a, "grad", grad, n, 4, {{f.a, n}, {f.b, n}, {f.token_mask, tokens}});
    double loss = 0;
    throw_status(a, fd::hidden_mse_cpu(f, grad, &loss));
    return Napi::Number::New(info.Env(), loss);
  });
}

// attentionMSE(a, b, tokenMask|null, batch, heads, len, grad|null) -> loss
Napi::Value AttentionMSE(const Napi::CallbackInfo& info) {
  return guarded(info, "attentionMSE", [&](const Args& a) -> Napi::Value {
    a.expect_count(7);
    fd::FeatureArgs f;
    f.batch = a.size(3, "batch");
    f.heads = a.size(4, "heads");
    f.len = a.size(5, "len");
    const int64_t n = checked_product(a, {f.batch, f.heads, f.len, f.len}, "as");
    const int64_t tokens = checked_product(a, {f.batch, f.len}, "tokenMask");
    f.a = a.floats(0, "as", n);
    f.b = a.floats(1, "at", n);
    f.token_mask = a.floats(2, "tokenMask", tokens, true);
    float* grad = a.floats(6, "grad", n, true);
    if (f.token_mask) check_mask(a, f.token_mask, tokens, "tokenMask");
    check_no_overlap(a, "grad", grad, n, 4, {{f.a, n}, {f.b, n}, {f.token_mask, tokens}});
    double loss = 0;
    throw_status(a, fd::attention_mse_cpu(f, grad, &loss));
    return Napi::Number::New(info.Env(), loss);
  });
}

// scale(x, c, out): out = x * c (out may be x).
Napi::Value Scale(const Napi::CallbackInfo& info) {
  return guarded(info, "scale", [&](const Args& a) -> Napi::Value {
    a.expect_count(3);
    if (!a.info[0].IsTypedArray()) a.type_error("x must be a Float32Array");
    const int64_t n = static_cast<int64_t>(a.info[0].As<Napi::TypedArray>().ElementLength());
    if (n < 1) a.range_error("x must not be empty");
    const float* x = a.floats(0, "x", n);
    const double c = a.number(1, "c");
    float* out = a.floats(2, "out", n);
    if (out != x && overlaps(out, n, x, n)) a.range_error("out must be x itself or not overlap it");
    fd::scale_cpu(x, static_cast<float>(c), out, n);
    return info.Env().Undefined();
  });
}

// A random seed: an integer in [0, 2^53) (a JS number holds no more), used as Philox's 64-bit key.
uint64_t seed_arg(const Args& a, size_t i) {
  const double v = a.number(i, "seed");
  if (v < 0 || v != std::floor(v) || v >= 9007199254740992.0)
    a.range_error("seed must be an integer in [0, 2^53), got " + std::to_string(v));
  return static_cast<uint64_t>(v);
}

// randomUniform(out, lo, hi, seed): every element of out uniform in [lo, hi), a function of (seed,
// index) only (kernels/random.h): the same numbers on the host and the device.
Napi::Value RandomUniform(const Args& a) {
  a.expect_count(4);
  const double lo = a.number(1, "lo"), hi = a.number(2, "hi");
  if (!(lo <= hi)) a.range_error("lo must be <= hi, got lo = " + std::to_string(lo) + ", hi = " + std::to_string(hi));
  const uint64_t seed = seed_arg(a, 3);
  const int64_t n = a.floats_length(0, "out");
  if (n == 0) return a.info.Env().Undefined();
  float* out = a.floats(0, "out", n);
  const float l = static_cast<float>(lo), h = static_cast<float>(hi);
  if (a.place == Place::kHost)
    fd::random_uniform_cpu(out, n, l, h, seed);
  else
    throw_status(a, fd::random_uniform_cuda(out, n, l, h, seed));
  return a.info.Env().Undefined();
}

// randomNormal(out, mean, stddev, seed): every element of out normal(mean, stddev), as randomUniform.
Napi::Value RandomNormal(const Args& a) {
  a.expect_count(4);
  const double mean = a.number(1, "mean"), stddev = a.number(2, "stddev");
  if (!(stddev >= 0)) a.range_error("stddev must be >= 0, got " + std::to_string(stddev));
  const uint64_t seed = seed_arg(a, 3);
  const int64_t n = a.floats_length(0, "out");
  if (n == 0) return a.info.Env().Undefined();
  float* out = a.floats(0, "out", n);
  const float m = static_cast<float>(mean), sd = static_cast<float>(stddev);
  if (a.place == Place::kHost)
    fd::random_normal_cpu(out, n, m, sd, seed);
  else
    throw_status(a, fd::random_normal_cuda(out, n, m, sd, seed));
  return a.info.Env().Undefined();
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  return guarded(info, "setNumThreads", [&](const Args& a) -> Napi::Value {
    a.expect_count(1);
    const int64_t n = a.size(0, "n");
    if (n > 1024) a.range_error("n must be at most 1024");
    fd::set_num_threads(static_cast<int>(n));
    return info.Env().Undefined();
  });
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd::num_threads()); }

}  // namespace

void register_cpu_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("rankingObjective", Napi::Function::New(env, RankingObjective, "rankingObjective"));
  exports.Set("hiddenMSE", Napi::Function::New(env, HiddenMSE, "hiddenMSE"));
  exports.Set("attentionMSE", Napi::Function::New(env, AttentionMSE, "attentionMSE"));
  exports.Set("scale", Napi::Function::New(env, Scale, "scale"));
  register_op(env, exports, "randomUniform", RandomUniform);
  register_op(env, exports, "randomNormal", RandomNormal);
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads, "getNumThreads"));
}

}  // namespace fd_native
