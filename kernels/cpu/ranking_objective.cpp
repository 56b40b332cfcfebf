// The prediction-layer objective: sum_k w_k * L_k over the seven score losses in one pass over the
// rows. Every single score loss (pointwiseBCE, pairwiseRankNet, ..., scoreMSE) is this kernel with
// one weight set. Two phases over fixed row blocks (see parallel.h):
//   1. count each term's set (depends on labels and mask only; integers, exact);
//   2. with coef_k = w_k / N_k known, compute each row's loss sums and write d(total)/ds once.
#include <array>
#include <new>
#include <vector>

#include "distill.h"
#include "listwise.h"
#include "pairwise.h"
#include "parallel.h"
#include "pointwise.h"

namespace fd {
namespace {

using Counts = std::array<int64_t, kNumTerms>;
using Sums = std::array<double, kNumTerms>;

inline Row row_at(const ObjectiveArgs& a, int64_t r) {
  const int64_t o = r * a.cols;
  return Row{a.s + o, a.t ? a.t + o : nullptr, a.y ? a.y + o : nullptr, a.mask ? a.mask + o : nullptr, a.cols};
}

template <bool kMasked>
Counts count_row(const ObjectiveArgs& a, const Row& r, float* scratch) {
  Counts c{};
  const int64_t nvalid = count_valid<kMasked>(r);
  if (a.weight[kPointwiseBCE] != 0) c[kPointwiseBCE] = nvalid;
  if (a.weight[kPairwiseRankNet] != 0 || a.weight[kPairwiseHinge] != 0) {
    const int64_t pairs = pair_count<kMasked>(r, scratch);
    c[kPairwiseRankNet] = a.weight[kPairwiseRankNet] != 0 ? pairs : 0;
    c[kPairwiseHinge] = a.weight[kPairwiseHinge] != 0 ? pairs : 0;
  }
  if (a.weight[kListwiseSoftmaxCE] != 0) c[kListwiseSoftmaxCE] = listwise_row_in_set<kMasked>(r);
  if (a.weight[kDistillKL] != 0) c[kDistillKL] = nvalid > 0;
  if (a.weight[kMarginMSE] != 0) c[kMarginMSE] = valid<kMasked>(r.m, 0) ? nvalid - 1 : 0;
  if (a.weight[kScoreMSE] != 0) c[kScoreMSE] = nvalid;
  return c;
}

template <bool kMasked>
void loss_row(const ObjectiveArgs& a, const Row& r, const float* coef, float* g, float* scratch, Sums& sums) {
  if (coef[kPointwiseBCE] != 0) sums[kPointwiseBCE] += pointwise_bce_row<kMasked>(r, coef[kPointwiseBCE], g);
  if (coef[kPairwiseRankNet] != 0)
    sums[kPairwiseRankNet] += pairwise_ranknet_row<kMasked>(r, a.sigma, coef[kPairwiseRankNet], g, scratch);
  if (coef[kPairwiseHinge] != 0)
    sums[kPairwiseHinge] += pairwise_hinge_row<kMasked>(r, a.margin, coef[kPairwiseHinge], g, scratch);
  if (coef[kListwiseSoftmaxCE] != 0)
    sums[kListwiseSoftmaxCE] += listwise_softmax_ce_row<kMasked>(r, coef[kListwiseSoftmaxCE], g);
  if (coef[kDistillKL] != 0 && count_valid<kMasked>(r) > 0)
    sums[kDistillKL] += distill_kl_row<kMasked>(r, a.temperature, coef[kDistillKL], g, scratch);
  if (coef[kMarginMSE] != 0) sums[kMarginMSE] += margin_mse_row<kMasked>(r, coef[kMarginMSE], g);
  if (coef[kScoreMSE] != 0) sums[kScoreMSE] += score_mse_row<kMasked>(r, coef[kScoreMSE], g);
}

// Every buffer run() uses, allocated before its parallel loops: an allocation that fails inside an
// OpenMP region cannot be caught and would terminate the process.
struct Workspace {
  std::vector<Counts> block_counts;
  std::vector<Sums> block_sums;
  std::vector<float> thread_scratch;  // per thread: the row's working space, then its discarded gradient
};

template <bool kMasked>
Status run(const ObjectiveArgs& a, float* grad, ObjectiveResult* res) {
  // Work per row, in units of a simple elementwise op, for sizing blocks and threads: the pairwise
  // terms visit cols^2 pairs; an exponential-based term costs about 8 units per element.
  const bool pairwise = a.weight[kPairwiseRankNet] != 0 || a.weight[kPairwiseHinge] != 0;
  const bool exponential = a.weight[kPointwiseBCE] != 0 || a.weight[kListwiseSoftmaxCE] != 0 ||
                           a.weight[kDistillKL] != 0;
  const int64_t row_work = pairwise ? a.cols * a.cols + a.cols : a.cols * (exponential ? 8 : 1);
  const int64_t block = block_rows(row_work);
  const int64_t nblocks = (a.rows + block - 1) / block;
  const int64_t work = a.rows * row_work;

  // Per thread: 2 cols of scratch (the KL and pairwise terms; the count phase uses the first), and a
  // row of gradient to discard when only the loss is wanted.
  const int64_t per_thread = 2 * a.cols + (grad ? 0 : a.cols);
  const int threads = std::max(threads_for(work / 8, nblocks), threads_for(work, nblocks));
  res->work_bytes = nblocks * static_cast<int64_t>(sizeof(Counts) + sizeof(Sums)) +
                    threads * per_thread * static_cast<int64_t>(sizeof(float));
  if (res->work_bytes > physical_memory_bytes()) return kNoMemory;  // could only end in the OOM killer
  Workspace ws;
  try {
    ws.block_counts.assign(nblocks, Counts{});
    ws.block_sums.assign(nblocks, Sums{});
    ws.thread_scratch.resize(static_cast<size_t>(threads * per_thread));
  } catch (const std::bad_alloc&) {
    return kNoMemory;
  }
  auto scratch_of_thread = [&]() { return ws.thread_scratch.data() + block_thread() * per_thread; };

  // Phase 1: set sizes.
  auto count_block = [&](int64_t b, int64_t begin, int64_t end) {
    float* scratch = scratch_of_thread();
    Counts c{};
    for (int64_t r = begin; r < end; ++r) {
      const Counts rc = count_row<kMasked>(a, row_at(a, r), scratch);
      for (int k = 0; k < kNumTerms; ++k) c[k] += rc[k];
    }
    ws.block_counts[b] = c;
  };
  for_each_block(a.rows, block, work / 8, count_block, threads);
  Counts n{};
  for (const Counts& c : ws.block_counts)
    for (int k = 0; k < kNumTerms; ++k) n[k] += c[k];
  float coef[kNumTerms];
  for (int k = 0; k < kNumTerms; ++k) {
    coef[k] = n[k] > 0 ? static_cast<float>(a.weight[k] / static_cast<double>(n[k])) : 0.0f;
    res->count[k] = n[k];
  }

  // Phase 2: losses and the gradient. Rows outside every set still get their zeros written.
  auto loss_block = [&](int64_t b, int64_t begin, int64_t end) {
    float* scratch = scratch_of_thread();
    float* row_grad = scratch + 2 * a.cols;  // discarded when only the loss is wanted
    Sums sums{};
    for (int64_t r = begin; r < end; ++r) {
      float* g = grad ? grad + r * a.cols : row_grad;
      for (int64_t i = 0; i < a.cols; ++i) g[i] = 0.0f;
      loss_row<kMasked>(a, row_at(a, r), coef, g, scratch, sums);
    }
    ws.block_sums[b] = sums;
  };
  for_each_block(a.rows, block, work, loss_block, threads);
  Sums s{};
  for (const Sums& bs : ws.block_sums)
    for (int k = 0; k < kNumTerms; ++k) s[k] += bs[k];
  res->total = 0;
  for (int k = 0; k < kNumTerms; ++k) {
    res->part[k] = n[k] > 0 ? a.weight[k] * s[k] / static_cast<double>(n[k]) : 0.0;
    res->total += res->part[k];
  }
  return kOk;
}

}  // namespace

Status ranking_objective_cpu(const ObjectiveArgs& args, float* grad, ObjectiveResult* result) {
  *result = ObjectiveResult{};
  return args.mask ? run<true>(args, grad, result) : run<false>(args, grad, result);
}

}  // namespace fd
