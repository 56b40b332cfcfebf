// fd::sgemm_cuda through cuBLAS, loaded at run time: the build machine has no cuBLAS (the GPU machine
// does), so nothing here includes cublas_v2.h or links it. The few entry points are declared by hand
// from the cuBLAS API reference (enum values included) and found with dlsym.
//
// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLAS gets B first and A second,
// each with its own transpose flag, and n and m swapped; a row-major matrix with leading dimension ld
// is the same memory as its column-major transpose with that ld.
#include <dlfcn.h>

#include <climits>
#include <string>
#include <vector>

#include "../gemm.h"
#include "cuda_common.cuh"

namespace fd {
namespace {

// ---- the hand-declared cuBLAS surface ----
using CublasHandle = void*;                               // cublasHandle_t (an opaque pointer)
constexpr int kCublasSuccess = 0;                         // CUBLAS_STATUS_SUCCESS
constexpr int kOpN = 0, kOpT = 1;                         // cublasOperation_t: CUBLAS_OP_N, CUBLAS_OP_T
constexpr int kDefaultMath = 0;                           // cublasMath_t: CUBLAS_DEFAULT_MATH (fp32 SGEMM, no TF32)
constexpr int kTf32TensorOpMath = 3;                      // cublasMath_t: CUBLAS_TF32_TENSOR_OP_MATH
constexpr int kR32F = 0;                                  // cudaDataType: CUDA_R_32F
constexpr int kCompute32FFast16BF = 75;                   // cublasComputeType_t: CUBLAS_COMPUTE_32F_FAST_16BF
constexpr int kGemmDefault = -1;                          // cublasGemmAlgo_t: CUBLAS_GEMM_DEFAULT
using CreateFn = int (*)(CublasHandle*);                  // cublasCreate_v2
using DestroyFn = int (*)(CublasHandle);                  // cublasDestroy_v2
using SetStreamFn = int (*)(CublasHandle, cudaStream_t);  // cublasSetStream_v2
using SetMathModeFn = int (*)(CublasHandle, int);         // cublasSetMathMode
using StatusStringFn = const char* (*)(int);              // cublasGetStatusString (optional)
using SgemmStridedFn = int (*)(CublasHandle, int, int, int, int, int, const float*, const float*, int, long long,
                               const float*, int, long long, const float*, float*, int, long long, int);
using SgemmBatchedFn = int (*)(CublasHandle, int, int, int, int, int, const float*, const float* const*, int,
                               const float* const*, int, const float*, float* const*, int, int);
// cublasGemmStridedBatchedEx / cublasGemmBatchedEx: the typed products (bf16 compute on fp32 data).
using GemmStridedExFn = int (*)(CublasHandle, int, int, int, int, int, const void*, const void*, int, int, long long,
                                const void*, int, int, long long, const void*, void*, int, int, long long, int, int,
                                int);
using GemmBatchedExFn = int (*)(CublasHandle, int, int, int, int, int, const void*, const void* const*, int, int,
                                const void* const*, int, int, const void*, void* const*, int, int, int, int, int);

struct Cublas {
  std::mutex mu;  // guards everything here; one sgemm at a time sets up and queues its call
  bool tried = false;
  std::string missing;  // why cuBLAS could not be loaded ("" once it is)
  DestroyFn destroy = nullptr;
  SetMathModeFn set_math_mode = nullptr;
  StatusStringFn status_string = nullptr;
  SgemmStridedFn sgemm_strided = nullptr;
  SgemmBatchedFn sgemm_batched = nullptr;
  GemmStridedExFn gemm_strided_ex = nullptr;
  GemmBatchedExFn gemm_batched_ex = nullptr;
  CublasHandle handle = nullptr;
  bool tf32 = false;         // the math mode of kFp32 products (set_tf32_cuda)
  bool tf32_now = false;     // the handle's math mode now (kTf32 products set TF32 for their call)
  device::Scratch pointers;  // the device pointer arrays of cublasSgemmBatched
};
Cublas g_blas;

Status blas_fail(const char* call, int status) {
  const char* what = g_blas.status_string ? g_blas.status_string(status) : nullptr;
  const std::string msg = std::string(call) + ": cuBLAS status " + std::to_string(status) +
                          (what ? std::string(" (") + what + ")" : "");
  return device::fail_with(kCudaError, msg.c_str());
}

// Loads libcublas and creates the handle on the library's stream (g_blas.mu held, device ready).
Status load_locked() {
  if (g_blas.handle) return kOk;
  if (g_blas.tried) return device::fail_with(kCudaError, g_blas.missing.c_str());
  g_blas.tried = true;
  void* lib = nullptr;
  std::string errors;
  for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) {
    lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib) break;
    const char* e = dlerror();
    errors += std::string(errors.empty() ? "" : "; ") + (e ? e : name);
  }
  if (!lib) {
    g_blas.missing = "cuBLAS not found: " + errors;
    return device::fail_with(kCudaError, g_blas.missing.c_str());
  }
  auto sym = [&](const char* name) { return dlsym(lib, name); };
  auto create = reinterpret_cast<CreateFn>(sym("cublasCreate_v2"));
  auto set_stream = reinterpret_cast<SetStreamFn>(sym("cublasSetStream_v2"));
  g_blas.destroy = reinterpret_cast<DestroyFn>(sym("cublasDestroy_v2"));
  g_blas.set_math_mode = reinterpret_cast<SetMathModeFn>(sym("cublasSetMathMode"));
  g_blas.status_string = reinterpret_cast<StatusStringFn>(sym("cublasGetStatusString"));
  g_blas.sgemm_strided = reinterpret_cast<SgemmStridedFn>(sym("cublasSgemmStridedBatched"));
  g_blas.sgemm_batched = reinterpret_cast<SgemmBatchedFn>(sym("cublasSgemmBatched"));
  g_blas.gemm_strided_ex = reinterpret_cast<GemmStridedExFn>(sym("cublasGemmStridedBatchedEx"));
  g_blas.gemm_batched_ex = reinterpret_cast<GemmBatchedExFn>(sym("cublasGemmBatchedEx"));
  if (!create || !set_stream || !g_blas.destroy || !g_blas.set_math_mode || !g_blas.sgemm_strided ||
      !g_blas.sgemm_batched || !g_blas.gemm_strided_ex || !g_blas.gemm_batched_ex) {
    g_blas.missing = "cuBLAS not found: the loaded libcublas lacks a needed entry point";
    return device::fail_with(kCudaError, g_blas.missing.c_str());
  }
  CublasHandle h = nullptr;
  int st = create(&h);
  if (st != kCublasSuccess) {
    g_blas.tried = false;  // a transient failure (out of memory): let a later call try again
    return blas_fail("cublasCreate_v2", st);
  }
  st = set_stream(h, device::stream());
  if (st == kCublasSuccess) st = g_blas.set_math_mode(h, g_blas.tf32 ? kTf32TensorOpMath : kDefaultMath);
  if (st != kCublasSuccess) {
    g_blas.destroy(h);
    g_blas.tried = false;
    return blas_fail("cublasSetStream_v2/cublasSetMathMode", st);
  }
  g_blas.handle = h;
  g_blas.tf32_now = g_blas.tf32;
  return kOk;
}

// Puts the handle in TF32 or default math (g_blas.mu held, handle loaded), if it is not already.
Status math_mode_locked(bool tf32) {
  if (g_blas.tf32_now == tf32) return kOk;
  const int st = g_blas.set_math_mode(g_blas.handle, tf32 ? kTf32TensorOpMath : kDefaultMath);
  if (st != kCublasSuccess) return blas_fail("cublasSetMathMode", st);
  g_blas.tf32_now = tf32;
  return kOk;
}

// offsets[i] = first + i * step for every i, step >= 0: a strided batch.
bool progression(const int64_t* offsets, int64_t batch, int64_t* first, int64_t* step) {
  *first = offsets[0];
  *step = batch > 1 ? offsets[1] - offsets[0] : 0;
  if (*step < 0) return false;
  for (int64_t i = 2; i < batch; ++i)
    if (offsets[i] - offsets[i - 1] != *step) return false;
  return true;
}

bool fits_int(std::initializer_list<int64_t> v) {
  for (int64_t x : v)
    if (x < 0 || x > INT_MAX) return false;
  return true;
}

}  // namespace

Status set_tf32_cuda(bool on) {
  FD_TRY(device::init());
  std::lock_guard<std::mutex> lock(g_blas.mu);
  g_blas.tf32 = on;  // applied now when cuBLAS is loaded, else when it is
  if (!g_blas.handle) return kOk;
  return math_mode_locked(on);
}

Status tf32_cuda(bool* on) {
  FD_TRY(device::init());
  std::lock_guard<std::mutex> lock(g_blas.mu);
  *on = g_blas.tf32;
  return kOk;
}

Status sgemm_cuda(const GemmArgs& g) {
  FD_TRY(device::init());
  if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 0) return device::fail_with(kBadShape, "sgemm_cuda: a negative size");
  if (g.m == 0 || g.n == 0 || g.batch == 0) return kOk;
  if (g.ldc < g.n) return device::fail_with(kBadShape, "sgemm_cuda: ldc < n");
  if (g.k == 0) {
    // An empty sum: C = 0 (not left to beta = 0 with k = 0, which cuBLAS may treat as a no-op).
    for (int64_t i = 0; i < g.batch; ++i)
      FD_CUDA_TRY(cudaMemset2DAsync(g.c + i * g.stride_c, size_t(g.ldc) * 4, 0, size_t(g.n) * 4, size_t(g.m),
                                    device::stream()));
    return kOk;
  }
  if (g.lda < (g.trans_a ? g.m : g.k) || g.ldb < (g.trans_b ? g.k : g.n))
    return device::fail_with(kBadShape, "sgemm_cuda: a leading dimension is too small");
  if (!fits_int({g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.batch}))
    return device::fail_with(kBadShape, "sgemm_cuda: a size or leading dimension exceeds cuBLAS's int range");
  if (g.precision != GemmPrecision::kFp32 && g.precision != GemmPrecision::kBf16 && g.precision != GemmPrecision::kTf32)
    return device::fail_with(kBadShape, "sgemm_cuda: unknown precision");
  const bool bf16 = g.precision == GemmPrecision::kBf16;

  int64_t a0 = 0, sa = g.stride_a, b0 = 0, sb = g.stride_b;
  bool strided = true;
  if (g.a_offsets) strided = progression(g.a_offsets, g.batch, &a0, &sa);
  if (strided && g.b_offsets) strided = progression(g.b_offsets, g.batch, &b0, &sb);

  std::lock_guard<std::mutex> lock(g_blas.mu);
  FD_TRY(load_locked());
  // bf16 goes through the Ex calls, whose compute type overrides the math mode.
  if (!bf16) FD_TRY(math_mode_locked(g.precision == GemmPrecision::kTf32 || g_blas.tf32));
  const float one = 1.0f, zero = 0.0f;
  const int op_a = g.trans_a ? kOpT : kOpN, op_b = g.trans_b ? kOpT : kOpN;
  const int m = int(g.m), n = int(g.n), k = int(g.k), batch = int(g.batch);
  if (strided && bf16) {
    const int st = g_blas.gemm_strided_ex(g_blas.handle, op_b, op_a, n, m, k, &one, g.b + b0, kR32F, int(g.ldb), sb,
                                          g.a + a0, kR32F, int(g.lda), sa, &zero, g.c, kR32F, int(g.ldc), g.stride_c,
                                          batch, kCompute32FFast16BF, kGemmDefault);
    return st == kCublasSuccess ? kOk : blas_fail("cublasGemmStridedBatchedEx", st);
  }
  if (strided) {
    const int st = g_blas.sgemm_strided(g_blas.handle, op_b, op_a, n, m, k, &one, g.b + b0, int(g.ldb), sb, g.a + a0,
                                        int(g.lda), sa, &zero, g.c, int(g.ldc), g.stride_c, batch);
    return st == kCublasSuccess ? kOk : blas_fail("cublasSgemmStridedBatched", st);
  }
  // General offsets: arrays of per-entry pointers on the device (B's, A's, C's), copied on the stream.
  std::vector<const float*> ptrs(size_t(3) * g.batch);
  for (int64_t i = 0; i < g.batch; ++i) {
    ptrs[i] = g.b + (g.b_offsets ? g.b_offsets[i] : i * g.stride_b);
    ptrs[g.batch + i] = g.a + (g.a_offsets ? g.a_offsets[i] : i * g.stride_a);
    ptrs[2 * g.batch + i] = g.c + i * g.stride_c;
  }
  void* dev = nullptr;
  FD_TRY(device::scratch(g_blas.pointers, ptrs.size() * sizeof(float*), &dev));
  FD_CUDA_TRY(
      cudaMemcpyAsync(dev, ptrs.data(), ptrs.size() * sizeof(float*), cudaMemcpyHostToDevice, device::stream()));
  const auto* const* d = static_cast<const float* const*>(dev);
  if (bf16) {
    const void* const* dv = static_cast<const void* const*>(dev);
    const int st = g_blas.gemm_batched_ex(g_blas.handle, op_b, op_a, n, m, k, &one, dv, kR32F, int(g.ldb), dv + g.batch,
                                          kR32F, int(g.lda), &zero, const_cast<void* const*>(dv + 2 * g.batch), kR32F,
                                          int(g.ldc), batch, kCompute32FFast16BF, kGemmDefault);
    if (st != kCublasSuccess) return blas_fail("cublasGemmBatchedEx", st);
  } else {
    const int st = g_blas.sgemm_batched(g_blas.handle, op_b, op_a, n, m, k, &one, d, int(g.ldb), d + g.batch,
                                        int(g.lda), &zero, const_cast<float* const*>(d + 2 * g.batch), int(g.ldc),
                                        batch);
    if (st != kCublasSuccess) return blas_fail("cublasSgemmBatched", st);
  }
  // The host vector is gone when this returns: make sure the copy has read it (pageable memory is
  // staged before cudaMemcpyAsync returns, but that is not a documented promise for every driver).
  FD_CUDA_TRY(cudaStreamSynchronize(device::stream()));
  return kOk;
}

}  // namespace fd
