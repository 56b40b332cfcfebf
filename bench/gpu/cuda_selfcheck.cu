// Self-check and device timings of the CUDA kernels (kernels/cuda/), standalone: needs a GPU, not Node.
// Compares every *_cuda function with a float64 host reference written here (all 7 objective terms
// alone and together, with and without a mask whose padding holds NaN, G = 1, 7, 64, 300, 2000;
// hidden and attention MSE; scale), checks that repeated runs are bit-identical, then prints device
// times (CUDA events around each call, the GPU kept busy before the start event so host launch time
// is not counted; median of 50) beside the floor of bytes moved / measured copy bandwidth.
//
// Build and run, from the repository root:
//   nvcc -std=c++17 -O3 -arch=sm_90 -Ikernels kernels/cuda/device.cu kernels/cuda/ranking_objective.cu \
//     kernels/cuda/feature_mse.cu kernels/cuda/scale_mask.cu bench/gpu/cuda_selfcheck.cu -o build/cuda_selfcheck
//   (the fused-loss kernels only: the tensor kernels need their CPU halves, see tensor_ops_check.cu)
//   ./build/cuda_selfcheck            (--no-bench: checks only; --profile: each benchmark op 3 times
//                                      untimed, for ncu)
// Exit status 0 when every check passes.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cuda/cuda_common.cuh"
#include "device.h"
#include "losses.h"

using namespace fd;

namespace {

int g_failures = 0;
bool g_profile = false;  // --profile: run each benchmark op 3 times untimed (for ncu)
int g_checks = 0;

void check_status(Status st, const char* what) {
  if (st != kOk) {
    std::printf("FAIL %s: status %d: %s\n", what, int(st), device::last_error().c_str());
    std::exit(2);
  }
}

// A device buffer from the library's allocator.
struct DevBuf {
  float* p = nullptr;
  size_t n = 0;
  DevBuf() = default;
  explicit DevBuf(size_t count) : n(count) {
    void* v = nullptr;
    check_status(device::alloc(count * sizeof(float), &v), "alloc");
    p = static_cast<float*>(v);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  ~DevBuf() {
    if (p) device::release(p);
  }
  void up(const std::vector<float>& h) {
    check_status(device::upload(p, h.data(), h.size() * sizeof(float)), "upload");
  }
  std::vector<float> down(size_t count) const {
    std::vector<float> h(count);
    check_status(device::download(h.data(), p, count * sizeof(float)), "download");
    return h;
  }
  void fill(float v) {
    std::vector<float> h(n, v);
    up(h);
  }
};

bool close(double got, double want, double rtol, double atol) {
  if (std::isnan(want)) return std::isnan(got);
  return std::fabs(got - want) <= atol + rtol * std::fabs(want);
}

void report(bool ok, const std::string& name, const std::string& detail) {
  ++g_checks;
  if (!ok) ++g_failures;
  std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.empty() ? "" : ": ", detail.c_str());
}

// ---- float64 reference of the objective (docs/loss-contract.md) ----

double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }
double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }

struct Host {
  int64_t rows = 0, cols = 0;
  std::vector<float> s, t, y, m;  // m empty = unmasked
};

struct Ref {
  double part[kNumTerms] = {};
  double total = 0;
  std::vector<double> grad;
};

Ref ref_objective(const Host& h, const float* w, double T, double sigma, double margin) {
  const int64_t R = h.rows, G = h.cols;
  auto valid = [&](int64_t r, int64_t i) { return h.m.empty() || h.m[r * G + i] != 0.0f; };
  double S[kNumTerms] = {};
  int64_t N[kNumTerms] = {};
  std::vector<std::vector<double>> d(kNumTerms, std::vector<double>(R * G, 0.0));
  for (int64_t r = 0; r < R; ++r) {
    const float* s = &h.s[r * G];
    const float* t = h.t.empty() ? nullptr : &h.t[r * G];
    const float* y = h.y.empty() ? nullptr : &h.y[r * G];
    double* dd[kNumTerms];
    for (int k = 0; k < kNumTerms; ++k) dd[k] = &d[k][r * G];
    int64_t nv = 0;
    for (int64_t i = 0; i < G; ++i) nv += valid(r, i);
    if (w[kPointwiseBCE] != 0)
      for (int64_t i = 0; i < G; ++i)
        if (valid(r, i)) {
          S[0] += softplus(s[i]) - double(y[i]) * s[i];
          dd[0][i] = sigmoid(s[i]) - y[i];
          ++N[0];
        }
    if (w[kPairwiseRankNet] != 0 || w[kPairwiseHinge] != 0)
      for (int64_t i = 0; i < G; ++i)
        for (int64_t j = i + 1; j < G; ++j) {
          if (!valid(r, i) || !valid(r, j) || y[i] == y[j]) continue;
          const int64_t hi = y[i] > y[j] ? i : j, lo = hi == i ? j : i;
          const double diff = double(s[hi]) - s[lo];
          const double z = -sigma * diff;
          S[1] += softplus(z);
          dd[1][hi] -= sigma * sigmoid(z);
          dd[1][lo] += sigma * sigmoid(z);
          const double hv = margin - diff;
          S[2] += std::max(0.0, hv);
          if (hv > 0) {
            dd[2][hi] -= 1;
            dd[2][lo] += 1;
          }
          ++N[1];
          ++N[2];
        }
    if (w[kListwiseSoftmaxCE] != 0) {
      double Y = 0, mx = -INFINITY;
      for (int64_t i = 0; i < G; ++i)
        if (valid(r, i)) Y += y[i], mx = std::max(mx, double(s[i]));
      if (Y > 0) {
        double z = 0;
        for (int64_t i = 0; i < G; ++i)
          if (valid(r, i)) z += std::exp(s[i] - mx);
        const double lse = mx + std::log(z);
        for (int64_t i = 0; i < G; ++i)
          if (valid(r, i)) {
            S[3] += y[i] / Y * (lse - s[i]);
            dd[3][i] = std::exp(s[i] - lse) - y[i] / Y;
          }
        ++N[3];
      }
    }
    if (w[kDistillKL] != 0 && nv > 0) {
      double ms = -INFINITY, mt = -INFINITY;
      for (int64_t i = 0; i < G; ++i)
        if (valid(r, i)) ms = std::max(ms, s[i] / T), mt = std::max(mt, t[i] / T);
      double zs = 0, zt = 0;
      for (int64_t i = 0; i < G; ++i)
        if (valid(r, i)) zs += std::exp(s[i] / T - ms), zt += std::exp(t[i] / T - mt);
      const double ls = ms + std::log(zs), lt = mt + std::log(zt);
      for (int64_t i = 0; i < G; ++i)
        if (valid(r, i)) {
          const double lp = t[i] / T - lt, lq = s[i] / T - ls, p = std::exp(lp), q = std::exp(lq);
          if (p > 0) S[4] += T * T * p * (lp - lq);
          dd[4][i] = T * (q - p);
        }
      ++N[4];
    }
    if (w[kMarginMSE] != 0 && valid(r, 0))
      for (int64_t j = 1; j < G; ++j)
        if (valid(r, j)) {
          const double dv = (double(s[0]) - s[j]) - (double(t[0]) - t[j]);
          S[5] += dv * dv;
          dd[5][0] += 2 * dv;
          dd[5][j] -= 2 * dv;
          ++N[5];
        }
    if (w[kScoreMSE] != 0)
      for (int64_t i = 0; i < G; ++i)
        if (valid(r, i)) {
          const double dv = double(s[i]) - t[i];
          S[6] += dv * dv;
          dd[6][i] = 2 * dv;
          ++N[6];
        }
  }
  Ref out;
  out.grad.assign(R * G, 0.0);
  for (int k = 0; k < kNumTerms; ++k) {
    if (w[k] == 0 || N[k] == 0) continue;
    out.part[k] = w[k] * S[k] / N[k];
    out.total += out.part[k];
    for (int64_t e = 0; e < R * G; ++e) out.grad[e] += w[k] / N[k] * d[k][e];
  }
  for (int64_t e = 0; e < R * G; ++e)
    if (!h.m.empty() && h.m[e] == 0.0f) out.grad[e] = 0.0;
  return out;
}

// Random rows: scores in [-4, 4], labels in {0, 1/3, 2/3, 1} (graded, and valid for BCE). With a
// mask: ~20% padding, row 0 all padding, row 1's entry 0 padding, row 2 all labels 0 (outside
// ListCE), and NaN in every padded s/t/y, which must not reach any result.
Host make_rows(int64_t rows, int64_t cols, bool masked, std::mt19937_64& rng, float scale = 4.0f) {
  Host h;
  h.rows = rows;
  h.cols = cols;
  std::uniform_real_distribution<float> u(-scale, scale);
  std::uniform_int_distribution<int> grade(0, 3);
  std::bernoulli_distribution pad(0.2);
  const size_t n = size_t(rows * cols);
  h.s.resize(n), h.t.resize(n), h.y.resize(n);
  for (size_t e = 0; e < n; ++e) {
    h.s[e] = u(rng);
    h.t[e] = u(rng);
    h.y[e] = grade(rng) / 3.0f;
  }
  if (rows > 2)
    for (int64_t i = 0; i < cols; ++i) h.y[2 * cols + i] = 0.0f;
  if (masked) {
    h.m.resize(n);
    for (size_t e = 0; e < n; ++e) h.m[e] = pad(rng) ? 0.0f : 1.0f;
    for (int64_t i = 0; i < cols; ++i) h.m[i] = 0.0f;
    if (rows > 1) h.m[cols] = 0.0f;
    const float nan = std::nanf("");
    for (size_t e = 0; e < n; ++e)
      if (h.m[e] == 0.0f) h.s[e] = h.t[e] = h.y[e] = nan;
  }
  return h;
}

struct ObjRun {
  std::vector<float> result, grad;
};

// Uploads what the weights need (t / y stay null when no term reads them), runs, downloads.
ObjRun run_objective(const Host& h, const float* w, float T, float sigma, float margin, bool with_grad) {
  const size_t n = size_t(h.rows * h.cols);
  const bool needs_t = w[kDistillKL] != 0 || w[kMarginMSE] != 0 || w[kScoreMSE] != 0;
  const bool needs_y = w[kPointwiseBCE] != 0 || w[kPairwiseRankNet] != 0 || w[kPairwiseHinge] != 0 ||
                       w[kListwiseSoftmaxCE] != 0;
  DevBuf s(n), t(needs_t ? n : 0), y(needs_y ? n : 0), m(h.m.empty() ? 0 : n), g(with_grad ? n : 0), res(8);
  s.up(h.s);
  if (needs_t) t.up(h.t);
  if (needs_y) y.up(h.y);
  if (!h.m.empty()) m.up(h.m);
  if (with_grad) g.fill(12345.0f);  // every entry must be overwritten
  res.fill(-777.0f);
  ObjectiveArgs a;
  a.s = s.p;
  a.t = needs_t ? t.p : nullptr;
  a.y = needs_y ? y.p : nullptr;
  a.mask = h.m.empty() ? nullptr : m.p;
  a.rows = h.rows;
  a.cols = h.cols;
  for (int k = 0; k < kNumTerms; ++k) a.weight[k] = w[k];
  a.temperature = T;
  a.sigma = sigma;
  a.margin = margin;
  check_status(ranking_objective_cuda(a, with_grad ? g.p : nullptr, res.p), "ranking_objective_cuda");
  check_status(device::synchronize(), "synchronize");
  ObjRun out;
  out.result = res.down(8);
  if (with_grad) out.grad = g.down(n);
  return out;
}

const char* kTermNames[kNumTerms] = {"BCE", "RankNet", "Hinge", "ListCE", "KL", "MarginMSE", "ScoreMSE"};

void check_objective(const std::string& name, const Host& h, const float* w, float T, float sigma, float margin,
                     bool with_grad) {
  const Ref ref = ref_objective(h, w, T, sigma, margin);
  const ObjRun got = run_objective(h, w, T, sigma, margin, with_grad);
  bool ok = true;
  char buf[512];
  std::string detail;
  const double rtol = 2e-4, atol = 1e-6;
  if (!close(got.result[0], ref.total, rtol, atol)) {
    ok = false;
    std::snprintf(buf, sizeof buf, "total %.8g vs %.8g; ", got.result[0], ref.total);
    detail += buf;
  }
  for (int k = 0; k < kNumTerms; ++k)
    if (!close(got.result[1 + k], ref.part[k], rtol, atol)) {
      ok = false;
      std::snprintf(buf, sizeof buf, "%s %.8g vs %.8g; ", kTermNames[k], got.result[1 + k], ref.part[k]);
      detail += buf;
    }
  if (with_grad) {
    double gmax = 0, err = 0;
    int64_t worst = 0;
    bool finite = true;
    for (size_t e = 0; e < ref.grad.size(); ++e) gmax = std::max(gmax, std::fabs(ref.grad[e]));
    for (size_t e = 0; e < ref.grad.size(); ++e) {
      if (!std::isfinite(got.grad[e])) finite = false;
      const double de = std::fabs(got.grad[e] - ref.grad[e]);
      if (!(de <= err)) err = de, worst = int64_t(e);
    }
    if (!finite || err > 2e-4 * gmax + 1e-8) {
      ok = false;
      std::snprintf(buf, sizeof buf, "grad max err %.3g (max |g| %.3g) at %lld: %.8g vs %.8g", err, gmax,
                    (long long)worst, got.grad[worst], ref.grad[worst]);
      detail += buf;
    }
  }
  report(ok, name, detail);
}

void objective_checks() {
  std::mt19937_64 rng(42);
  const float T = 2.0f, sigma = 1.3f, margin = 1.0f;
  const int64_t shapes[][2] = {{37, 1}, {53, 7}, {300, 64}, {41, 300}, {6, 2000}};
  for (auto& sh : shapes) {
    for (int masked = 0; masked < 2; ++masked) {
      const Host h = make_rows(sh[0], sh[1], masked, rng);
      char base[96];
      std::snprintf(base, sizeof base, "objective %lldx%lld %s", (long long)sh[0], (long long)sh[1],
                    masked ? "masked" : "unmasked");
      for (int k = 0; k < kNumTerms; ++k) {
        float w[kNumTerms] = {};
        w[k] = 0.75f;
        check_objective(std::string(base) + " " + kTermNames[k], h, w, T, sigma, margin, true);
      }
      float all[kNumTerms] = {0.5f, 1.0f, 0.25f, 0.7f, 1.5f, 0.3f, 0.2f};
      check_objective(std::string(base) + " all terms", h, all, T, sigma, margin, true);
      check_objective(std::string(base) + " all terms, loss only", h, all, T, sigma, margin, false);
      float rk[kNumTerms] = {0, 1.0f, 0, 0, 0.5f, 0, 0};
      check_objective(std::string(base) + " RankNet+KL", h, rk, T, sigma, margin, true);
      float pt[kNumTerms] = {0, 0, 0, 0, 1.0f, 0.4f, 0.1f};
      check_objective(std::string(base) + " KL+MarginMSE+ScoreMSE", h, pt, T, sigma, margin, true);
    }
  }
  // Logits of +-1e4 stay finite in KL and ListCE (log-softmax with the max subtracted).
  {
    Host h = make_rows(64, 33, false, rng, 1e4f);
    float w[kNumTerms] = {0, 0, 0, 0.5f, 1.0f, 0, 0};
    check_objective("objective 64x33 logits +-1e4 KL+ListCE", h, w, 1.0f, sigma, margin, true);
  }
  // Bit-identical across runs (all terms, masked, the two-phase path).
  {
    const Host h = make_rows(1000, 64, true, rng);
    float all[kNumTerms] = {0.5f, 1.0f, 0.25f, 0.7f, 1.5f, 0.3f, 0.2f};
    const ObjRun a = run_objective(h, all, T, sigma, margin, true);
    bool same = true;
    for (int i = 0; i < 5; ++i) {
      const ObjRun b = run_objective(h, all, T, sigma, margin, true);
      same = same && std::memcmp(a.result.data(), b.result.data(), a.result.size() * 4) == 0 &&
             std::memcmp(a.grad.data(), b.grad.data(), a.grad.size() * 4) == 0;
    }
    report(same, "objective 1000x64 bit-identical over 6 runs", "");
    const Host h2 = make_rows(9, 3000, true, rng);
    const ObjRun c = run_objective(h2, all, T, sigma, margin, true);
    const ObjRun d = run_objective(h2, all, T, sigma, margin, true);
    report(std::memcmp(c.result.data(), d.result.data(), c.result.size() * 4) == 0 &&
               std::memcmp(c.grad.data(), d.grad.data(), c.grad.size() * 4) == 0,
           "objective 9x3000 (block per row) bit-identical", "");
  }
}

// ---- features ----

struct FeatRef {
  double loss = 0;
  std::vector<double> grad;
};

// valid(e) says whether flat entry e takes part.
FeatRef ref_mse(const std::vector<float>& a, const std::vector<float>& b, const std::function<bool(int64_t)>& valid) {
  FeatRef r;
  r.grad.assign(a.size(), 0.0);
  double sum = 0;
  int64_t n = 0;
  for (size_t e = 0; e < a.size(); ++e)
    if (valid(int64_t(e))) {
      const double d = double(a[e]) - b[e];
      sum += d * d;
      ++n;
    }
  for (size_t e = 0; e < a.size(); ++e)
    if (valid(int64_t(e)) && n > 0) r.grad[e] = 2.0 * (double(a[e]) - b[e]) / n;
  r.loss = n > 0 ? sum / n : 0.0;
  return r;
}

// mask_mode: 0 none, 1 random (batch row 0 with half its tokens padding), 2 everything padding.
// offset: floats to shift a/b/grad by (1 = misaligned, the scalar path).
void check_feature(bool attn, int64_t layers, int64_t batch, int64_t heads, int64_t len, int64_t hidden, int mask_mode,
                   int offset, std::mt19937_64& rng) {
  const int64_t n = attn ? batch * heads * len * len : layers * batch * len * hidden;
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<float> a(n), b(n), m;
  for (auto& v : a) v = u(rng);
  for (auto& v : b) v = u(rng);
  if (mask_mode) {
    m.assign(batch * len, 1.0f);
    std::bernoulli_distribution pad(0.3);
    for (auto& v : m) v = mask_mode == 2 || pad(rng) ? 0.0f : 1.0f;
  }
  auto tok_ok = [&](int64_t bi, int64_t l) { return m.empty() || m[bi * len + l] != 0.0f; };
  std::function<bool(int64_t)> valid;
  if (!attn) {
    valid = [&](int64_t e) {
      const int64_t tok = (e / hidden) % (batch * len);
      return tok_ok(tok / len, tok % len);
    };
  } else {
    valid = [&](int64_t e) {
      const int64_t k = e % len, q = (e / len) % len, bi = e / (len * len * heads);
      return tok_ok(bi, q) && tok_ok(bi, k);
    };
  }
  const float nan = std::nanf("");
  for (int64_t e = 0; e < n; ++e)
    if (!valid(e)) a[e] = b[e] = nan;  // padding must not leak
  const FeatRef ref = ref_mse(a, b, valid);

  DevBuf da(n + offset), db(n + offset), dg(n + offset), dl(1), dm(m.empty() ? 0 : m.size());
  std::vector<float> ha(offset, 0.0f), hb(offset, 0.0f);
  ha.insert(ha.end(), a.begin(), a.end());
  hb.insert(hb.end(), b.begin(), b.end());
  da.up(ha);
  db.up(hb);
  dg.fill(12345.0f);
  dl.fill(-777.0f);
  if (!m.empty()) dm.up(m);
  FeatureArgs f;
  f.a = da.p + offset;
  f.b = db.p + offset;
  f.token_mask = m.empty() ? nullptr : dm.p;
  f.layers = layers;
  f.batch = batch;
  f.heads = heads;
  f.len = len;
  f.hidden = hidden;
  float loss0 = 0, loss1 = 0;
  std::vector<float> g0, g1;
  for (int rep = 0; rep < 2; ++rep) {
    check_status(attn ? attention_mse_cuda(f, dg.p + offset, dl.p) : hidden_mse_cuda(f, dg.p + offset, dl.p),
                 "feature mse");
    (rep ? loss1 : loss0) = dl.down(1)[0];
    std::vector<float> g = dg.down(n + offset);
    (rep ? g1 : g0).assign(g.begin() + offset, g.end());
  }
  bool ok = close(loss0, ref.loss, 1e-5, 1e-7);
  double gmax = 0, err = 0;
  for (int64_t e = 0; e < n; ++e) {
    gmax = std::max(gmax, std::fabs(ref.grad[e]));
    const double de = std::fabs(g0[e] - ref.grad[e]);
    if (!(de <= err)) err = de;
  }
  ok = ok && err <= 1e-5 * gmax + 1e-12;
  const bool same = loss0 == loss1 && std::memcmp(g0.data(), g1.data(), n * 4) == 0;
  char name[160], detail[160];
  std::snprintf(name, sizeof name, "%s %lldx%lldx%lldx%lld mask=%s%s", attn ? "attentionMSE" : "hiddenMSE",
                (long long)(attn ? batch : layers), (long long)(attn ? heads : batch), (long long)len,
                (long long)(attn ? len : hidden),
                mask_mode == 0   ? "none"
                : mask_mode == 1 ? "random"
                                 : "all-padding",
                offset ? " misaligned" : "");
  std::snprintf(detail, sizeof detail, "loss %.8g vs %.8g, grad err %.3g of %.3g%s", loss0, ref.loss, err, gmax,
                same ? "" : ", NOT bit-identical");
  report(ok && same, name, ok && same ? "" : detail);
}

void feature_checks() {
  std::mt19937_64 rng(7);
  for (int mode = 0; mode < 3; ++mode) {
    check_feature(false, 2, 3, 1, 17, 64, mode, 0, rng);
    check_feature(false, 2, 3, 1, 17, 30, mode, 0, rng);
    check_feature(false, 2, 3, 1, 17, 64, mode, 1, rng);
    check_feature(true, 1, 3, 4, 20, 0, mode, 0, rng);
    check_feature(true, 1, 3, 4, 13, 0, mode, 0, rng);
    check_feature(true, 1, 3, 4, 20, 0, mode, 1, rng);
  }
  check_feature(false, 4, 8, 1, 128, 256, 1, 0, rng);
  check_feature(true, 1, 4, 12, 128, 0, 1, 0, rng);
}

void scale_checks() {
  const int64_t n = 1000003;
  std::vector<float> x(n + 1);
  for (int64_t i = 0; i <= n; ++i) x[i] = float(i % 1000) * 0.5f - 100.0f;
  for (int offset = 0; offset < 2; ++offset) {
    DevBuf dx(n + 1), dout(n + 1);
    dx.up(x);
    check_status(scale_cuda(dx.p + offset, -1.5f, dout.p + offset, n - offset), "scale_cuda");
    const std::vector<float> o = dout.down(n + 1);
    bool ok = true;
    for (int64_t i = 0; i < n - offset; ++i) ok = ok && o[i + offset] == x[i + offset] * -1.5f;
    check_status(scale_cuda(dx.p, 2.0f, dx.p, n + 1), "scale_cuda in place");
    const std::vector<float> o2 = dx.down(n + 1);
    for (int64_t i = 0; i <= n; ++i) ok = ok && o2[i] == x[i] * 2.0f;
    report(ok, offset ? "scale misaligned + in place" : "scale aligned + in place", "");
  }
}

// ---- timings ----

__global__ void spin_kernel(long long ns) {
  const long long start = clock64();
  while (clock64() - start < ns) {
  }
}

// Device time of op() alone: a spin kernel keeps the GPU busy while the host queues the start event,
// the op and the stop event, so the interval holds no host launch latency.
float time_us(const std::function<void()>& op, int reps = 50) {
  if (g_profile) {
    for (int i = 0; i < 3; ++i) op();
    check_status(device::synchronize(), "synchronize");
    return 1.0f;
  }
  for (int i = 0; i < 5; ++i) op();
  check_status(device::synchronize(), "synchronize");
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    spin_kernel<<<1, 1, 0, device::stream()>>>(400000);  // ~200 us: longer than the host needs to queue the rest
    check_status(device::timer_start(), "timer_start");
    op();
    float ms = 0;
    check_status(device::timer_stop(&ms), "timer_stop");
    t.push_back(ms * 1000.0f);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Device-to-device copy bandwidth (bytes read + written per second), the best of a few.
double copy_bandwidth() {
  const size_t bytes = size_t(1) << 29;
  void *a = nullptr, *b = nullptr;
  check_status(device::alloc(bytes, &a), "alloc");
  check_status(device::alloc(bytes, &b), "alloc");
  double best = 0;
  for (int i = 0; i < 10; ++i) {
    check_status(device::timer_start(), "timer_start");
    cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, device::stream());
    float ms = 0;
    check_status(device::timer_stop(&ms), "timer_stop");
    if (i > 1) best = std::max(best, 2.0 * bytes / (ms * 1e-3));
  }
  device::release(a);
  device::release(b);
  return best;
}

void bench() {
  const double bw = copy_bandwidth();
  std::printf("BENCH device: %s; copy bandwidth %.0f GB/s (read + write)\n", device::name().c_str(), bw / 1e9);
  std::mt19937_64 rng(1);
  const char* only = std::getenv("FD_BENCH_ONLY");  // run only the benchmarks whose name holds this
  auto wanted = [&](const char* name) { return !only || std::strstr(name, only) != nullptr; };
  auto line = [&](const char* name, float us, double bytes) {
    const double floor_us = bytes / bw * 1e6;
    std::printf("TIME %-44s %9.2f us   floor %9.2f us   ratio %5.2fx\n", name, us, floor_us, us / floor_us);
  };

  auto objective = [&](const char* name, int64_t rows, int64_t cols, const float* w, bool masked) {
    if (!wanted(name)) return;
    const size_t n = size_t(rows * cols);
    std::vector<float> s(n), t(n), y(n), m(n, 1.0f);
    std::uniform_real_distribution<float> u(-4, 4);
    std::uniform_int_distribution<int> grade(0, 3);
    for (size_t e = 0; e < n; ++e) s[e] = u(rng), t[e] = u(rng), y[e] = float(grade(rng));
    DevBuf ds(n), dt(n), dy(n), dm(n), dg(n), dr(8);
    ds.up(s), dt.up(t), dy.up(y), dm.up(m);
    ObjectiveArgs a;
    a.s = ds.p;
    a.t = dt.p;
    a.y = dy.p;
    a.mask = masked ? dm.p : nullptr;
    a.rows = rows;
    a.cols = cols;
    for (int k = 0; k < kNumTerms; ++k) a.weight[k] = w[k];
    a.temperature = 2.0f;
    const bool uses_t = w[kDistillKL] != 0 || w[kMarginMSE] != 0 || w[kScoreMSE] != 0;
    const bool uses_y = w[kPointwiseBCE] != 0 || w[kPairwiseRankNet] != 0 || w[kPairwiseHinge] != 0 ||
                        w[kListwiseSoftmaxCE] != 0;
    const double bytes = double(n) * 4 * (2 + uses_t + uses_y + masked);  // s, grad, t, y, mask
    line(name, time_us([&] { check_status(ranking_objective_cuda(a, dg.p, dr.p), "objective"); }), bytes);
  };
  const float ranknet[kNumTerms] = {0, 1, 0, 0, 0, 0, 0};
  const float kl[kNumTerms] = {0, 0, 0, 0, 1, 0, 0};
  const float both[kNumTerms] = {0, 1, 0, 0, 1, 0, 0};
  const float all[kNumTerms] = {0.5f, 1.0f, 0.25f, 0.7f, 1.5f, 0.3f, 0.2f};
  objective("objective RankNet 4096x64 (4 grades)", 4096, 64, ranknet, false);
  objective("objective KL 4096x64 T=2", 4096, 64, kl, false);
  objective("objective RankNet+KL 4096x64", 4096, 64, both, false);
  objective("objective all 7 terms 4096x64 masked", 4096, 64, all, true);
  objective("objective KL 98304x512 T=2", 98304, 512, kl, false);
  objective("objective KL 98304x512 T=2 masked", 98304, 512, kl, true);

  auto feature = [&](const char* name, bool attn, int64_t layers, int64_t batch, int64_t heads, int64_t len,
                     int64_t hidden, bool masked) {
    if (!wanted(name)) return;
    const int64_t n = attn ? batch * heads * len * len : layers * batch * len * hidden;
    DevBuf da(n), db(n), dg(n), dl(1), dm(batch * len);
    std::vector<float> h(n);
    std::uniform_real_distribution<float> u(-2, 2);
    for (auto& v : h) v = u(rng);
    da.up(h);
    for (auto& v : h) v = u(rng);
    db.up(h);
    std::vector<float> m(batch * len, 1.0f);
    for (int64_t bi = 0; bi < batch; ++bi)
      for (int64_t l = len * 3 / 4; l < len; ++l) m[bi * len + l] = 0.0f;  // a quarter padding
    dm.up(m);
    FeatureArgs f;
    f.a = da.p;
    f.b = db.p;
    f.token_mask = masked ? dm.p : nullptr;
    f.layers = layers;
    f.batch = batch;
    f.heads = heads;
    f.len = len;
    f.hidden = hidden;
    line(name, time_us([&] {
           check_status(attn ? attention_mse_cuda(f, dg.p, dl.p) : hidden_mse_cuda(f, dg.p, dl.p), "mse");
         }),
         3.0 * n * 4);
  };
  feature("hiddenMSE 32x512x768", false, 1, 32, 1, 512, 768, false);
  feature("hiddenMSE 32x512x768 masked (floor: all bytes)", false, 1, 32, 1, 512, 768, true);
  feature("attentionMSE 16x12x512x512", true, 1, 16, 12, 512, 0, false);

  if (wanted("scale")) {
    const int64_t n = 32 * 512 * 768;
    DevBuf x(n);
    x.fill(1.0f);
    line("scale 12.6M floats in place", time_us([&] { check_status(scale_cuda(x.p, 1.0f, x.p, n), "scale"); }),
         2.0 * n * 4);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool do_bench = !(argc > 1 && std::strcmp(argv[1], "--no-bench") == 0);
  g_profile = argc > 1 && std::strcmp(argv[1], "--profile") == 0;
  if (!device::built_with_cuda()) {
    std::printf("FAIL built without CUDA\n");
    return 2;
  }
  const Status st = device::init();
  if (st != kOk) {
    std::printf("SKIP no GPU: %s\n", device::last_error().c_str());
    return 3;
  }
  std::printf("device: %s\n", device::name().c_str());
  if (g_profile) {
    bench();
    return 0;
  }
  objective_checks();
  feature_checks();
  scale_checks();
  size_t in_use = 0, cached = 0;
  device::memory_stats(&in_use, &cached);
  std::printf("memory: %zu bytes in use (scratch), %zu cached\n", in_use, cached);
  std::printf("%s: %d of %d checks passed\n", g_failures ? "FAIL" : "PASS", g_checks - g_failures, g_checks);
  if (do_bench) bench();
  return g_failures ? 1 : 0;
}
