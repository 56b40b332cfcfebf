// fd::attention_cpu, fd::attention_grad_cpu (contract: kernels/attention.h). The (batch, head) pairs
// run in parallel over fixed blocks of one pair (parallel.h); each pair is computed start to end by
// one thread, its products by sgemm_cpu on strided views of the [batch, len, hidden] operands (lda =
// hidden; single-threaded there, as every nested call). So the results never depend on the thread
// count. The [len, len] score / gradient matrix of a pair (64 KB at len 128) stays in L2 between the
// products; forward writes it once as P (backward needs it: recomputing Q K^T and the softmax would
// cost a third product and the exps again, more than reading P back at these lengths).
#include <algorithm>
#include <new>
#include <vector>

#include "../attention.h"
#include "../softmax.h"
#include "parallel.h"

namespace fd {
namespace {

bool valid_shape(int64_t batch, int64_t len, int64_t hidden, int64_t heads) {
  return batch > 0 && len > 0 && hidden > 0 && heads > 0 && hidden % heads == 0;
}

// Per-thread [len, len] workspaces, allocated before the parallel loop (an allocation inside it
// cannot fail gracefully). Empty (and ok) when not needed.
struct Workspace {
  std::vector<float> data;
  int64_t per = 0;
  bool allocate(int threads, int64_t per_thread) {
    per = per_thread;
    if (per_thread == 0) return true;
    if (static_cast<double>(threads) * per_thread * 4 > static_cast<double>(physical_memory_bytes())) return false;
    try {
      data.resize(static_cast<size_t>(threads * per_thread));
    } catch (const std::bad_alloc&) {
      return false;
    }
    return true;
  }
  float* of(int thread) { return data.data() + thread * per; }
};

// One product on views: C (m x n, ldc) = op(A) op(B), batch 1.
Status gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
            float* c, int64_t ldc, GemmPrecision precision) {
  GemmArgs g;
  g.trans_a = ta;
  g.trans_b = tb;
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = a;
  g.lda = lda;
  g.b = b;
  g.ldb = ldb;
  g.c = c;
  g.ldc = ldc;
  // The host has no TF32 (as in kernels/cuda/no_cuda.cpp): a 'cuda' run emulated on the host gets fp32.
  g.precision = precision == GemmPrecision::kTf32 ? GemmPrecision::kFp32 : precision;
  return sgemm_cpu(g);
}

// Keeps the first failure of any pair (every pair still runs; outputs are then unspecified).
struct FirstError {
  std::vector<Status> per_pair;
  Status get() const {
    for (const Status s : per_pair)
      if (s != kOk) return s;
    return kOk;
  }
};

}  // namespace

Status attention_cpu(const AttentionArgs& a) {
  if (!valid_shape(a.batch, a.len, a.hidden, a.heads)) return kBadShape;
  const int64_t L = a.len, H = a.hidden, A = a.heads, dh = H / A, pairs = a.batch * A;
  // Two products of 2 L^2 dh flops and ~10 flops per score for the softmax.
  const int64_t work = L * L * (4 * dh + 10);
  const int threads = threads_for(work * pairs, pairs);
  Workspace ws;
  if (!ws.allocate(threads, a.probs ? 0 : L * L)) return kNoMemory;
  FirstError err{std::vector<Status>(static_cast<size_t>(pairs), kOk)};
  for_each_block(
      pairs, 1, work * pairs,
      [&](int64_t pair, int64_t, int64_t) {
        const int64_t b = pair / A, h = pair % A;
        const int64_t off = b * L * H + h * dh;
        float* s = a.probs ? a.probs + pair * L * L : ws.of(block_thread());
        Status st = gemm(false, true, L, L, dh, a.q + off, H, a.k + off, H, s, L, a.precision);
        if (st == kOk) {
          const float* bias = a.key_bias + b * L;
          // scale, bias and max in one pass (kernels/softmax.h)
          for (int64_t i = 0; i < L; ++i) scaled_softmax_row(s + i * L, L, a.scale, bias);
          st = gemm(false, false, L, dh, L, s, L, a.v + off, H, a.out + off, H, a.precision);
        }
        err.per_pair[static_cast<size_t>(pair)] = st;
      },
      threads);
  return err.get();
}

Status attention_grad_cpu(const AttentionGradArgs& a) {
  if (!valid_shape(a.batch, a.len, a.hidden, a.heads)) return kBadShape;
  const int64_t L = a.len, H = a.hidden, A = a.heads, dh = H / A, pairs = a.batch * A;
  // Four products of 2 L^2 dh flops and ~6 flops per score for the softmax gradient.
  const int64_t work = L * L * (8 * dh + 6);
  const int threads = threads_for(work * pairs, pairs);
  Workspace ws;
  if (!ws.allocate(threads, L * L)) return kNoMemory;
  // Per pair: the column sums of G (the key bias gradient's share), added over heads in order below.
  std::vector<double> bias_part;
  if (a.dkey_bias) {
    try {
      bias_part.assign(static_cast<size_t>(pairs * L), 0.0);
    } catch (const std::bad_alloc&) {
      return kNoMemory;
    }
  }
  FirstError err{std::vector<Status>(static_cast<size_t>(pairs), kOk)};
  for_each_block(
      pairs, 1, work * pairs,
      [&](int64_t pair, int64_t, int64_t) {
        const int64_t b = pair / A, h = pair % A;
        const int64_t off = b * L * H + h * dh;
        const float* p = a.probs + pair * L * L;
        float* w = ws.of(block_thread());
        // dV = P^T dO
        Status st = gemm(true, false, L, dh, L, p, L, a.dout + off, H, a.dv + off, H, a.precision);
        // dP = dO V^T
        if (st == kOk) st = gemm(false, true, L, L, dh, a.dout + off, H, a.v + off, H, w, L, a.precision);
        if (st == kOk) {
          double* col = a.dkey_bias ? bias_part.data() + pair * L : nullptr;
          const float scale = a.scale;
          for (int64_t i = 0; i < L; ++i) {
            const float* __restrict pr = p + i * L;
            float* __restrict wr = w + i * L;
            double dot = 0.0;
#pragma omp simd reduction(+ : dot)
            for (int64_t j = 0; j < L; ++j) dot += static_cast<double>(wr[j]) * pr[j];
            const float r = static_cast<float>(dot);
            if (col) {
              double* __restrict c = col;
#pragma omp simd
              for (int64_t j = 0; j < L; ++j) {
                const float g = pr[j] * (wr[j] - r);
                c[j] += g;
                wr[j] = g * scale;
              }
            } else {
#pragma omp simd
              for (int64_t j = 0; j < L; ++j) wr[j] = pr[j] * (wr[j] - r) * scale;
            }
          }
          // dQ = dS K, dK = dS^T Q
          st = gemm(false, false, L, dh, L, w, L, a.k + off, H, a.dq + off, H, a.precision);
          if (st == kOk) st = gemm(true, false, L, dh, L, w, L, a.q + off, H, a.dk + off, H, a.precision);
        }
        err.per_pair[static_cast<size_t>(pair)] = st;
      },
      threads);
  if (a.dkey_bias) {
    for (int64_t b = 0; b < a.batch; ++b)
      for (int64_t j = 0; j < L; ++j) {
        double sum = 0.0;
        for (int64_t h = 0; h < A; ++h) sum += bias_part[static_cast<size_t>((b * A + h) * L + j)];
        a.dkey_bias[b * L + j] = static_cast<float>(sum);
      }
  }
  return err.get();
}

}  // namespace fd
