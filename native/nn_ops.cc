// The fused network layers on host memory or device buffers (kernels/nn.h): LayerNorm and GELU, forward and backward.
// Argument checks only; each op's arguments are read by one function (read_*) for both places.
#include <string>

#include "args.h"
#include "nn.h"
#include "ops.h"

namespace fd_native {
namespace {

// The length of the Float32Array at i (>= 1), checked to be one.
int64_t float_length(const Args& a, size_t i, const char* name) {
  int64_t n = 0;
  a.floats_any_length(i, name, &n);
  if (n < 1) a.range_error(std::string(name) + " must not be empty");
  return n;
}

// out may be exactly `in` (an elementwise op reads each element before writing it), else must not overlap it.
void check_same_or_apart(const Args& a, const char* out_name, const float* out, const float* in, int64_t n,
                         const char* in_name) {
  if (out != in && overlaps(out, n, in, n))
    a.range_error(std::string(out_name) + " must be " + in_name + " itself or not overlap it");
}

// layerNorm(x, gamma, beta, rows, cols, eps, y, mean|null, rstd|null)
fd::LayerNormArgs read_layer_norm(const Args& a) {
  a.expect_count(7);
  fd::LayerNormArgs o;
  o.rows = a.size(3, "rows");
  o.cols = a.size(4, "cols");
  const int64_t n = checked_product(a, {o.rows, o.cols}, "x");
  const double eps = a.number(5, "eps");
  if (!(eps >= 0)) a.range_error("eps must be >= 0, got " + std::to_string(eps));
  o.eps = static_cast<float>(eps);
  o.x = a.floats(0, "x", n);
  o.gamma = a.floats(1, "gamma", o.cols);
  o.beta = a.floats(2, "beta", o.cols);
  o.y = a.floats(6, "y", n);
  o.mean = a.floats(7, "mean", o.rows, true);
  o.rstd = a.floats(8, "rstd", o.rows, true);
  check_no_overlap(a, "y", o.y, n, 4,
                   {{o.x, n}, {o.gamma, o.cols}, {o.beta, o.cols}, {o.mean, o.rows}, {o.rstd, o.rows}});
  check_no_overlap(a, "mean", o.mean, o.rows, 4, {{o.x, n}, {o.gamma, o.cols}, {o.beta, o.cols}, {o.rstd, o.rows}});
  check_no_overlap(a, "rstd", o.rstd, o.rows, 4, {{o.x, n}, {o.gamma, o.cols}, {o.beta, o.cols}});
  return o;
}

// layerNormGrad(dy, x, gamma, mean, rstd, rows, cols, dx, dgamma, dbeta)
fd::LayerNormGradArgs read_layer_norm_grad(const Args& a) {
  a.expect_count(10);
  fd::LayerNormGradArgs o;
  o.rows = a.size(5, "rows");
  o.cols = a.size(6, "cols");
  const int64_t n = checked_product(a, {o.rows, o.cols}, "x");
  o.dy = a.floats(0, "dy", n);
  o.x = a.floats(1, "x", n);
  o.gamma = a.floats(2, "gamma", o.cols);
  o.mean = a.floats(3, "mean", o.rows);
  o.rstd = a.floats(4, "rstd", o.rows);
  o.dx = a.floats(7, "dx", n);
  o.dgamma = a.floats(8, "dgamma", o.cols);
  o.dbeta = a.floats(9, "dbeta", o.cols);
  const std::initializer_list<std::pair<const float*, int64_t>> inputs = {
      {o.dy, n}, {o.x, n}, {o.gamma, o.cols}, {o.mean, o.rows}, {o.rstd, o.rows}};
  check_no_overlap(a, "dx", o.dx, n, 4, inputs);
  check_no_overlap(a, "dgamma", o.dgamma, o.cols, 4, inputs);
  check_no_overlap(a, "dbeta", o.dbeta, o.cols, 4, inputs);
  check_no_overlap(a, "dx", o.dx, n, 4, {{o.dgamma, o.cols}, {o.dbeta, o.cols}});
  check_no_overlap(a, "dgamma", o.dgamma, o.cols, 4, {{o.dbeta, o.cols}});
  return o;
}

struct GeluArgs {
  const float* x;
  float* y;
  int64_t n;
};

// gelu(x, y): y the length of x; y may be x.
GeluArgs read_gelu(const Args& a) {
  a.expect_count(2);
  GeluArgs o;
  o.n = float_length(a, 0, "x");
  o.x = a.floats(0, "x", o.n);
  o.y = a.floats(1, "y", o.n);
  check_same_or_apart(a, "y", o.y, o.x, o.n, "x");
  return o;
}

struct GeluGradArgs {
  const float* dy;
  const float* x;
  float* dx;
  int64_t n;
};

// geluGrad(dy, x, dx): one length; dx may be dy or x.
GeluGradArgs read_gelu_grad(const Args& a) {
  a.expect_count(3);
  GeluGradArgs o;
  o.n = float_length(a, 0, "dy");
  o.dy = a.floats(0, "dy", o.n);
  o.x = a.floats(1, "x", o.n);
  o.dx = a.floats(2, "dx", o.n);
  check_same_or_apart(a, "dx", o.dx, o.dy, o.n, "dy");
  check_same_or_apart(a, "dx", o.dx, o.x, o.n, "x");
  return o;
}

// Each op serves exports.X (host arrays) and exports.cuda.X (device buffers): register_op.
Napi::Value LayerNorm(const Args& a) {
  const fd::LayerNormArgs o = read_layer_norm(a);
  throw_status(a, a.place == Place::kHost ? fd::layer_norm_cpu(o) : fd::layer_norm_cuda(o));
  return a.info.Env().Undefined();
}

Napi::Value LayerNormGrad(const Args& a) {
  const fd::LayerNormGradArgs o = read_layer_norm_grad(a);
  throw_status(a, a.place == Place::kHost ? fd::layer_norm_grad_cpu(o) : fd::layer_norm_grad_cuda(o));
  return a.info.Env().Undefined();
}

Napi::Value Gelu(const Args& a) {
  const GeluArgs o = read_gelu(a);
  if (a.place == Place::kHost)
    fd::gelu_cpu(o.x, o.y, o.n);
  else
    throw_status(a, fd::gelu_cuda(o.x, o.y, o.n));
  return a.info.Env().Undefined();
}

Napi::Value GeluGrad(const Args& a) {
  const GeluGradArgs o = read_gelu_grad(a);
  if (a.place == Place::kHost)
    fd::gelu_grad_cpu(o.dy, o.x, o.dx, o.n);
  else
    throw_status(a, fd::gelu_grad_cuda(o.dy, o.x, o.dx, o.n));
  return a.info.Env().Undefined();
}

}  // namespace

void register_nn_ops(Napi::Env env, Napi::Object exports) {
  register_op(env, exports, "layerNorm", LayerNorm);
  register_op(env, exports, "layerNormGrad", LayerNormGrad);
  register_op(env, exports, "gelu", Gelu);
  register_op(env, exports, "geluGrad", GeluGrad);
}

}  // namespace fd_native
