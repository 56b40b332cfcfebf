// Pairwise hard-label losses over P = {(i, j): y_i > y_j, both valid}.
//
// Loop shape: for each i, the inner loop runs over ALL j and only ever writes per-j accumulators
// (g[j], acc[j]), never a per-i sum. Each lane (i, j) adds d(loss)/d(s_j) for both orientations of
// the pair {i, j}: "j loses to i" (y_i > y_j) and "j beats i" (y_j > y_i), both from one softplus /
// sigmoid of z = -sigma * (s_i - s_j) since softplus(-z) = softplus(z) - z and sigmoid(-z) =
// 1 - sigmoid(z). Summed over i this is the complete gradient, so no horizontal reduction is ever
// needed and the loop vectorizes fully; the loss counts each pair once, in the lane where i wins.
#pragma once
#include "../fd_math.h"
#include "rows.h"

namespace fd {

// A NaN label leaves the order of its entry unknown, so every pair it takes part in (with another
// valid entry) is in P and contributes NaN: the loss is NaN and so is the gradient of each valid
// entry of the row (each is paired with the NaN-labelled one). Such rows are rare, so they take this
// separate path and the hot loops below stay as they are (NaN labels simply fail their comparisons
// there). Returns how many valid entries have a NaN label.
template <bool kMasked>
inline int64_t nan_label_count(const Row& r) {
  FD_ROW_POINTERS(r);
  int64_t c = 0;
#pragma omp simd reduction(+ : c)
  for (int64_t i = 0; i < n; ++i) c += valid<kMasked>(m, i) && y[i] != y[i];
  return c;
}

// The NaN pairs of a row with `nan` NaN-labelled entries among `nvalid` valid ones.
inline int64_t nan_pair_count(int64_t nan, int64_t nvalid) { return nan * (nvalid - nan) + nan * (nan - 1) / 2; }

// A row with NaN pairs: NaN into the gradient of every valid entry; returns the NaN loss.
template <bool kMasked>
inline double nan_pairs_row(const Row& r, float* __restrict g) {
  FD_ROW_POINTERS(r);
  const float nan = bits_float(0x7fc00000);
  for (int64_t i = 0; i < n; ++i) g[i] += valid<kMasked>(m, i) ? nan : 0.0f;
  return nan;
}

// |P| of the row. Per-lane counts (how many i beat lane j) keep the inner loop free of horizontal sums,
// like the loss loops below (perf: the count phase went from 20% to 12% of RankNet 1024x32).
// scratch: n floats (exact: the counts stay far below 2^24).
template <bool kMasked>
inline int64_t pair_count(const Row& r, float* __restrict scratch) {
  FD_ROW_POINTERS(r);
  float* __restrict beaten_by = scratch;
  for (int64_t j = 0; j < n; ++j) beaten_by[j] = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    if (!valid<kMasked>(m, i)) continue;
    const float yi = y[i];
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) beaten_by[j] += valid<kMasked>(m, j) && yi > y[j] ? 1.0f : 0.0f;
  }
  int64_t c = 0;
  for (int64_t j = 0; j < n; ++j) c += static_cast<int64_t>(beaten_by[j]);
  const int64_t nan = nan_label_count<kMasked>(r);
  return nan > 0 ? c + nan_pair_count(nan, count_valid<kMasked>(r)) : c;
}

// softplus(-sigma * (s_w - s_l)) for each pair (w wins, l loses): d/ds_l = sigma * sigmoid(z),
// d/ds_w = -sigma * sigmoid(z). scratch: 2n floats.
//
// The loss avoids a log per lane: softplus(z) = max(z, 0) + log(w) + (u - (w - 1)) / w with
// u = e^-|z|, w = 1 + u (the second term restores what rounding 1 + u lost), and the log(w) of all
// of a lane's pairs is taken once, as the log of their product. w is in (1, 2], so a product of up
// to 64 factors cannot overflow; longer rows flush the product into the sum every 64 rows of i.
template <bool kMasked>
inline double pairwise_ranknet_row(const Row& r, float sigma, float coef, float* __restrict g,
                                   float* __restrict scratch) {
  FD_ROW_POINTERS(r);
  const int64_t nan = nan_label_count<kMasked>(r);
  if (nan > 0 && nan_pair_count(nan, count_valid<kMasked>(r)) > 0) return nan_pairs_row<kMasked>(r, g);
  float* __restrict acc = scratch;       // per-lane loss terms other than log(w)
  float* __restrict prod = scratch + n;  // per-lane product of w
  for (int64_t j = 0; j < n; ++j) acc[j] = 0.0f, prod[j] = 1.0f;
  const float cs = coef * sigma;
  for (int64_t i = 0; i < n; ++i) {
    if (!valid<kMasked>(m, i)) continue;
    const float si = s[i], yi = y[i];
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      const bool ok = valid<kMasked>(m, j);
      const bool i_wins = ok && yi > y[j], j_wins = ok && y[j] > yi;
      // Inlined softplus_sigmoid (fd_math.h), split so the log goes into the product. A NaN score
      // makes u, w and inv NaN, which reaches the loss and the gradient without a select.
      const float z = -sigma * (si - s[j]);
      const float u = fast_exp_nonpositive(z < 0.0f ? z : -z);
      const float w = 1.0f + u;
      const float inv = 1.0f / w;
      const float sig = z >= 0.0f ? inv : u * inv;
      acc[j] += i_wins ? (z > 0.0f ? z : 0.0f) + (u - (w - 1.0f)) * inv : 0.0f;
      prod[j] *= i_wins ? w : 1.0f;
      g[j] += i_wins || j_wins ? cs * (j_wins ? sig - 1.0f : sig) : 0.0f;
    }
    if ((i & 63) == 63) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) acc[j] += fast_log(prod[j]), prod[j] = 1.0f;
    }
  }
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) sum += acc[j] + fast_log(prod[j]);
  return sum;
}

// max(0, margin - (s_w - s_l)) for each pair: d/ds_l = +1, d/ds_w = -1 where active (0 at the kink).
// The gradient is a count of +1s and -1s per lane, kept exact (integers in a float) and scaled once.
template <bool kMasked>
inline double pairwise_hinge_row(const Row& r, float margin, float coef, float* __restrict g,
                                 float* __restrict scratch) {
  FD_ROW_POINTERS(r);
  const int64_t nan = nan_label_count<kMasked>(r);
  if (nan > 0 && nan_pair_count(nan, count_valid<kMasked>(r)) > 0) return nan_pairs_row<kMasked>(r, g);
  float* __restrict acc = scratch;
  float* __restrict count = scratch + n;
  for (int64_t j = 0; j < n; ++j) acc[j] = 0.0f, count[j] = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    if (!valid<kMasked>(m, i)) continue;
    const float si = s[i], yi = y[i];
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      const bool ok = valid<kMasked>(m, j);
      const bool i_wins = ok && yi > y[j], j_wins = ok && y[j] > yi;
      const float v_i = margin - (si - s[j]);  // hinge argument when i wins
      const float v_j = margin - (s[j] - si);  // ... when j wins
      // NaN scores must reach the loss: v != v keeps them.
      acc[j] += i_wins && (v_i > 0.0f || v_i != v_i) ? v_i : 0.0f;
      count[j] += i_wins && v_i > 0.0f ? 1.0f : (j_wins && v_j > 0.0f ? -1.0f : 0.0f);
    }
  }
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) sum += acc[j], g[j] += coef * count[j];
  return sum;
}

}  // namespace fd
