// The size classes of the caches of memory blocks: the 'native' backend's host blocks (through the
// addon's blockSize) and the device allocator's (cuda/device.cu). Up to 4 KB a multiple of 512
// bytes; above it the next m * 2^k with m = 8..16: 8 classes per doubling, so a cached block serves
// any request up to 12.5 % smaller (a batch a few tokens shorter) where exact sizes made each new
// batch shape allocate fresh memory (page faults on the host, cudaMalloc on the device).
#pragma once

#include <cstddef>

namespace fd {

inline size_t block_size(size_t bytes) {
  if (bytes <= 4096) return bytes == 0 ? 512 : (bytes + 511) / 512 * 512;
  const int top = 63 - __builtin_clzll(static_cast<unsigned long long>(bytes));  // floor(log2(bytes))
  const size_t step = size_t{1} << (top - 3);
  return (bytes + step - 1) / step * step;
}

}  // namespace fd
