// Internal to kernels/cuda/: what the tensor kernels of the 'cuda' backend (elementwise_ops.cu,
// reduce.cu, softmax.cu, layout.cu) share: grid sizing for grid-stride loops, the
// launch check, vector types and a stream-ordered temporary buffer.
#pragma once
#include <cstdint>

#include "cuda_common.cuh"

namespace fd {
namespace cuda {

constexpr int kBlockThreads = 256;
// Grid-stride kernels never need more blocks than this (16 per SM on a 132-SM H100 and then some):
// beyond it each thread takes several elements, which also keeps the grid within every limit.
constexpr int64_t kMaxBlocks = 4096;

// Blocks for `work` items at `threads` per block, clamped to [1, kMaxBlocks].
inline int blocks_for(int64_t work, int threads = kBlockThreads) {
  const int64_t b = (work + threads - 1) / threads;
  return static_cast<int>(b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b));
}

// After a <<<...>>> launch on the library stream: the launch error, if any, as a Status.
inline Status check_launch(const char* kernel) {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? kOk : device::fail(kernel, err);
}

inline bool aligned(const void* p, uintptr_t bytes) { return (reinterpret_cast<uintptr_t>(p) & (bytes - 1)) == 0; }

// Four elements of T as one aligned vector access.
template <class T>
struct Vec4;
template <>
struct Vec4<float> {
  using type = float4;
};
template <>
struct Vec4<int32_t> {
  using type = int4;
};
template <>
struct Vec4<uint8_t> {
  using type = uchar4;
};

template <class T>
__device__ __forceinline__ void load4(const T* p, T (&v)[4]) {
  const typename Vec4<T>::type q = *reinterpret_cast<const typename Vec4<T>::type*>(p);
  v[0] = q.x;
  v[1] = q.y;
  v[2] = q.z;
  v[3] = q.w;
}
template <class T>
__device__ __forceinline__ void store4(T* p, const T (&v)[4]) {
  typename Vec4<T>::type q;
  q.x = v[0];
  q.y = v[1];
  q.z = v[2];
  q.w = v[3];
  *reinterpret_cast<typename Vec4<T>::type*>(p) = q;
}

// A device buffer for one call's intermediate results, from the caching allocator. Released when it
// goes out of scope, right after the launches that use it were queued: the allocator's blocks are
// only reused by later work on the same stream, so the release is ordered after those kernels.
class TempBuffer {
 public:
  TempBuffer() = default;
  TempBuffer(const TempBuffer&) = delete;
  TempBuffer& operator=(const TempBuffer&) = delete;
  ~TempBuffer() {
    if (ptr_) device::release(ptr_);
  }
  Status alloc(size_t bytes) { return device::alloc(bytes ? bytes : 1, &ptr_); }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
};

}  // namespace cuda
}  // namespace fd
