// Intermediate-layer distillation: masked MSE between student and teacher hidden states or attention
// scores. Memory-bound: a and b are read once and the gradient written once, in the same loop.
#include <vector>

#include "parallel.h"

namespace fd {
namespace {

// Squared error of one row of `n` values, writing coef2 * (a - b) (= d/da of the mean) into g, zeros
// where key_mask says the column is padding (key_mask null = all valid).
inline double masked_row(const float* __restrict a, const float* __restrict b, const float* __restrict key_mask,
                         int64_t n, float coef2, float* __restrict g) {
  float sum = 0.0f;
  if (key_mask) {
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; ++i) {
      const bool ok = key_mask[i] != 0.0f;
      const float d = a[i] - b[i];
      sum += ok ? d * d : 0.0f;
      g[i] = ok ? coef2 * d : 0.0f;
    }
  } else {
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; ++i) {
      const float d = a[i] - b[i];
      sum += d * d;
      g[i] = coef2 * d;
    }
  }
  return sum;
}

// Shared driver: `rows` rows of `cols`; row_mask(r) says whether row r takes part, key_mask(r) gives
// the per-column mask of row r (or null). count is the number of valid entries.
template <class RowValid, class KeyMask>
double masked_mse(const float* a, const float* b, int64_t rows, int64_t cols, int64_t count, float* grad,
                  RowValid row_valid, KeyMask key_mask) {
  if (count == 0) {
    if (grad)
      for_each_block(rows, block_rows(cols), rows * cols, [&](int64_t, int64_t begin, int64_t end) {
        for (int64_t i = begin * cols; i < end * cols; ++i) grad[i] = 0.0f;
      });
    return 0.0;
  }
  const float coef2 = static_cast<float>(2.0 / static_cast<double>(count));
  const int64_t block = block_rows(cols);
  std::vector<double> sums((rows + block - 1) / block, 0.0);
  for_each_block(rows, block, rows * cols, [&](int64_t bi, int64_t begin, int64_t end) {
    // Without a gradient the row's gradient goes to a cache-resident buffer and is dropped: the same
    // loop either way, so the loss is bit-identical with and without a gradient.
    std::vector<float> discard(grad ? 0 : cols);
    double sum = 0.0;
    for (int64_t r = begin; r < end; ++r) {
      float* g = grad ? grad + r * cols : discard.data();
      if (row_valid(r)) {
        sum += masked_row(a + r * cols, b + r * cols, key_mask(r), cols, coef2, g);
      } else if (grad) {
        for (int64_t i = 0; i < cols; ++i) g[i] = 0.0f;
      }
    }
    sums[bi] = sum;
  });
  double total = 0.0;
  for (double s : sums) total += s;
  return total / static_cast<double>(count);
}

}  // namespace

Status hidden_mse_cpu(const FeatureArgs& f, float* grad, double* loss) {
  const int64_t tokens = f.batch * f.len;  // per layer
  int64_t valid_tokens = tokens;
  if (f.token_mask) {
    valid_tokens = 0;
    for (int64_t i = 0; i < tokens; ++i) valid_tokens += f.token_mask[i] != 0.0f;
  }
  const float* tm = f.token_mask;
  *loss = masked_mse(
      f.a, f.b, f.layers * tokens, f.hidden, f.layers * valid_tokens * f.hidden, grad,
      [&](int64_t r) { return !tm || tm[r % tokens] != 0.0f; }, [](int64_t) -> const float* { return nullptr; });
  return kOk;
}

Status attention_mse_cpu(const FeatureArgs& f, float* grad, double* loss) {
  int64_t count = 0;
  for (int64_t b = 0; b < f.batch; ++b) {
    int64_t n = f.len;
    if (f.token_mask) {
      n = 0;
      for (int64_t l = 0; l < f.len; ++l) n += f.token_mask[b * f.len + l] != 0.0f;
    }
    count += f.heads * n * n;
  }
  // Row r = (b, head, q) over keys k: valid rows have a valid query token, columns a valid key token.
  const float* tm = f.token_mask;
  const int64_t per_batch = f.heads * f.len;
  *loss = masked_mse(
      f.a, f.b, f.batch * per_batch, f.len, count, grad,
      [&](int64_t r) { return !tm || tm[(r / per_batch) * f.len + r % f.len] != 0.0f; },
      [&](int64_t r) -> const float* { return tm ? tm + (r / per_batch) * f.len : nullptr; });
  return kOk;
}

}  // namespace fd
