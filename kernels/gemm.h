// Single-precision GEMM for the tfjs backends: C = op(A) op(B), row-major, batched with per-batch
// strides or offsets (broadcasting). sgemm_cpu (kernels/cpu/sgemm.cpp, host memory) is packed and
// cache-blocked with an FMA micro-kernel picked at run time (AVX-512, AVX2 or portable C++), and in
// bf16 precision a vdpbf16ps micro-kernel where the CPU has AVX512-BF16.
#pragma once
#include <cstdint>

#include "status.h"

namespace fd {

// How the products are formed: kFp32 multiplies in float32; kBf16 rounds op(A) and op(B) to bfloat16
// (round to nearest even) and accumulates in float32. C is float32 either way. kTf32 (TF32 tensor
// cores) exists on the device only: sgemm_cpu refuses it (kBadShape), its host emulation runs fp32.
enum class GemmPrecision : int { kFp32 = 0, kBf16 = 1, kTf32 = 2 };

struct GemmArgs {
  bool trans_a = false, trans_b = false;  // op(A) is m x k, op(B) is k x n; all storage row-major
  int64_t m = 0, n = 0, k = 0, batch = 1;
  // A is m x k (lda >= k), or k x m when trans_a (lda >= m). stride_a = 0 broadcasts A over the batch.
  const float* a = nullptr;
  int64_t lda = 0, stride_a = 0;
  // B is k x n (ldb >= n), or n x k when trans_b (ldb >= k).
  const float* b = nullptr;
  int64_t ldb = 0, stride_b = 0;
  float* c = nullptr;  // m x n, ldc >= n
  int64_t ldc = 0, stride_c = 0;
  // Optional per-batch element offsets of A and B (general broadcasting); they override stride_a/_b.
  const int64_t* a_offsets = nullptr;
  const int64_t* b_offsets = nullptr;
  GemmPrecision precision = GemmPrecision::kFp32;
};

// C = op(A) op(B), overwriting C (k == 0 gives zeros). kBadShape for a negative size or a leading
// dimension too small; kNoMemory when a packing buffer cannot be allocated. C must not overlap A or B.
// Each element of C is one FMA chain over k in order, so results do not depend on the thread count.
// kBf16: the same chain on bf16-rounded inputs with denormals flushed to zero (vdpbf16ps's rules),
// bit-identical between the AVX512-BF16 path and the portable one (see sgemm.cpp).
Status sgemm_cpu(const GemmArgs& args);

// "avx512bf16", "avx512", "avx2" or "scalar": the path sgemm_cpu takes now. The best one the CPU
// supports, unless the environment variable FUSED_DISTILL_GEMM_ISA (read at every call) names a lower
// one. fp32 runs the same kernels on "avx512bf16" and "avx512"; bf16 runs its vdpbf16ps kernels on
// "avx512bf16" only, elsewhere the portable bf16 path (the ISA's fp32 kernels on rounded panels).
const char* sgemm_isa();

// ---- CUDA (kernels/cuda/gemm.cu; kernels/cuda/no_cuda.cpp in CPU builds) ----
// C = op(A) op(B) through cuBLAS (row-major handled by swapping operands); a, b, c are device
// pointers, a_offsets/b_offsets are HOST arrays. cuBLAS is loaded at run time (dlopen): kCudaError
// with "cuBLAS not found: ..." in device::last_error() when it cannot be. Queued, not synchronised.
// precision: kFp32 uses the math mode set_tf32_cuda set; kTf32 TF32 tensor cores; kBf16 cuBLAS's
// CUBLAS_COMPUTE_32F_FAST_16BF (inputs down-converted to bf16, fp32 accumulation).
Status sgemm_cuda(const GemmArgs& args);
// cuBLAS math mode for kFp32 products: false = pedantic fp32 (default), true = TF32 tensor cores.
Status set_tf32_cuda(bool on);
// The math mode set_tf32_cuda last set (what the next sgemm_cuda uses): lets a caller check it.
Status tf32_cuda(bool* on);

}  // namespace fd
