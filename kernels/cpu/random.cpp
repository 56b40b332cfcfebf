// Random fills on the host (kernels/random.h): each element a function of (seed, index) only, so the
// blocks run in parallel with no effect on the result.
#include "../random.h"

#include "../philox.h"
#include "parallel.h"

namespace fd {

namespace {
constexpr int64_t kBlock = 1 << 14;  // a multiple of 4: a Philox block never straddles two of ours
}

void random_uniform_cpu(float* out, int64_t n, float lo, float hi, uint64_t seed) {
  for_each_block(n, kBlock, n * 4, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; c += 4) {
      const philox::Block b = philox::block_for(seed, static_cast<uint64_t>(c));
      for (int64_t i = c; i < end && i < c + 4; ++i) out[i] = philox::uniform(b.w[i - c], lo, hi);
    }
  });
}

void random_normal_cpu(float* out, int64_t n, float mean, float stddev, uint64_t seed) {
  for_each_block(n, kBlock, n * 16, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; c += 4) {
      const philox::Block b = philox::block_for(seed, static_cast<uint64_t>(c));
      for (int64_t i = c; i < end && i < c + 4; ++i)
        out[i] = philox::normal_at(b, static_cast<uint64_t>(i), mean, stddev);
    }
  });
}

}  // namespace fd
