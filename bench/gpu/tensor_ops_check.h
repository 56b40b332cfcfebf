// Shared by bench/gpu/tensor_ops_check.cu (elementwise ops) and tensor_ops_check_shape.cu (reduce,
// softmax, layout): device buffers, random inputs, comparisons and the PASS/FAIL report.
#pragma once
#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "device.h"
#include "status.h"

namespace check {

// A device buffer from the library's allocator; `offset` bytes past an aligned block, to reach the
// kernels' unaligned (scalar) paths.
struct DevBuf {
  void* base = nullptr;
  char* ptr = nullptr;
  size_t bytes = 0;
  bool ok = false;
  DevBuf(size_t n, size_t offset = 0) : bytes(n) {
    ok = fd::device::alloc(n + offset + 16, &base) == fd::kOk;
    if (ok) ptr = static_cast<char*>(base) + offset;
  }
  ~DevBuf() {
    if (base) fd::device::release(base);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  bool upload(const void* src, size_t n) { return ok && (n == 0 || fd::device::upload(ptr, src, n) == fd::kOk); }
  bool download(void* dst, size_t n) const { return ok && (n == 0 || fd::device::download(dst, ptr, n) == fd::kOk); }
};

struct Report {
  int pass = 0, fail = 0;
  void line(bool ok, const std::string& name, const std::string& detail) {
    std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.empty() ? "" : "  ", detail.c_str());
    std::fflush(stdout);
    (ok ? pass : fail)++;
  }
};
Report& report();

// The status of a *_cuda call plus whatever the queued kernels raised (synchronises): "" when fine.
inline std::string device_error(fd::Status st) {
  const fd::Status sync = fd::device::synchronize();
  const cudaError_t last = cudaGetLastError();
  if (st != fd::kOk) return "status " + std::to_string(st) + ": " + fd::device::last_error();
  if (sync != fd::kOk) return "synchronize: " + fd::device::last_error();
  if (last != cudaSuccess) return std::string("CUDA error: ") + cudaGetErrorString(last);
  return "";
}

inline uint32_t bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
// Distance in ulps between two floats (+0 and -0 are 0 apart); huge for a NaN against a number.
inline int64_t ulp_diff(float a, float b) {
  if (a != a || b != b) return (a != a && b != b) ? 0 : INT64_MAX;
  if (a == b) return 0;
  auto key = [](float x) {
    const int64_t u = bits(x);
    return (u & 0x80000000) ? -(u & 0x7fffffff) : u;
  };
  const int64_t d = key(a) - key(b);
  return d < 0 ? -d : d;
}

enum class Tol { kExact, kUlp, kRel };

// Compares n floats: kExact: same bits (any NaN equals any NaN), kUlp: within `ulps`, kRel:
// |a - b| <= rel max(|a|, |b|) + abs_tol (infinities must match). Returns "" or the first mismatch.
inline std::string compare_f32(const float* got, const float* want, size_t n, Tol tol, int64_t ulps = 0, double rel = 0,
                               double abs_tol = 0) {
  for (size_t i = 0; i < n; ++i) {
    const float g = got[i], w = want[i];
    bool ok;
    if (g != g || w != w)
      ok = g != g && w != w;
    else if (tol == Tol::kExact)
      ok = bits(g) == bits(w);
    else if (tol == Tol::kUlp)
      ok = ulp_diff(g, w) <= ulps;
    else if (std::isinf(g) || std::isinf(w))
      ok = g == w;
    else
      ok = std::fabs(double(g) - double(w)) <= rel * std::fmax(std::fabs(double(g)), std::fabs(double(w))) + abs_tol;
    if (!ok) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "at %zu of %zu: got %.9g (0x%08x) want %.9g (0x%08x)", i, n, g, bits(g), w,
                    bits(w));
      return buf;
    }
  }
  return "";
}
inline std::string compare_bytes(const void* got, const void* want, size_t bytes, size_t elem) {
  const unsigned char* g = static_cast<const unsigned char*>(got);
  const unsigned char* w = static_cast<const unsigned char*>(want);
  for (size_t i = 0; i < bytes; ++i) {
    if (g[i] != w[i]) {
      char buf[160];
      if (elem == 4) {
        int32_t a, b;
        std::memcpy(&a, g + i / 4 * 4, 4);
        std::memcpy(&b, w + i / 4 * 4, 4);
        std::snprintf(buf, sizeof buf, "element %zu of %zu: got %d (0x%08x) want %d (0x%08x)", i / 4, bytes / 4, a,
                      uint32_t(a), b, uint32_t(b));
      } else {
        std::snprintf(buf, sizeof buf, "element %zu of %zu: got %u want %u", i, bytes, g[i], w[i]);
      }
      return buf;
    }
  }
  return "";
}

inline std::mt19937& rng() {
  static std::mt19937 r(12345);
  return r;
}
// Normal floats with ~`special` of them replaced by NaN, +-Inf, +-0, +-0.5, small integers.
inline std::vector<float> random_floats(size_t n, double special = 0.05, float scale = 3.0f) {
  std::normal_distribution<float> nd(0.0f, scale);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  static const float kSpecial[] = {NAN,  INFINITY, -INFINITY, 0.0f,  -0.0f, 0.5f,   -0.5f,
                                   1.0f, -1.0f,    2.5f,      -3.0f, 1e30f, -1e-40f};
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] = nd(rng());
    if (u(rng()) < special) v[i] = kSpecial[rng()() % (sizeof kSpecial / sizeof kSpecial[0])];
  }
  return v;
}
inline std::vector<int32_t> random_ints(size_t n, int32_t lo, int32_t hi) {
  std::uniform_int_distribution<int32_t> d(lo, hi);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(rng());
  return v;
}
inline std::vector<uint8_t> random_bools(size_t n, double p_true = 0.5) {
  std::bernoulli_distribution d(p_true);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = d(rng()) ? 1 : 0;
  return v;
}

inline std::string shape_str(const int64_t* s, int r) {
  std::string out = "[";
  for (int i = 0; i < r; ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}
inline int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

}  // namespace check

void run_shape_checks();  // tensor_ops_check_shape.cu
