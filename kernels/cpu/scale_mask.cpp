// Small elementwise helpers around the losses: the backward pass's scaling by the upstream gradient,
// the 0/1 mask check the N-API layer runs on every mask and the [0, 1] check of BCE labels.
#include "parallel.h"

namespace fd {

void scale_cpu(const float* x, float c, float* out, int64_t n) {
  constexpr int64_t kBlock = 1 << 16;
  for_each_block(n, kBlock, n, [&](int64_t, int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) out[i] = x[i] * c;
  });
}

Status check_mask_cpu(const float* mask, int64_t n, int64_t* bad_index) {
  for (int64_t i = 0; i < n; ++i) {
    if (mask[i] != 0.0f && mask[i] != 1.0f) {
      *bad_index = i;
      return kBadMask;
    }
  }
  return kOk;
}

Status check_unit_labels_cpu(const float* y, const float* mask, int64_t n, int64_t* bad_index) {
  for (int64_t i = 0; i < n; ++i) {
    if ((mask == nullptr || mask[i] != 0.0f) && (y[i] < 0.0f || y[i] > 1.0f)) {
      *bad_index = i;
      return kBadLabel;
    }
  }
  return kOk;
}

}  // namespace fd
