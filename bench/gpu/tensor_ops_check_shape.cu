// The shape ops' half of bench/gpu/tensor_ops_check.cu (see there for the build command): reduce,
// softmax, transpose, slice, concat, tile, gather and unsorted segment sum, each *_cuda against its
// *_cpu on the same input.
#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <numeric>

#include "layout.h"
#include "reduce.h"
#include "softmax.h"
#include "tensor_ops_check.h"

using namespace fd;
using check::DevBuf;
using check::Tol;

namespace {

const char* type_name(DType t) { return t == kF32 ? "f32" : t == kI32 ? "i32" : "bool"; }
const char* op_name(ReduceOp op) {
  static const char* n[] = {"Sum", "Mean", "Prod", "Max", "Min", "Any", "All", "ArgMax", "ArgMin"};
  return n[int(op)];
}

// Inputs for a reduction: floats with specials (or with none: NaN-free sums), many +-0 for
// Max/Min (the sign rule), values near 1 for Prod; ints with large values for the wrapping sums.
std::vector<char> reduce_input(ReduceOp op, DType t, size_t n, bool specials) {
  std::vector<char> v(n * size_t(elem_bytes(t)));
  if (t == kF32) {
    auto f = check::random_floats(n, specials ? 0.02 : 0.0);
    if (op == ReduceOp::kProd)
      for (auto& x : f) x = std::isfinite(x) ? 1.0f + x * 0.01f : x;
    if (op == ReduceOp::kMax || op == ReduceOp::kMin)
      for (size_t i = 0; i < n; ++i)
        if (check::rng()() % 3 == 0) f[i] = (check::rng()() & 1) ? 0.0f : -0.0f;
    std::memcpy(v.data(), f.data(), v.size());
  } else if (t == kI32) {
    auto a = check::random_ints(n, -1000, 1000);
    if (op == ReduceOp::kSum)
      for (size_t i = 0; i < n; i += 5) a[i] = check::random_ints(1, INT32_MIN, INT32_MAX)[0];
    if (op == ReduceOp::kArgMax || op == ReduceOp::kArgMin)
      for (auto& x : a) x %= 8;  // ties
    std::memcpy(v.data(), a.data(), v.size());
  } else {
    auto b = check::random_bools(n, op == ReduceOp::kAll ? 0.97 : op == ReduceOp::kAny ? 0.03 : 0.5);
    std::memcpy(v.data(), b.data(), v.size());
  }
  return v;
}

void reduce_case(ReduceOp op, DType t, const std::vector<int64_t>& shape, uint32_t mask, bool specials) {
  const int out_t = reduce_output_type(op, t);
  const int rank = int(shape.size());
  int64_t n = check::numel(shape), kept = 1;
  for (int i = 0; i < rank; ++i)
    if (!((mask >> i) & 1u)) kept *= shape[i];
  char mbuf[16];
  std::snprintf(mbuf, sizeof mbuf, "0x%x", mask);
  const std::string name = std::string("reduce ") + op_name(op) + " " + type_name(t) + " " +
                           check::shape_str(shape.data(), rank) + " axes " + mbuf + (specials ? " +NaN/Inf" : "");
  const auto x = reduce_input(op, t, size_t(n), specials);
  const size_t ob = out_t == int(kU8) ? 1 : 4;
  std::vector<char> want(size_t(kept) * ob), got(want.size());
  reduce_cpu(op, t, x.data(), shape.data(), rank, mask, want.data());
  DevBuf dx(x.size()), dout(want.size());
  if (!dx.upload(x.data(), x.size())) return check::report().line(false, name, "upload: " + device::last_error());
  const std::string err = check::device_error(reduce_cuda(op, t, dx.ptr, shape.data(), rank, mask, dout.ptr));
  if (!err.empty()) return check::report().line(false, name, err);
  dout.download(got.data(), got.size());
  std::string diff;
  const bool float_sum = t == kF32 && (op == ReduceOp::kSum || op == ReduceOp::kMean || op == ReduceOp::kProd);
  if (out_t == int(kF32))
    diff = check::compare_f32(reinterpret_cast<float*>(got.data()), reinterpret_cast<float*>(want.data()), size_t(kept),
                              float_sum ? Tol::kRel : Tol::kExact, 0, 1e-5, 1e-6);
  else
    diff = check::compare_bytes(got.data(), want.data(), got.size(), ob);
  check::report().line(diff.empty(), name, diff);
}

void reduce_checks() {
  struct Shape {
    std::vector<int64_t> s;
    uint32_t mask;
  };
  const std::vector<Shape> multi = {
      {{}, 0},          {{4097}, 1},    {{3, 4097}, 2},          {{33, 17}, 1},
      {{5, 7, 9}, 5},   {{5, 7, 9}, 2}, {{2, 3, 4, 5, 6}, 0x15}, {{2, 3, 4, 5, 6}, 0x0a},
      {{1, 1}, 1},      {{4, 1, 6}, 2}, {{(1 << 20) + 5}, 1},    {{70000, 3}, 1},
      {{100, 2000}, 2}, {{3, 5}, 3},    {{6, 300, 2}, 2},        {{2, 3, 4, 5, 6}, 0x1f},
  };
  const std::vector<Shape> single = {{{4097}, 1},     {{3, 4097}, 2}, {{33, 17}, 1},        {{5, 7, 9}, 2},
                                     {{70000, 3}, 1}, {{4, 1, 6}, 2}, {{2, 3, 4, 5, 6}, 8}, {{9, 5000}, 2}};
  const ReduceOp ops[] = {ReduceOp::kSum, ReduceOp::kMean, ReduceOp::kProd,   ReduceOp::kMax,   ReduceOp::kMin,
                          ReduceOp::kAny, ReduceOp::kAll,  ReduceOp::kArgMax, ReduceOp::kArgMin};
  for (ReduceOp op : ops)
    for (DType t : {kF32, kI32, kU8}) {
      if (reduce_output_type(op, t) < 0) continue;
      const bool arg = op == ReduceOp::kArgMax || op == ReduceOp::kArgMin;
      for (const Shape& s : arg ? single : multi) {
        reduce_case(op, t, s.s, s.mask, false);
        if (t == kF32 && check::numel(s.s) < 100000) reduce_case(op, t, s.s, s.mask, true);
      }
    }
}

void softmax_checks() {
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1},    {7, 5},    {33, 32},  {5, 33},    {9, 1000},
                                                {3, 1024}, {4, 1025}, {2, 4097}, {3, 30522}, {2000, 64}};
  for (bool log : {false, true})
    for (const auto& rc : shapes)
      for (bool in_place : {false, true}) {
        const int64_t rows = rc.first, cols = rc.second, n = rows * cols;
        std::string name = std::string(log ? "logSoftmax " : "softmax ") + std::to_string(rows) + "x" +
                           std::to_string(cols) + (in_place ? " in-place" : "");
        auto x = check::random_floats(size_t(n), 0.0);
        if (rows >= 4) {  // special rows: a NaN, a +Inf, all -Inf, some -Inf
          x[0] = NAN;
          x[size_t(cols)] = INFINITY;
          for (int64_t c = 0; c < cols; ++c) x[size_t(2 * cols + c)] = -INFINITY;
          x[size_t(3 * cols)] = -INFINITY;
        }
        std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
        softmax_cpu(x.data(), rows, cols, want.data(), log);
        DevBuf dx(size_t(n) * 4), dout(size_t(n) * 4);
        dx.upload(x.data(), size_t(n) * 4);
        float* xp = reinterpret_cast<float*>(dx.ptr);
        float* op = in_place ? xp : reinterpret_cast<float*>(dout.ptr);
        const std::string err = check::device_error(softmax_cuda(xp, rows, cols, op, log));
        if (!err.empty()) {
          check::report().line(false, name, err);
          continue;
        }
        (in_place ? dx : dout).download(got.data(), size_t(n) * 4);
        // log-softmax is x - max - log(sum) of O(1..10) terms: a result near 0 keeps their absolute
        // rounding error (1.2e-7 seen on the H100 for -0.00137), so its absolute floor is 1e-6.
        const std::string diff = check::compare_f32(got.data(), want.data(), size_t(n), Tol::kRel, 0, 1e-5,
                                                    log ? 1e-6 : 1e-7);
        check::report().line(diff.empty(), name, diff);
      }
}

// Random bytes: layout ops copy bits, so any pattern (NaN payloads included) must come back exactly.
std::vector<char> random_bytes(size_t n) {
  std::vector<char> v(n);
  for (auto& c : v) c = char(check::rng()());
  return v;
}

// Runs `gpu` on the device copy of `x` and `cpu` on the host copy, compares the `out_bytes` results.
template <class Cpu, class Gpu>
void layout_case(const std::string& name, const std::vector<char>& x, size_t out_bytes, int64_t elem, Cpu cpu, Gpu gpu,
                 size_t offset = 0) {
  std::vector<char> want(out_bytes), got(out_bytes);
  cpu(x.data(), want.data());
  DevBuf dx(x.size(), offset), dout(out_bytes, offset);
  dx.upload(x.data(), x.size());
  const std::string err = check::device_error(gpu(dx.ptr, dout.ptr));
  if (!err.empty()) return check::report().line(false, name, err);
  dout.download(got.data(), out_bytes);
  const std::string diff = check::compare_bytes(got.data(), want.data(), out_bytes, size_t(elem));
  check::report().line(diff.empty(), name, diff);
}

void transpose_checks() {
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int>>> cases = {
      {{}, {}},
      {{2, 3}, {1, 0}},
      {{33, 65}, {1, 0}},
      {{4, 5, 6}, {0, 2, 1}},
      {{2, 3, 4, 5}, {0, 2, 1, 3}},
      {{2, 3, 4, 5, 6}, {4, 0, 3, 1, 2}},
      {{1, 7, 1, 9}, {3, 1, 0, 2}},
      {{4097, 3}, {1, 0}},
      {{3, 4097}, {1, 0}},
      {{8, 128, 4, 64}, {0, 2, 1, 3}},
      {{7, 40, 50}, {2, 1, 0}},
      {{16, 8}, {0, 1}},
  };
  for (int64_t elem : {int64_t(4), int64_t(1)})
    for (const auto& c : cases) {
      const int rank = int(c.first.size());
      const size_t bytes = size_t(check::numel(c.first) * elem);
      std::string perm;
      for (int p : c.second) perm += std::to_string(p);
      const std::string name = "transpose " + check::shape_str(c.first.data(), rank) + " perm " + perm + " elem " +
                               std::to_string(elem);
      layout_case(
          name, random_bytes(bytes), bytes, elem,
          [&](const void* x, void* o) { transpose_cpu(x, c.first.data(), rank, c.second.data(), o, elem); },
          [&](const void* x, void* o) { return transpose_cuda(x, c.first.data(), rank, c.second.data(), o, elem); });
    }
}

void slice_checks() {
  struct C {
    std::vector<int64_t> shape, begin, size;
  };
  const std::vector<C> cases = {
      {{}, {}, {}},
      {{5, 7, 9}, {1, 2, 3}, {3, 4, 5}},
      {{5, 7, 9}, {0, 0, 0}, {5, 7, 9}},
      {{4097}, {5}, {4000}},
      {{2, 3, 4, 5, 6}, {1, 0, 1, 0, 2}, {1, 3, 2, 5, 3}},
      {{8, 16}, {1, 4}, {6, 8}},
      {{6, 10, 32}, {2, 0, 0}, {3, 10, 32}},
      {{3, 4097}, {0, 1}, {3, 4096}},
  };
  for (int64_t elem : {int64_t(4), int64_t(1)})
    for (const C& c : cases) {
      const int rank = int(c.shape.size());
      const size_t in_bytes = size_t(check::numel(c.shape) * elem), out_bytes = size_t(check::numel(c.size) * elem);
      const std::string name = "slice " + check::shape_str(c.shape.data(), rank) + " begin " +
                               check::shape_str(c.begin.data(), rank) + " size " +
                               check::shape_str(c.size.data(), rank) + " elem " + std::to_string(elem);
      layout_case(
          name, random_bytes(in_bytes), out_bytes, elem,
          [&](const void* x, void* o) { slice_cpu(x, c.shape.data(), rank, c.begin.data(), c.size.data(), o, elem); },
          [&](const void* x, void* o) {
            return slice_cuda(x, c.shape.data(), rank, c.begin.data(), c.size.data(), o, elem);
          });
    }
}

void concat_checks() {
  const std::vector<std::pair<int64_t, std::vector<int64_t>>> cases = {
      {7, {3, 5, 8}}, {5, {4, 8, 16}}, {1, {4097}}, {3, {0, 6, 0, 2}}, {1000, {1, 2, 3}}, {2, {64, 64, 64, 64}}};
  for (int64_t elem : {int64_t(4), int64_t(1)})
    for (const auto& c : cases) {
      const int64_t outer = c.first;
      const std::vector<int64_t>& inner = c.second;
      const int n = int(inner.size());
      const std::string name = "concat outer " + std::to_string(outer) + " inner " + check::shape_str(inner.data(), n) +
                               " elem " + std::to_string(elem);
      std::vector<std::vector<char>> xs;
      int64_t width = 0;
      for (int64_t w : inner) {
        xs.push_back(random_bytes(size_t(outer * w * elem)));
        width += w;
      }
      const size_t out_bytes = size_t(outer * width * elem);
      std::vector<const void*> host_ptrs;
      for (auto& v : xs) host_ptrs.push_back(v.data());
      std::vector<char> want(out_bytes), got(out_bytes);
      concat_cpu(host_ptrs.data(), inner.data(), n, outer, want.data(), elem);
      std::vector<std::unique_ptr<DevBuf>> dxs;
      std::vector<const void*> dev_ptrs;
      for (auto& v : xs) {
        dxs.emplace_back(new DevBuf(v.size()));
        dxs.back()->upload(v.data(), v.size());
        dev_ptrs.push_back(dxs.back()->ptr);
      }
      DevBuf dout(out_bytes);
      const std::string err = check::device_error(concat_cuda(dev_ptrs.data(), inner.data(), n, outer, dout.ptr, elem));
      if (!err.empty()) {
        check::report().line(false, name, err);
        continue;
      }
      dout.download(got.data(), out_bytes);
      const std::string diff = check::compare_bytes(got.data(), want.data(), out_bytes, size_t(elem));
      check::report().line(diff.empty(), name, diff);
    }
}

void tile_checks() {
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> cases = {
      {{}, {}},
      {{3}, {4}},
      {{2, 3}, {3, 2}},
      {{1, 5, 1}, {2, 1, 3}},
      {{4}, {1}},
      {{8}, {513}},
      {{2, 3, 2, 1, 3}, {2, 1, 3, 4, 1}},
      {{4097}, {2}},
      {{16, 4}, {2, 3}},
  };
  for (int64_t elem : {int64_t(4), int64_t(1)})
    for (const auto& c : cases) {
      const int rank = int(c.first.size());
      int64_t out_n = 1;
      for (int i = 0; i < rank; ++i) out_n *= c.first[size_t(i)] * c.second[size_t(i)];
      const size_t in_bytes = size_t(check::numel(c.first) * elem), out_bytes = size_t(out_n * elem);
      const std::string name = "tile " + check::shape_str(c.first.data(), rank) + " reps " +
                               check::shape_str(c.second.data(), rank) + " elem " + std::to_string(elem);
      layout_case(
          name, random_bytes(in_bytes), out_bytes, elem,
          [&](const void* x, void* o) { tile_cpu(x, c.first.data(), rank, c.second.data(), o, elem); },
          [&](const void* x, void* o) { return tile_cuda(x, c.first.data(), rank, c.second.data(), o, elem); });
    }
}

void gather_checks() {
  struct C {
    int64_t batch, outer, dim, slice, n;
    bool out_of_range;
  };
  const C cases[] = {{1, 1, 10, 1, 5, false}, {2, 3, 7, 5, 4, false},   {1, 1, 30522, 256, 64, false},
                     {1, 4, 9, 4, 6, true},   {3, 1, 5, 1, 4097, true}, {1, 2, 100, 3, 0, false}};
  for (int64_t elem : {int64_t(4), int64_t(1)})
    for (const C& c : cases) {
      const std::string name = "gather batch " + std::to_string(c.batch) + " outer " + std::to_string(c.outer) +
                               " dim " + std::to_string(c.dim) + " slice " + std::to_string(c.slice) + " n " +
                               std::to_string(c.n) + (c.out_of_range ? " out-of-range->0" : "") + " elem " +
                               std::to_string(elem);
      auto idx = check::random_ints(size_t(c.batch * c.n), 0, int32_t(c.dim - 1));
      if (c.out_of_range)
        for (size_t i = 0; i < idx.size(); i += 3) idx[i] = (i % 2) ? int32_t(c.dim) : -1;
      const auto x = random_bytes(size_t(c.batch * c.outer * c.dim * c.slice * elem));
      const size_t row = size_t(c.slice * elem), out_bytes = size_t(c.batch * c.outer * c.n) * row;
      std::vector<char> want(out_bytes, 0), got(out_bytes);
      if (!c.out_of_range) {
        gather_cpu(x.data(), c.batch, c.outer, c.dim, c.slice, idx.data(), c.n, want.data(), elem);
      } else {  // the GPU rule: zeros for an index outside [0, dim); gather_cpu requires valid ones
        for (int64_t b = 0; b < c.batch; ++b)
          for (int64_t o = 0; o < c.outer; ++o)
            for (int64_t i = 0; i < c.n; ++i) {
              const int64_t k = idx[size_t(b * c.n + i)];
              if (k >= 0 && k < c.dim)
                std::memcpy(&want[size_t((b * c.outer + o) * c.n + i) * row],
                            &x[size_t((b * c.outer + o) * c.dim + k) * row], row);
            }
      }
      DevBuf dx(x.size()), didx(idx.size() * 4), dout(out_bytes);
      dx.upload(x.data(), x.size());
      didx.upload(idx.data(), idx.size() * 4);
      const std::string err = check::device_error(gather_cuda(
          dx.ptr, c.batch, c.outer, c.dim, c.slice, reinterpret_cast<const int32_t*>(didx.ptr), c.n, dout.ptr, elem));
      if (!err.empty()) {
        check::report().line(false, name, err);
        continue;
      }
      dout.download(got.data(), out_bytes);
      const std::string diff = check::compare_bytes(got.data(), want.data(), out_bytes, size_t(elem));
      check::report().line(diff.empty(), name, diff);
    }
}

void segment_sum_checks() {
  struct C {
    int64_t rows, cols, segments;
  };
  const C cases[] = {{2048, 256, 30522}, {10, 1, 3}, {5000, 3, 7}, {1, 5, 1}, {0, 4, 6}, {3000, 33, 2500}};
  for (const C& c : cases) {
    const std::string name = "unsortedSegmentSum rows " + std::to_string(c.rows) + " cols " + std::to_string(c.cols) +
                             " segments " + std::to_string(c.segments);
    auto ids = check::random_ints(size_t(c.rows), 0, int32_t(c.segments - 1));
    for (size_t i = 5; i < ids.size(); i += 17) ids[i] = (i % 2) ? -1 : int32_t(c.segments);  // dropped rows
    auto x = check::random_floats(size_t(c.rows * c.cols), 0.0);
    for (size_t i = 0; i < x.size(); i += 13) x[i] = -0.0f;
    const size_t out_n = size_t(c.segments * c.cols);
    std::vector<float> want(out_n), got(out_n);
    unsorted_segment_sum_cpu(x.data(), c.rows, c.cols, ids.data(), c.segments, want.data());
    DevBuf dx(x.size() * 4), dids(ids.size() * 4), dout(out_n * 4);
    dx.upload(x.data(), x.size() * 4);
    dids.upload(ids.data(), ids.size() * 4);
    std::string err = check::device_error(unsorted_segment_sum_cuda(reinterpret_cast<const float*>(dx.ptr), c.rows,
                                                                    c.cols, reinterpret_cast<const int32_t*>(dids.ptr),
                                                                    c.segments, reinterpret_cast<float*>(dout.ptr)));
    if (!err.empty()) {
      check::report().line(false, name, err);
      continue;
    }
    dout.download(got.data(), out_n * 4);
    std::string diff = check::compare_f32(got.data(), want.data(), out_n, Tol::kExact);
    check::report().line(diff.empty(), name, diff);
  }
}

}  // namespace

void run_shape_checks() {
  reduce_checks();
  softmax_checks();
  transpose_checks();
  slice_checks();
  concat_checks();
  tile_checks();
  gather_checks();
  segment_sum_checks();
}
