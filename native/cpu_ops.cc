// The random ops, registered on host arrays and device buffers alike (register_op), and the CPU
// kernels' thread count. The losses: native/loss_ops.cc; the optimizer: native/optimizer_ops.cc.
#include <cmath>
#include <string>

#include "args.h"
#include "ops.h"
#include "random.h"

namespace fd_native {
namespace {

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
  register_op(env, exports, "randomUniform", RandomUniform);
  register_op(env, exports, "randomNormal", RandomNormal);
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads, "getNumThreads"));
}

}  // namespace fd_native
