// fd::scale_cuda: out[i] = x[i] * c in one launch (the backward pass's scaling by the upstream
// gradient), float4 when both pointers are 16-byte aligned; out may equal x (each thread reads its
// element before writing it, so no __restrict / read-only loads). And the checks on the device:
// fd::check_mask_cuda (the losses' 0/1 mask) and fd::check_unit_labels_cuda (BCE's labels).
#include <mutex>

#include "../losses.h"
#include "cuda_common.cuh"

namespace fd {
namespace {

constexpr int kThreads = 256;

template <bool kVec>
__global__ void __launch_bounds__(kThreads) scale_kernel(const float* x, float c, float* out, int64_t n) {
  const int64_t tid = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t nthreads = int64_t(gridDim.x) * kThreads;
  int64_t done = 0;
  if (kVec) {
    const int64_t nv = n / 4;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    float4* o4 = reinterpret_cast<float4*>(out);
    for (int64_t v = tid; v < nv; v += nthreads) {
      float4 a = x4[v];
      a.x *= c;
      a.y *= c;
      a.z *= c;
      a.w *= c;
      o4[v] = a;
    }
    done = nv * 4;
  }
  for (int64_t i = done + tid; i < n; i += nthreads) out[i] = x[i] * c;
}

// The mask and label checks: *first starts at n; every bad index lowers it (atomicMin), so it ends at
// the first. kLabels: x is labels, bad when outside [0, 1] at a valid entry (mask null or non-zero);
// otherwise x is the mask, bad when other than 0 or 1.
__global__ void first_bad_reset(unsigned long long* first, int64_t n) { *first = static_cast<unsigned long long>(n); }

template <bool kLabels>
__global__ void __launch_bounds__(kThreads)
    first_bad_kernel(const float* x, const float* mask, int64_t n, unsigned long long* first) {
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
    const float v = x[i];
    const bool bad = kLabels ? (mask == nullptr || mask[i] != 0.0f) && (v < 0.0f || v > 1.0f) : v != 0.0f && v != 1.0f;
    if (bad) atomicMin(first, static_cast<unsigned long long>(i));
  }
}

device::Scratch g_first_bad;  // the checks' index
std::mutex g_check_mu;

// The first bad index of x (see first_bad_kernel), read back: synchronises.
template <bool kLabels>
Status first_bad(const float* x_dev, const float* mask_dev, int64_t n, bool* found_bad, int64_t* bad_index) {
  FD_TRY(device::init());
  *found_bad = false;
  if (n <= 0) return kOk;
  // One caller at a time: another's launches in between would reuse the index.
  std::lock_guard<std::mutex> lock(g_check_mu);
  void* scratch = nullptr;
  FD_TRY(device::scratch(g_first_bad, sizeof(unsigned long long), &scratch));
  unsigned long long* first = static_cast<unsigned long long*>(scratch);
  void* reset_args[] = {&first, &n};
  FD_TRY(device::launch(reinterpret_cast<const void*>(&first_bad_reset), 1, 1, 0, reset_args, false));
  const void* kernel = reinterpret_cast<const void*>(&first_bad_kernel<kLabels>);
  int fit = 0;
  FD_TRY(device::coresident_blocks(kernel, kThreads, 0, &fit));
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  const int grid = static_cast<int>(wanted < fit ? wanted : fit);
  void* args[] = {const_cast<float**>(&x_dev), const_cast<float**>(&mask_dev), &n, &first};
  FD_TRY(device::launch(kernel, grid, kThreads, 0, args, false));
  unsigned long long found = 0;
  FD_CUDA_TRY(cudaMemcpyAsync(&found, first, sizeof(found), cudaMemcpyDeviceToHost, device::stream()));
  FD_CUDA_TRY(cudaStreamSynchronize(device::stream()));
  if (found >= static_cast<unsigned long long>(n)) return kOk;
  *found_bad = true;
  *bad_index = static_cast<int64_t>(found);
  return kOk;
}

}  // namespace

Status check_mask_cuda(const float* mask_dev, int64_t n, int64_t* bad_index) {
  bool bad = false;
  FD_TRY(first_bad<false>(mask_dev, nullptr, n, &bad, bad_index));
  return bad ? kBadMask : kOk;
}

Status check_unit_labels_cuda(const float* y_dev, const float* mask_dev, int64_t n, int64_t* bad_index) {
  bool bad = false;
  FD_TRY(first_bad<true>(y_dev, mask_dev, n, &bad, bad_index));
  return bad ? kBadLabel : kOk;
}

Status scale_cuda(const float* x_dev, float c, float* out_dev, int64_t n) {
  FD_TRY(device::init());
  if (n <= 0) return kOk;
  const bool vec = ((reinterpret_cast<uintptr_t>(x_dev) | reinterpret_cast<uintptr_t>(out_dev)) & 15u) == 0;
  const void* kernel = vec ? reinterpret_cast<const void*>(&scale_kernel<true>)
                           : reinterpret_cast<const void*>(&scale_kernel<false>);
  int fit = 0;
  FD_TRY(device::coresident_blocks(kernel, kThreads, 0, &fit));
  const int64_t work = vec ? (n + 3) / 4 : n;
  const int64_t wanted = (work + kThreads - 1) / kThreads;
  const int grid = static_cast<int>(wanted < fit ? wanted : fit);
  void* args[] = {const_cast<float**>(&x_dev), &c, &out_dev, &n};
  return device::launch(kernel, grid, kThreads, 0, args, false);
}

}  // namespace fd
