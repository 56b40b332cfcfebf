// The kernel contract: parameter structs and the functions that both kernels/cpu/ and kernels/cuda/
// implement. Definitions of every loss are in docs/loss-contract.md; this header only fixes
// how they are passed. No N-API, no JS here.
#pragma once
#include <cstdint>

#include "status.h"

namespace fd {

// The prediction-layer terms of the ranking objective, in this order everywhere (JS included).
enum Term : int {
  kPointwiseBCE = 0,
  kPairwiseRankNet = 1,
  kPairwiseHinge = 2,
  kListwiseSoftmaxCE = 3,
  kDistillKL = 4,
  kMarginMSE = 5,
  kScoreMSE = 6,
  kNumTerms = 7,
};
// The terms' names in Term order, as the JS API spells them (the addon exports this list).
constexpr const char* kTermNames[kNumTerms] = {
    "pointwiseBCE", "pairwiseRankNet", "pairwiseHinge", "listwiseSoftmaxCE", "distillKL", "marginMSE", "scoreMSE",
};

// A [rows, cols] block of candidate scores: the last axis is one query's candidate list.
// t is needed by KL / MarginMSE / ScoreMSE, y by BCE / RankNet / Hinge / ListwiseCE; either may be
// null when no term with a non-zero weight reads it. mask null means every entry is valid.
struct ObjectiveArgs {
  const float* s = nullptr;
  const float* t = nullptr;
  const float* y = nullptr;
  const float* mask = nullptr;
  int64_t rows = 0, cols = 0;
  float weight[kNumTerms] = {0, 0, 0, 0, 0, 0, 0};  // 0 = term off, costs nothing
  float temperature = 1.0f;
  float sigma = 1.0f;
  float margin = 1.0f;
};

// total = sum_k part[k]; part[k] = weight[k] * (sum of term k over its set) / count[k]
// (0 when count[k] == 0).
struct ObjectiveResult {
  double total = 0;
  double part[kNumTerms] = {0, 0, 0, 0, 0, 0, 0};
  int64_t count[kNumTerms] = {0, 0, 0, 0, 0, 0, 0};
  int64_t work_bytes = 0;  // the kernel's working memory (set also when it returns kNoMemory)
};

// Masked squared error between student and teacher features.
// hidden:    a, b are [layers, batch, len, hidden]; entry valid where token_mask[b, l] == 1.
// attention: a, b are [batch, heads, len, len];     entry valid where token_mask[b, q] and [b, k] == 1.
// token_mask is [batch, len] or null (all valid). loss = mean over valid entries.
struct FeatureArgs {
  const float* a = nullptr;
  const float* b = nullptr;
  const float* token_mask = nullptr;
  int64_t layers = 1, batch = 0, heads = 1, len = 0, hidden = 0;
};

// ---- CPU (kernels/cpu/) ----
// grad, when not null, receives d(total)/d(s) (or d(loss)/d(a)) in the same pass as the loss.
Status ranking_objective_cpu(const ObjectiveArgs& args, float* grad, ObjectiveResult* result);
Status hidden_mse_cpu(const FeatureArgs& args, float* grad, double* loss);
Status attention_mse_cpu(const FeatureArgs& args, float* grad, double* loss);
// out[i] = x[i] * c (the backward pass's scaling by the upstream gradient). out may equal x.
void scale_cpu(const float* x, float c, float* out, int64_t n);
// kOk when every value is exactly 0 or 1, else kBadMask and *bad_index = the first offending index.
Status check_mask_cpu(const float* mask, int64_t n, int64_t* bad_index);
// kOk when every label y[i] of a valid entry (mask null or mask[i] == 1) is in [0, 1] or NaN (which
// propagates), else kBadLabel and *bad_index = the first offending index: pointwiseBCE's domain.
Status check_unit_labels_cpu(const float* y, const float* mask, int64_t n, int64_t* bad_index);

// Threads the CPU kernels use (>= 1; 1 inside a parallel region). Results do not depend on it.
void set_num_threads(int n);
int num_threads();

// ---- CUDA (kernels/cuda/; stubs returning kNoCuda when built without it) ----
// All pointers are device pointers; work is queued on the library's stream, nothing synchronizes.
// result_dev receives 1 + kNumTerms floats: total, then each weighted part.
Status ranking_objective_cuda(const ObjectiveArgs& args, float* grad_dev, float* result_dev);
// loss_dev receives 1 float.
Status hidden_mse_cuda(const FeatureArgs& args, float* grad_dev, float* loss_dev);
Status attention_mse_cuda(const FeatureArgs& args, float* grad_dev, float* loss_dev);
Status scale_cuda(const float* x_dev, float c, float* out_dev, int64_t n);
// check_mask_cpu on a device mask: one kernel finds the first value other than 0 or 1, and its index
// is read back into *bad_index (host memory): synchronises.
Status check_mask_cuda(const float* mask_dev, int64_t n, int64_t* bad_index);
// check_unit_labels_cpu on device labels and mask, read back like check_mask_cuda: synchronises.
Status check_unit_labels_cuda(const float* y_dev, const float* mask_dev, int64_t n, int64_t* bad_index);

}  // namespace fd
