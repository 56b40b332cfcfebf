// The fused losses on host memory or device buffers (kernels/losses.h): the ranking objective, the
// feature MSEs and the backward pass's scaling. One op body per loss serves exports.X (host arrays)
// and exports.cuda.X (device buffers) through register_op; only the kernel called differs. Results
// are written into an output operand at both places.
#include <cmath>
#include <string>

#include "args.h"
#include "losses.h"
#include "ops.h"

namespace fd_native {
namespace {

// The objective's scalar arguments: rows (4), cols (5), weights (6, always a host Float32Array of
// fd::kNumTerms), temperature, sigma, margin (7, 8, 9). Returns rows * cols. Each must be in its
// domain: weights >= 0 (0 = term off; a negative weight would maximise its loss), temperature > 0,
// sigma and margin >= 0 (0 is a plain loss: RankNet's log 2 with no gradient, a hinge at the kink;
// a negative one turns the preference around).
int64_t read_objective_scalars(const Args& a, fd::ObjectiveArgs& o) {
  o.rows = a.size(4, "rows");
  o.cols = a.size(5, "cols");
  const Args host{a.info, a.fn, Place::kHost};
  const float* w = host.floats(6, "weights", fd::kNumTerms);
  for (int k = 0; k < fd::kNumTerms; ++k) {
    if (!std::isfinite(w[k])) a.range_error("weights must be finite");
    if (w[k] < 0) a.range_error(std::string("weights.") + fd::kTermNames[k] + " must be >= 0, got " + js_number(w[k]));
    o.weight[k] = w[k];
  }
  o.temperature = static_cast<float>(a.number(7, "temperature"));
  o.sigma = static_cast<float>(a.number(8, "sigma"));
  o.margin = static_cast<float>(a.number(9, "margin"));
  if (!(o.temperature > 0)) a.range_error("temperature must be > 0, got " + js_number(o.temperature));
  if (o.sigma < 0) a.range_error("sigma must be >= 0, got " + js_number(o.sigma));
  if (o.margin < 0) a.range_error("margin must be >= 0, got " + js_number(o.margin));
  return checked_product(a, {o.rows, o.cols}, "s");
}

bool needs_teacher(const fd::ObjectiveArgs& o) {
  return o.weight[fd::kDistillKL] != 0 || o.weight[fd::kMarginMSE] != 0 || o.weight[fd::kScoreMSE] != 0;
}
bool needs_labels(const fd::ObjectiveArgs& o) {
  return o.weight[fd::kPointwiseBCE] != 0 || o.weight[fd::kPairwiseRankNet] != 0 || o.weight[fd::kPairwiseHinge] != 0 ||
         o.weight[fd::kListwiseSoftmaxCE] != 0;
}

// rankingObjective(s, t|null, y|null, mask|null, rows, cols, weights[7], temperature, sigma, margin,
//                  grad|null, result): result (1 + 7 floats) receives the total, then each weighted
// part in term order; grad, when given, d(total)/d(s).
Napi::Value RankingObjective(const Args& a) {
  a.expect_count(12);
  fd::ObjectiveArgs o;
  const int64_t n = read_objective_scalars(a, o);
  o.s = a.floats(0, "s", n);
  o.t = a.floats(1, "t", n, !needs_teacher(o));
  o.y = a.floats(2, "y", n, !needs_labels(o));
  o.mask = a.floats(3, "mask", n, true);
  float* grad = a.floats(10, "grad", n, true);
  constexpr int64_t kResult = 1 + fd::kNumTerms;
  float* result = a.floats(11, "result", kResult);
  if (o.mask) check_mask(a, o.mask, n, "mask");
  if (o.weight[fd::kPointwiseBCE] != 0) check_unit_labels(a, o.y, o.mask, n);
  check_no_overlap(a, "grad", grad, n, 4, {{o.s, n}, {o.t, n}, {o.y, n}, {o.mask, n}});
  check_no_overlap(a, "result", result, kResult, 4, {{o.s, n}, {o.t, n}, {o.y, n}, {o.mask, n}, {grad, n}});
  if (a.place == Place::kDevice) {
    throw_status(a, fd::ranking_objective_cuda(o, grad, result));
  } else {
    fd::ObjectiveResult r;
    const fd::Status st = fd::ranking_objective_cpu(o, grad, &r);
    throw_status(a, st, r.work_bytes);  // read after the call: it sets work_bytes
    result[0] = static_cast<float>(r.total);
    for (int k = 0; k < fd::kNumTerms; ++k) result[1 + k] = static_cast<float>(r.part[k]);
  }
  return a.info.Env().Undefined();
}

// The feature MSEs' operands after their sizes: a, b, tokenMask (0, 1, 2), grad and loss at
// grad_at, grad_at + 1. Returns grad; *loss receives the 1-float loss operand.
float* read_feature_operands(const Args& a, fd::FeatureArgs& f, int64_t n, const char* a_name, const char* b_name,
                             size_t grad_at, float** loss) {
  const int64_t tokens = checked_product(a, {f.batch, f.len}, "tokenMask");
  f.a = a.floats(0, a_name, n);
  f.b = a.floats(1, b_name, n);
  f.token_mask = a.floats(2, "tokenMask", tokens, true);
  float* grad = a.floats(grad_at, "grad", n, true);
  *loss = a.floats(grad_at + 1, "loss", 1);
  if (f.token_mask) check_mask(a, f.token_mask, tokens, "tokenMask");
  check_no_overlap(a, "grad", grad, n, 4, {{f.a, n}, {f.b, n}, {f.token_mask, tokens}});
  check_no_overlap(a, "loss", *loss, 1, 4, {{f.a, n}, {f.b, n}, {f.token_mask, tokens}, {grad, n}});
  return grad;
}

// The host kernels return the loss as a double; the device ones write a float.
template <class Cpu, class Cuda>
void run_feature_loss(const Args& a, const fd::FeatureArgs& f, float* grad, float* loss, Cpu cpu, Cuda cuda) {
  if (a.place == Place::kDevice) return throw_status(a, cuda(f, grad, loss));
  double l = 0;
  throw_status(a, cpu(f, grad, &l));
  *loss = static_cast<float>(l);
}

// hiddenMSE(hs, ht, tokenMask|null, layers, batch, len, hidden, grad|null, loss)
Napi::Value HiddenMSE(const Args& a) {
  a.expect_count(9);
  fd::FeatureArgs f;
  f.layers = a.size(3, "layers");
  f.batch = a.size(4, "batch");
  f.len = a.size(5, "len");
  f.hidden = a.size(6, "hidden");
  const int64_t n = checked_product(a, {f.layers, f.batch, f.len, f.hidden}, "hs");
  float* loss = nullptr;
  float* grad = read_feature_operands(a, f, n, "hs", "ht", 7, &loss);
  run_feature_loss(a, f, grad, loss, fd::hidden_mse_cpu, fd::hidden_mse_cuda);
  return a.info.Env().Undefined();
}

// attentionMSE(as, at, tokenMask|null, batch, heads, len, grad|null, loss)
Napi::Value AttentionMSE(const Args& a) {
  a.expect_count(8);
  fd::FeatureArgs f;
  f.batch = a.size(3, "batch");
  f.heads = a.size(4, "heads");
  f.len = a.size(5, "len");
  const int64_t n = checked_product(a, {f.batch, f.heads, f.len, f.len}, "as");
  float* loss = nullptr;
  float* grad = read_feature_operands(a, f, n, "as", "at", 6, &loss);
  run_feature_loss(a, f, grad, loss, fd::attention_mse_cpu, fd::attention_mse_cuda);
  return a.info.Env().Undefined();
}

// scale(x, c, out): out = x * c, one length; out may be x itself, else must not overlap it.
Napi::Value Scale(const Args& a) {
  a.expect_count(3);
  const int64_t n = a.floats_length(0, "x");
  if (n < 1) a.range_error("x must not be empty");
  const float* x = a.floats(0, "x", n);
  const double c = a.number(1, "c");
  float* out = a.floats(2, "out", n);
  if (out != x && overlaps(out, n, x, n)) a.range_error("out must be x itself or not overlap it");
  if (a.place == Place::kHost)
    fd::scale_cpu(x, static_cast<float>(c), out, n);
  else
    throw_status(a, fd::scale_cuda(x, static_cast<float>(c), out, n));
  return a.info.Env().Undefined();
}

}  // namespace

void register_loss_ops(Napi::Env env, Napi::Object exports) {
  register_op(env, exports, "rankingObjective", RankingObjective);
  register_op(env, exports, "hiddenMSE", HiddenMSE);
  register_op(env, exports, "attentionMSE", AttentionMSE);
  register_op(env, exports, "scale", Scale);
}

}  // namespace fd_native
