// Random fills (tfjs's randomUniform / randomNormal), the same numbers on the CPU and the GPU: each
// element is a pure function of (seed, index) through the counter-based generator Philox4x32-10
// (kernels/philox.h), so neither the thread count nor the device changes the result.
//   uniform: bit-identical on both sides.
//   normal:  Box-Muller in double, rounded once to float; the host's and CUDA's log/sin/cos differ by
//            an ulp of double at most, so a float result differs only in a rare last-bit tie.
#pragma once
#include <cstdint>

#include "status.h"

namespace fd {

// out[i] = lo + (hi - lo) * u_i, u_i uniform in [0, 1) with 24 random bits.
void random_uniform_cpu(float* out, int64_t n, float lo, float hi, uint64_t seed);
// out[i] = mean + stddev * z_i, z_i standard normal.
void random_normal_cpu(float* out, int64_t n, float mean, float stddev, uint64_t seed);

// The same on device pointers (kernels/cuda/random.cu); queued on the library's stream.
Status random_uniform_cuda(float* out, int64_t n, float lo, float hi, uint64_t seed);
Status random_normal_cuda(float* out, int64_t n, float mean, float stddev, uint64_t seed);

}  // namespace fd
