// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) and the maps
// from its words to the values of kernels/random.h, shared by kernels/cpu/random.cpp and
// kernels/cuda/random.cu so both sides compute the same numbers. Element i of a fill takes word i % 4
// of the block for counter i / 4 under the key `seed`.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define FD_HD __host__ __device__ __forceinline__
#else
#define FD_HD inline
#endif

namespace fd {
namespace philox {

struct Block {
  uint32_t w[4];
};

FD_HD uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// The 128-bit block for a 128-bit counter (c0 lowest) and a 64-bit key.
FD_HD Block philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo(kM0, c0, &hi0);
    const uint32_t lo1 = mulhilo(kM1, c2, &hi1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += kW0;
    k1 += kW1;
  }
  return Block{{c0, c1, c2, c3}};
}

// The block holding element i's word(s): counter i / 4.
FD_HD Block block_for(uint64_t seed, uint64_t i) {
  const uint64_t c = i >> 2;
  return philox4x32_10(static_cast<uint32_t>(c), static_cast<uint32_t>(c >> 32), 0u, 0u, static_cast<uint32_t>(seed),
                       static_cast<uint32_t>(seed >> 32));
}

// lo + (hi - lo) * u with u = the top 24 bits / 2^24, in [0, 1): one correctly rounded fma in double
// (the same on every compiler and device), rounded once to float. Kept below hi (the float rounding
// could otherwise reach it): tfjs's range is [lo, hi).
FD_HD float uniform(uint32_t word, float lo, float hi) {
  const double u = static_cast<double>(word >> 8) * (1.0 / 16777216.0);
  const float v = static_cast<float>(
      fma(static_cast<double>(hi) - static_cast<double>(lo), u, static_cast<double>(lo)));
  return v < hi ? v : nextafterf(hi, lo);
}

// Box-Muller on a pair of words: u1 in (0, 1] (so log is finite), u2 in [0, 1); which = 0 gives the
// cosine branch, 1 the sine branch.
FD_HD double normal(uint32_t w1, uint32_t w2, int which) {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  const double u1 = (static_cast<double>(w1) + 1.0) * (1.0 / 4294967296.0);
  const double u2 = static_cast<double>(w2) * (1.0 / 4294967296.0);
  const double r = sqrt(-2.0 * log(u1));
  return r * (which == 0 ? cos(kTwoPi * u2) : sin(kTwoPi * u2));
}

// Element i of a normal fill: words (0, 1) of its block give elements 4c, 4c+1, words (2, 3) 4c+2, 4c+3.
FD_HD float normal_at(const Block& b, uint64_t i, float mean, float stddev) {
  const int k = static_cast<int>(i & 3);
  const double z = normal(b.w[k & 2], b.w[(k & 2) + 1], k & 1);
  return static_cast<float>(fma(static_cast<double>(stddev), z, static_cast<double>(mean)));
}

}  // namespace philox
}  // namespace fd
