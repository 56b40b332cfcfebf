// Internal to kernels/cuda/: error checking, the library stream, deterministic reductions, the
// one-use grid barrier of the persistent kernels, and their launch. Not part of the contract.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "device.h"
#include "status.h"

namespace fd {
namespace device {

// The library's stream; valid once init() has returned kOk.
cudaStream_t stream();
// Records "<call>: <cudaGetErrorString(err)>" as last_error() and returns kCudaError.
Status fail(const char* call, cudaError_t err);
// Records `message` as last_error() and returns `status`.
Status fail_with(Status status, const char* message);

// Blocks of `kernel` that fit on the GPU at once (occupancy per SM times the SM count), >= 1.
// Raises the kernel's dynamic shared memory limit first when smem needs it.
Status coresident_blocks(const void* kernel, int threads, size_t smem, int* blocks);
// Queues `kernel` on the library stream. need_coresident: the kernel waits at a grid barrier, so it
// goes through cudaLaunchCooperativeKernel, which guarantees every block runs at once (grid must be
// <= coresident_blocks). Where the device has no cooperative launch, a plain launch of that grid is
// co-resident in practice. Checks the launch.
Status launch(const void* kernel, int grid, int threads, size_t smem, void** args, bool need_coresident);

// A device buffer kept across calls (from the caching allocator), grown on demand. A new buffer is
// zeroed on the stream: the kernels keep their counters at zero between launches (the last block
// resets them), so that is the only memset.
struct Scratch {
  std::mutex mu;
  void* ptr = nullptr;
  size_t bytes = 0;
};
Status scratch(Scratch& s, size_t bytes, void** ptr);

}  // namespace device

#define FD_CUDA_TRY(call)                                                  \
  do {                                                                     \
    const cudaError_t fd_err_ = (call);                                    \
    if (fd_err_ != cudaSuccess) return ::fd::device::fail(#call, fd_err_); \
  } while (0)

#define FD_TRY(expr)                        \
  do {                                      \
    const ::fd::Status fd_st_ = (expr);     \
    if (fd_st_ != ::fd::kOk) return fd_st_; \
  } while (0)

namespace cuda {

constexpr unsigned kFullMask = 0xffffffffu;

// Warp sums and maxima by butterfly: a fixed pattern, and every lane ends with the same bits
// (each step adds two commuted operands), so the result is run-to-run identical.
template <class T>
__device__ __forceinline__ T warp_sum(T x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(kFullMask, x, o);
  return x;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, o));
  return x;
}

// Block sum of N values per thread, valid in every thread afterwards: warp butterflies, then each
// thread adds the warps' results in warp order. Every thread of the block must call it.
template <int N, class T>
__device__ __forceinline__ void block_sum(T (&v)[N]) {
  __shared__ T red[N][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
#pragma unroll
  for (int n = 0; n < N; ++n) {
    v[n] = warp_sum(v[n]);
    if (lane == 0) red[n][warp] = v[n];
  }
  __syncthreads();
#pragma unroll
  for (int n = 0; n < N; ++n) {
    T s = red[n][0];
    for (int w = 1; w < warps; ++w) s += red[n][w];
    v[n] = s;
  }
  __syncthreads();
}

// A hint: bring the 128-byte line holding p into L2, without waiting for it.
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

template <class T>
__device__ __forceinline__ T load_volatile(const T* p) {
  return *static_cast<const volatile T*>(p);
}

// A grid-wide barrier, used at most once per launch (the counter only rises to gridDim.x; the
// last block of the kernel puts it back to 0). Needs every block co-resident: see launch().
__device__ __forceinline__ void grid_barrier(unsigned* counter) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();  // this block's writes (count atomics) before its arrival
    atomicAdd(counter, 1u);
    while (load_volatile(counter) < gridDim.x) __nanosleep(32);
    __threadfence();
  }
  __syncthreads();
}

// Deterministic sum across blocks: each block stores its N block sums (v, as left by block_sum) in
// partials[block][.]; the last block to arrive (ticket) adds them up, each thread a fixed strided
// subset in block order, then block_sum. Returns true in that block only, with the totals in v.
// Resets the ticket for the next launch.
template <int N>
__device__ __forceinline__ bool last_block_sum(double (&v)[N], double* partials, unsigned* ticket) {
  __shared__ bool is_last;
  if (threadIdx.x == 0) {
#pragma unroll
    for (int n = 0; n < N; ++n) partials[size_t(blockIdx.x) * N + n] = v[n];
    __threadfence();
    is_last = atomicAdd(ticket, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!is_last) return false;
  __threadfence();
#pragma unroll
  for (int n = 0; n < N; ++n) v[n] = 0.0;
  for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) {
#pragma unroll
    for (int n = 0; n < N; ++n) v[n] += __ldcg(partials + size_t(b) * N + n);
  }
  block_sum(v);
  if (threadIdx.x == 0) *ticket = 0;
  return true;
}

}  // namespace cuda
}  // namespace fd
