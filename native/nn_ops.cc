// The fused network layers on host memory or device buffers (kernels/nn.h, kernels/attention.h):
// LayerNorm (optionally of x + bias + residual), GELU (optionally of x + bias) and multi-head
// attention, forward and backward.
// Argument checks only; each op's arguments are read by one function (read_*) for both places.
#include <string>

#include "args.h"
#include "attention.h"
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

// layerNorm(x, gamma, beta, rows, cols, eps, y, mean|null, rstd|null, residual?, bias?): the row
// normalised is (x + bias) + residual where those are given.
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
  o.residual = a.floats(9, "residual", n, true);
  o.bias = a.floats(10, "bias", o.cols, true);
  const std::initializer_list<std::pair<const float*, int64_t>> inputs = {
      {o.x, n}, {o.gamma, o.cols}, {o.beta, o.cols}, {o.residual, n}, {o.bias, o.cols}};
  check_no_overlap(a, "y", o.y, n, 4, inputs);
  check_no_overlap(a, "y", o.y, n, 4, {{o.mean, o.rows}, {o.rstd, o.rows}});
  check_no_overlap(a, "mean", o.mean, o.rows, 4, inputs);
  check_no_overlap(a, "mean", o.mean, o.rows, 4, {{o.rstd, o.rows}});
  check_no_overlap(a, "rstd", o.rstd, o.rows, 4, inputs);
  return o;
}

// layerNormGrad(dy, x, gamma, mean, rstd, rows, cols, dx, dgamma, dbeta, residual?, bias?, dbias?):
// residual and bias as forward had them; dbias receives the sum of dx over the rows.
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
  o.residual = a.floats(10, "residual", n, true);
  o.bias = a.floats(11, "bias", o.cols, true);
  o.dbias = a.floats(12, "dbias", o.cols, true);
  const std::initializer_list<std::pair<const float*, int64_t>> inputs = {
      {o.dy, n}, {o.x, n}, {o.gamma, o.cols}, {o.mean, o.rows}, {o.rstd, o.rows}, {o.residual, n}, {o.bias, o.cols}};
  check_no_overlap(a, "dx", o.dx, n, 4, inputs);
  check_no_overlap(a, "dgamma", o.dgamma, o.cols, 4, inputs);
  check_no_overlap(a, "dbeta", o.dbeta, o.cols, 4, inputs);
  check_no_overlap(a, "dbias", o.dbias, o.cols, 4, inputs);
  check_no_overlap(a, "dx", o.dx, n, 4, {{o.dgamma, o.cols}, {o.dbeta, o.cols}, {o.dbias, o.cols}});
  check_no_overlap(a, "dgamma", o.dgamma, o.cols, 4, {{o.dbeta, o.cols}, {o.dbias, o.cols}});
  check_no_overlap(a, "dbeta", o.dbeta, o.cols, 4, {{o.dbias, o.cols}});
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

// The rows of x [rows, cols] for a bias of `cols` elements: x's length must be a multiple of it.
void bias_shape(const Args& a, int64_t n, int64_t cols, const char* x_name, int64_t* rows) {
  if (n % cols != 0)
    a.range_error(std::string(x_name) + " has length " + std::to_string(n) + ", not a multiple of bias's " +
                  std::to_string(cols));
  *rows = n / cols;
}

// biasGelu(x, bias, y, erfOut?): y = gelu(x + bias), x [rows, cols] with cols = bias's length; y may
// be x; erfOut (null/absent: not wanted) receives erf((x + bias) / sqrt2) for biasGeluGrad.
fd::BiasGeluArgs read_bias_gelu(const Args& a) {
  a.expect_count(3);
  fd::BiasGeluArgs o;
  const int64_t n = float_length(a, 0, "x");
  o.cols = float_length(a, 1, "bias");
  bias_shape(a, n, o.cols, "x", &o.rows);
  o.x = a.floats(0, "x", n);
  o.bias = a.floats(1, "bias", o.cols);
  o.y = a.floats(2, "y", n);
  o.erf_out = a.floats(3, "erfOut", n, true);
  check_same_or_apart(a, "y", o.y, o.x, n, "x");
  check_no_overlap(a, "y", o.y, n, 4, {{o.bias, o.cols}});
  check_no_overlap(a, "erfOut", o.erf_out, n, 4, {{o.x, n}, {o.bias, o.cols}, {o.y, n}});
  return o;
}

// biasGeluGrad(dy, x, bias, dx, dbias, erf?): dx = dy * gelu'(x + bias) (dx may be dy or x), dbias =
// the sum of dx over the rows; erf: biasGelu's erfOut for these x and bias (null/absent: computed).
fd::BiasGeluGradArgs read_bias_gelu_grad(const Args& a) {
  a.expect_count(5);
  fd::BiasGeluGradArgs o;
  const int64_t n = float_length(a, 0, "dy");
  o.cols = float_length(a, 2, "bias");
  bias_shape(a, n, o.cols, "dy", &o.rows);
  o.dy = a.floats(0, "dy", n);
  o.x = a.floats(1, "x", n);
  o.bias = a.floats(2, "bias", o.cols);
  o.dx = a.floats(3, "dx", n);
  o.dbias = a.floats(4, "dbias", o.cols);
  o.erf = a.floats(5, "erf", n, true);
  check_same_or_apart(a, "dx", o.dx, o.dy, n, "dy");
  check_same_or_apart(a, "dx", o.dx, o.x, n, "x");
  check_no_overlap(a, "dx", o.dx, n, 4, {{o.bias, o.cols}, {o.dbias, o.cols}, {o.erf, n}});
  check_no_overlap(a, "dbias", o.dbias, o.cols, 4, {{o.dy, n}, {o.x, n}, {o.bias, o.cols}, {o.erf, n}});
  return o;
}

// The attention shape (batch, len, hidden, heads at `first`..first+3; hidden a multiple of heads),
// scale and precision (first+4, first+5): the fields both attention ops share.
struct AttentionShape {
  int64_t batch, len, hidden, heads, dh, x_len, probs_len;
  float scale;
  fd::GemmPrecision precision;
};

AttentionShape read_attention_shape(const Args& a, size_t first) {
  AttentionShape s;
  s.batch = a.size(first, "batch");
  s.len = a.size(first + 1, "len");
  s.hidden = a.size(first + 2, "hidden");
  s.heads = a.size(first + 3, "heads");
  if (s.hidden % s.heads != 0)
    a.range_error("hidden (" + std::to_string(s.hidden) + ") must be a multiple of heads (" + std::to_string(s.heads) +
                  ")");
  s.dh = s.hidden / s.heads;
  s.x_len = checked_product(a, {s.batch, s.len, s.hidden}, "q");
  s.probs_len = checked_product(a, {s.batch, s.heads, s.len, s.len}, "probs");
  s.scale = static_cast<float>(a.number(first + 4, "scale"));
  const double p = a.number(first + 5, "precision");
  if (p != 0 && p != 1 && p != 2)
    a.range_error("precision must be 0 (fp32), 1 (bf16) or 2 (tf32), got " + std::to_string(p));
  s.precision = static_cast<fd::GemmPrecision>(static_cast<int>(p));
  return s;
}

// attention(q, k, v, keyBias, batch, len, hidden, heads, scale, precision, out, probs|null)
fd::AttentionArgs read_attention(const Args& a) {
  a.expect_count(11);
  const AttentionShape s = read_attention_shape(a, 4);
  fd::AttentionArgs o;
  o.batch = s.batch;
  o.len = s.len;
  o.hidden = s.hidden;
  o.heads = s.heads;
  o.scale = s.scale;
  o.precision = s.precision;
  const int64_t n = s.x_len, nb = s.batch * s.len;
  o.q = a.floats(0, "q", n);
  o.k = a.floats(1, "k", n);
  o.v = a.floats(2, "v", n);
  o.key_bias = a.floats(3, "keyBias", nb);
  o.out = a.floats(10, "out", n);
  o.probs = a.floats(11, "probs", s.probs_len, true);
  const std::initializer_list<std::pair<const float*, int64_t>> inputs = {
      {o.q, n}, {o.k, n}, {o.v, n}, {o.key_bias, nb}};
  check_no_overlap(a, "out", o.out, n, 4, inputs);
  check_no_overlap(a, "probs", o.probs, s.probs_len, 4, inputs);
  check_no_overlap(a, "probs", o.probs, s.probs_len, 4, {{o.out, n}});
  return o;
}

// attentionGrad(dout, q, k, v, probs, batch, len, hidden, heads, scale, precision, dq, dk, dv,
// dkeyBias|null)
fd::AttentionGradArgs read_attention_grad(const Args& a) {
  a.expect_count(14);
  const AttentionShape s = read_attention_shape(a, 5);
  fd::AttentionGradArgs o;
  o.batch = s.batch;
  o.len = s.len;
  o.hidden = s.hidden;
  o.heads = s.heads;
  o.scale = s.scale;
  o.precision = s.precision;
  const int64_t n = s.x_len, nb = s.batch * s.len, np = s.probs_len;
  o.dout = a.floats(0, "dout", n);
  o.q = a.floats(1, "q", n);
  o.k = a.floats(2, "k", n);
  o.v = a.floats(3, "v", n);
  o.probs = a.floats(4, "probs", np);
  o.dq = a.floats(11, "dq", n);
  o.dk = a.floats(12, "dk", n);
  o.dv = a.floats(13, "dv", n);
  o.dkey_bias = a.floats(14, "dkeyBias", nb, true);
  const std::initializer_list<std::pair<const float*, int64_t>> inputs = {
      {o.dout, n}, {o.q, n}, {o.k, n}, {o.v, n}, {o.probs, np}};
  check_no_overlap(a, "dq", o.dq, n, 4, inputs);
  check_no_overlap(a, "dk", o.dk, n, 4, inputs);
  check_no_overlap(a, "dv", o.dv, n, 4, inputs);
  check_no_overlap(a, "dkeyBias", o.dkey_bias, nb, 4, inputs);
  check_no_overlap(a, "dq", o.dq, n, 4, {{o.dk, n}, {o.dv, n}, {o.dkey_bias, nb}});
  check_no_overlap(a, "dk", o.dk, n, 4, {{o.dv, n}, {o.dkey_bias, nb}});
  check_no_overlap(a, "dv", o.dv, n, 4, {{o.dkey_bias, nb}});
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

Napi::Value BiasGelu(const Args& a) {
  const fd::BiasGeluArgs o = read_bias_gelu(a);
  if (a.place == Place::kHost)
    fd::bias_gelu_cpu(o);
  else
    throw_status(a, fd::bias_gelu_cuda(o));
  return a.info.Env().Undefined();
}

Napi::Value BiasGeluGrad(const Args& a) {
  const fd::BiasGeluGradArgs o = read_bias_gelu_grad(a);
  throw_status(a, a.place == Place::kHost ? fd::bias_gelu_grad_cpu(o) : fd::bias_gelu_grad_cuda(o));
  return a.info.Env().Undefined();
}

Napi::Value Attention(const Args& a) {
  const fd::AttentionArgs o = read_attention(a);
  throw_status(a, a.place == Place::kHost ? fd::attention_cpu(o) : fd::attention_cuda(o));
  return a.info.Env().Undefined();
}

Napi::Value AttentionGrad(const Args& a) {
  const fd::AttentionGradArgs o = read_attention_grad(a);
  throw_status(a, a.place == Place::kHost ? fd::attention_grad_cpu(o) : fd::attention_grad_cuda(o));
  return a.info.Env().Undefined();
}

}  // namespace

void register_nn_ops(Napi::Env env, Napi::Object exports) {
  register_op(env, exports, "layerNorm", LayerNorm);
  register_op(env, exports, "layerNormGrad", LayerNormGrad);
  register_op(env, exports, "gelu", Gelu);
  register_op(env, exports, "geluGrad", GeluGrad);
  register_op(env, exports, "biasGelu", BiasGelu);
  register_op(env, exports, "biasGeluGrad", BiasGeluGrad);
  register_op(env, exports, "attention", Attention);
  register_op(env, exports, "attentionGrad", AttentionGrad);
}

}  // namespace fd_native
