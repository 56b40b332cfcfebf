// The optimizer's ops on host arrays and device buffers alike (register_op): AdamW's element update
// and the sum of squares of the global gradient norm (kernels/optimizer.h).
#include "args.h"
#include "ops.h"
#include "optimizer.h"

namespace fd_native {
namespace {

// A moment's output: null or absent = the moment itself (updated in place), else a separate operand
// that must not overlap any other.
float* moment_out(const Args& a, size_t i, const char* name, float* moment, int64_t n) {
  float* out = a.floats(i, name, n, true);
  return out ? out : moment;
}

// adamwUpdate(p, g, m, v, out, beta1, beta2, eps, decay, stepSize, sqrtBc2, scale, mOut?, vOut?):
// out = the new parameter (may be p), mOut / vOut = the new moments (null or absent: m and v in
// place). All arrays Float32Array of one length (float32 device buffers for cuda.adamwUpdate).
Napi::Value AdamWUpdate(const Args& a) {
  a.expect_count(12);
  const int64_t n = a.floats_length(0, "p");
  if (n < 1) a.range_error("p must not be empty");
  fd::AdamWArgs o;
  o.n = n;
  o.p = a.floats(0, "p", n);
  o.g = a.floats(1, "g", n);
  float* m = a.floats(2, "m", n);
  float* v = a.floats(3, "v", n);
  o.m = m;
  o.v = v;
  o.out = a.floats(4, "out", n);
  o.beta1 = a.number(5, "beta1");
  o.beta2 = a.number(6, "beta2");
  o.eps = a.number(7, "eps");
  o.decay = a.number(8, "decay");
  o.step_size = a.number(9, "stepSize");
  o.sqrt_bc2 = a.number(10, "sqrtBc2");
  o.scale = a.number(11, "scale");
  o.m_out = moment_out(a, 12, "mOut", m, n);
  o.v_out = moment_out(a, 13, "vOut", v, n);
  if (!(o.sqrt_bc2 > 0)) a.range_error("sqrtBc2 must be > 0");
  if (o.out != o.p && overlaps(o.out, n, o.p, n)) a.range_error("out must be p itself or not overlap it");
  check_no_overlap(a, "m", o.m, n, 4, {{o.g, n}, {o.v, n}, {o.out, n}, {o.out == o.p ? nullptr : o.p, n}});
  check_no_overlap(a, "v", o.v, n, 4, {{o.g, n}, {o.out, n}, {o.out == o.p ? nullptr : o.p, n}});
  check_no_overlap(a, "out", o.out, n, 4, {{o.g, n}});
  if (o.m_out != o.m)
    check_no_overlap(a, "mOut", o.m_out, n, 4, {{o.p, n}, {o.g, n}, {o.m, n}, {o.v, n}, {o.out, n}, {o.v_out, n}});
  if (o.v_out != o.v)
    check_no_overlap(a, "vOut", o.v_out, n, 4, {{o.p, n}, {o.g, n}, {o.m, n}, {o.v, n}, {o.out, n}, {o.m_out, n}});
  if (a.place == Place::kHost)
    fd::adamw_update_cpu(o);
  else
    throw_status(a, fd::adamw_update_cuda(o));
  return a.info.Env().Undefined();
}

// sumSquares(x) -> sum of x[i]^2 in float64: in index order on the host, in a fixed tree order on
// the device (which synchronises to return it).
Napi::Value SumSquares(const Args& a) {
  a.expect_count(1);
  const int64_t n = a.floats_length(0, "x");
  if (n == 0) return Napi::Number::New(a.info.Env(), 0);
  const float* x = a.floats(0, "x", n);
  double s = 0;
  if (a.place == Place::kHost)
    s = fd::sum_squares_cpu(x, n);
  else
    throw_status(a, fd::sum_squares_cuda(x, n, &s));
  return Napi::Number::New(a.info.Env(), s);
}

}  // namespace

void register_optimizer_ops(Napi::Env env, Napi::Object exports) {
  register_op(env, exports, "adamwUpdate", AdamWUpdate);
  register_op(env, exports, "sumSquares", SumSquares);
}

}  // namespace fd_native
