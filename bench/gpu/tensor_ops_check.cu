// Self-check of the 'cuda' backend's tensor kernels (kernels/cuda/elementwise_ops.cu, reduce.cu,
// softmax.cu, layout.cu) against the CPU kernels (*_cpu) on the same random inputs: odd
// shapes of rank 0..5, broadcasting of every kind, rows of 4097 and longer, NaN / Inf / +-0 inputs,
// unaligned pointers (the scalar paths) and in-place calls. One PASS/FAIL line per case; exit status
// 0 when all pass, 1 on any failure, 2 without a usable CUDA device. A CUDA error in one case is
// reported as that case's failure (later cases may then fail too: errors such as an illegal address
// are sticky). Runs in a few seconds.
//
// Tolerances: bit-exact for layout ops, casts, fills, comparisons, arithmetic, int reductions,
// Max/Min/Any/All/ArgMax/ArgMin and the segment sum (same order, double, one rounding); 1 ulp for
// pow / sin / cos (device double libm), 2 ulp for the transcendental unary ops (FMA contraction may
// differ between g++ and nvcc); relative 1e-5 for float Sum / Mean / Prod and softmax (different
// summation order).
//
// Build and run, from the repository root (needs a GPU; nvcc 12+):
//   nvcc -std=c++17 -O3 -arch=sm_90 -Ikernels -Xcompiler -fopenmp,-ffp-contract=fast -o build/tensor_ops_check \
//     bench/gpu/tensor_ops_check.cu bench/gpu/tensor_ops_check_shape.cu kernels/cuda/device.cu \
//     kernels/cuda/elementwise_ops.cu kernels/cuda/reduce.cu kernels/cuda/softmax.cu \
//     kernels/cuda/layout.cu kernels/cpu/elementwise_binary.cpp kernels/cpu/elementwise_unary.cpp \
//     kernels/cpu/reduce.cpp kernels/cpu/softmax.cpp kernels/cpu/layout.cpp \
//     kernels/cpu/parallel.cpp -lgomp
//   ./build/tensor_ops_check
#include <cuda_runtime.h>

#include <algorithm>

#include "elementwise.h"
#include "tensor_ops_check.h"

using namespace fd;
using check::DevBuf;
using check::Tol;

check::Report& check::report() {
  static Report r;
  return r;
}

namespace {

size_t type_bytes(int t) { return t == kU8 ? 1 : 4; }

// Random input of element type t (float with specials; int32 with zeros, negatives and large values).
std::vector<char> random_input(int t, size_t n, int op = -1) {
  std::vector<char> v(n * type_bytes(t));
  if (t == kF32) {
    auto f = check::random_floats(n, 0.08);
    if (op == kPow)  // bases near 1 and small exponents too, so results stay finite and not trivial
      for (size_t i = 0; i < n; i += 3) f[i] = 0.5f + (f[i] - std::floor(f[i]));
    std::memcpy(v.data(), f.data(), v.size());
  } else if (t == kI32) {
    auto a = check::random_ints(n, -60, 60);
    for (size_t i = 0; i < n; i += 7) a[i] = check::random_ints(1, INT32_MIN, INT32_MAX)[0];
    std::memcpy(v.data(), a.data(), v.size());
  } else {
    auto b = check::random_bools(n);
    std::memcpy(v.data(), b.data(), v.size());
  }
  return v;
}

// One binary case: op on (a_shape, b_shape), inputs offset by `offset` bytes; in_place: out = a.
void binary_case(int op, int in, std::vector<int64_t> as, std::vector<int64_t> bs, size_t offset = 0,
                 bool in_place = false) {
  const int out_t = binary_out_type(op, in);
  int64_t os[kMaxRank];
  int orank = 0;
  broadcast_shape(as.data(), int(as.size()), bs.data(), int(bs.size()), os, &orank);
  const int64_t na = check::numel(as), nb = check::numel(bs);
  int64_t no = 1;
  for (int i = 0; i < orank; ++i) no *= os[i];
  std::string name = std::string("binary ") + binary_op_name(op) + (in == kF32 ? " f32 " : " i32 ") +
                     check::shape_str(as.data(), int(as.size())) + " x " + check::shape_str(bs.data(), int(bs.size()));
  if (offset) name += " unaligned";
  if (in_place) name += " in-place";
  const auto a = random_input(in, size_t(na), op), b = random_input(in, size_t(nb), op);
  std::vector<char> want(size_t(no) * type_bytes(out_t)), got(want.size());
  binary_cpu(op, in, a.data(), as.data(), int(as.size()), b.data(), bs.data(), int(bs.size()), want.data());
  DevBuf da(a.size(), offset), db(b.size(), offset), dout(want.size(), offset);
  if (!da.upload(a.data(), a.size()) || !db.upload(b.data(), b.size()))
    return check::report().line(false, name, "upload: " + device::last_error());
  void* out_ptr = in_place ? da.ptr : dout.ptr;
  const std::string err = check::device_error(
      binary_cuda(op, in, da.ptr, as.data(), int(as.size()), db.ptr, bs.data(), int(bs.size()), out_ptr));
  if (!err.empty()) return check::report().line(false, name, err);
  (in_place ? da : dout).download(got.data(), got.size());
  std::string diff;
  if (out_t == kF32)
    diff = check::compare_f32(reinterpret_cast<float*>(got.data()), reinterpret_cast<float*>(want.data()), size_t(no),
                              op == kPow ? Tol::kUlp : Tol::kExact, 1);
  else
    diff = check::compare_bytes(got.data(), want.data(), got.size(), type_bytes(out_t));
  check::report().line(diff.empty(), name, diff);
}

void binary_checks() {
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shapes = {
      {{}, {}},
      {{7}, {7}},
      {{3, 5}, {}},
      {{}, {4, 1}},
      {{2, 3, 4, 5}, {4, 5}},
      {{4097}, {1}},
      {{2, 1, 3}, {1, 5, 1}},
      {{2, 3, 1, 5, 2}, {3, 4, 1, 2}},
      {{8, 16}, {8, 16}},
      {{3, 1024}, {1024}},
      {{5, 1}, {1, 6}},
      {{64, 1}, {64, 12}},
      {{1, 4101}, {3, 1}},
  };
  for (int op = 0; op < kNumBinaryOps; ++op)
    for (int in : {int(kF32), int(kI32)}) {
      if (binary_out_type(op, in) < 0) continue;
      for (const auto& s : shapes) binary_case(op, in, s.first, s.second);
      binary_case(op, in, {6, 7}, {7}, 4);  // unaligned: the scalar path
    }
  binary_case(kAdd, kF32, {1 << 20}, {1 << 20});  // a long vectorised run
  binary_case(kMul, kF32, {33, 64}, {64}, 0, true);
  binary_case(kSub, kI32, {2, 3, 4}, {3, 1}, 0, true);
}

std::vector<float> unary_input(size_t n) {
  auto v = check::random_floats(n, 0.05, 4.0f);
  std::uniform_real_distribution<float> wide(-120.0f, 120.0f);
  for (size_t i = 1; i < n; i += 5) v[i] = wide(check::rng());       // the exp/log ranges' ends
  for (size_t i = 2; i < n; i += 11) v[i] = std::ldexp(v[i], -130);  // subnormals
  for (size_t i = 3; i < n; i += 13) v[i] = std::fabs(v[i]) * 1e-5f;
  return v;
}

void unary_checks() {
  for (int op = 0; op < kNumUnaryOps; ++op) {
    const double p0 = op == kLeakyRelu ? 0.2 : op == kStep ? 0.3 : op == kClipByValue ? -0.5 : 0.0;
    const double p1 = op == kClipByValue ? 0.75 : 0.0;
    const bool transcendental = op <= kSelu;  // Exp .. Selu
    const bool libm = op == kSin || op == kCos;
    for (size_t n : {size_t(1), size_t(4097 + 3), size_t(100000)}) {
      for (size_t offset : {size_t(0), size_t(4)}) {
        if (offset && n != 4100) continue;
        std::string name = std::string("unary ") + unary_op_name(op) + " n=" + std::to_string(n) +
                           (offset ? " unaligned" : "");
        const auto x = unary_input(n);
        const int out_t = unary_out_type(op);
        std::vector<char> want(n * type_bytes(out_t)), got(want.size());
        unary_cpu(op, x.data(), want.data(), int64_t(n), p0, p1);
        DevBuf dx(n * 4, offset), dout(want.size(), offset);
        if (!dx.upload(x.data(), n * 4)) {
          check::report().line(false, name, "upload: " + device::last_error());
          continue;
        }
        const std::string err = check::device_error(
            unary_cuda(op, reinterpret_cast<const float*>(dx.ptr), dout.ptr, int64_t(n), p0, p1));
        if (!err.empty()) {
          check::report().line(false, name, err);
          continue;
        }
        dout.download(got.data(), got.size());
        std::string diff;
        if (out_t == kF32)
          diff = check::compare_f32(reinterpret_cast<float*>(got.data()), reinterpret_cast<float*>(want.data()), n,
                                    transcendental || libm ? Tol::kUlp : Tol::kExact, transcendental ? 2 : 1);
        else
          diff = check::compare_bytes(got.data(), want.data(), got.size(), 1);
        check::report().line(diff.empty(), name, diff);
      }
    }
  }
  // In place.
  const size_t n = 5000;
  const auto x = unary_input(n);
  std::vector<float> want(n), got(n);
  unary_cpu(kRelu, x.data(), want.data(), int64_t(n), 0, 0);
  DevBuf dx(n * 4);
  dx.upload(x.data(), n * 4);
  std::string err = check::device_error(unary_cuda(kRelu, reinterpret_cast<float*>(dx.ptr), dx.ptr, int64_t(n), 0, 0));
  if (err.empty()) {
    dx.download(got.data(), n * 4);
    err = check::compare_f32(got.data(), want.data(), n, Tol::kExact);
  }
  check::report().line(err.empty(), "unary Relu in-place", err);
}

void cast_checks() {
  const char* names[3] = {"f32", "i32", "bool"};
  for (int in = 0; in < 3; ++in)
    for (int out = 0; out < 3; ++out)
      for (size_t n : {size_t(1), size_t(4099)})
        for (size_t offset : {size_t(0), size_t(4)}) {
          const std::string name = std::string("cast ") + names[in] + " -> " + names[out] + " n=" + std::to_string(n) +
                                   (offset ? " unaligned" : "");
          auto x = random_input(in, n);
          if (in == kF32) {  // values that wrap or truncate
            float* f = reinterpret_cast<float*>(x.data());
            const float big[] = {3e9f, -3e9f, 1e20f, -2.5f, 2147483648.0f, -2147483904.0f, 9.3e18f, 0.999f};
            for (size_t i = 0; i < n; i += 9) f[i] = big[i % 8];
          }
          std::vector<char> want(n * type_bytes(out)), got(want.size());
          cast_cpu(in, x.data(), out, want.data(), int64_t(n));
          DevBuf dx(x.size(), offset), dout(want.size(), offset);
          dx.upload(x.data(), x.size());
          const std::string err = check::device_error(cast_cuda(in, dx.ptr, out, dout.ptr, int64_t(n)));
          if (!err.empty()) {
            check::report().line(false, name, err);
            continue;
          }
          dout.download(got.data(), got.size());
          const std::string diff = check::compare_bytes(got.data(), want.data(), got.size(), type_bytes(out));
          check::report().line(diff.empty(), name, diff);
        }
}

void fill_checks() {
  const char* names[3] = {"f32", "i32", "bool"};
  for (int t = 0; t < 3; ++t)
    for (double v : {0.0, 1.5, -7.0, 3e9, double(NAN), 300.0, -1.0, 1e-45})
      for (size_t n : {size_t(1), size_t(5), size_t(4097)})
        for (size_t offset : {size_t(0), size_t(4)}) {
          char vs[32];
          std::snprintf(vs, sizeof vs, "%g", v);
          const std::string name = std::string("fill ") + names[t] + " " + vs + " n=" + std::to_string(n) +
                                   (offset ? " unaligned" : "");
          std::vector<char> want(n * type_bytes(t)), got(want.size());
          fill_cpu(t, want.data(), int64_t(n), v);
          DevBuf dout(want.size(), offset);
          const std::string err = check::device_error(fill_cuda(t, dout.ptr, int64_t(n), v));
          if (!err.empty()) {
            check::report().line(false, name, err);
            continue;
          }
          dout.download(got.data(), got.size());
          const std::string diff = check::compare_bytes(got.data(), want.data(), got.size(), type_bytes(t));
          check::report().line(diff.empty(), name, diff);
        }
}

}  // namespace

int main() {
  const Status st = device::init();
  if (st != kOk) {
    std::fprintf(stderr, "tensor_ops_check: no usable CUDA device (status %d): %s\n", int(st),
                 device::last_error().c_str());
    return 2;
  }
  std::printf("device: %s\n", device::name().c_str());
  binary_checks();
  unary_checks();
  cast_checks();
  fill_checks();
  run_shape_checks();
  const check::Report& r = check::report();
  std::printf("%d passed, %d failed\n", r.pass, r.fail);
  return r.fail == 0 ? 0 : 1;
}
