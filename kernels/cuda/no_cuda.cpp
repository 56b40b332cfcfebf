// The CPU-only build's CUDA side. By default every device function and every *_cuda kernel answers
// kNoCuda. With FUSED_DISTILL_EMULATE_DEVICE=1 in the environment (read once, at the first
// device::init), the device is emulated on the host: memory is malloc'd, copies are memcpy, and each
// *_cuda function runs its *_cpu twin. That lets the N-API device surface and the TypeScript 'cuda'
// backend be tested on a machine without a GPU; on a GPU only the kernels themselves are new.
// Plain C++, no CUDA headers.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "attention.h"
#include "device.h"
#include "elementwise.h"
#include "gemm.h"
#include "layout.h"
#include "losses.h"
#include "nccl.h"
#include "nn.h"
#include "optimizer.h"
#include "random.h"
#include "reduce.h"
#include "softmax.h"

namespace fd {
namespace {
const char kMessage[] = "fused-distill was built without CUDA: run `npm run build:cuda`";

bool emulating() {
  static const bool on = [] {
    const char* v = std::getenv("FUSED_DISTILL_EMULATE_DEVICE");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return on;
}

std::mutex g_mu;                             // guards the two below
std::unordered_map<void*, size_t> g_blocks;  // live emulated allocations -> bytes
size_t g_bytes = 0;
std::chrono::steady_clock::time_point g_timer;  // timer_start's time
std::string g_error;                            // the emulation's last failure

Status failed(Status st, const std::string& message) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_error = message;
  return st;
}
}  // namespace

namespace device {

bool built_with_cuda() { return false; }
Status init() { return emulating() ? kOk : kNoCuda; }
std::string last_error() {
  if (!emulating()) return kMessage;
  std::lock_guard<std::mutex> lock(g_mu);
  return g_error;
}
std::string name() { return emulating() ? "host emulation" : ""; }

Status alloc(size_t bytes, void** ptr) {
  if (ptr) *ptr = nullptr;
  if (!emulating()) return kNoCuda;
  // 64-byte alignment like the host buffers; rounding up keeps aligned_alloc's size rule.
  const size_t size = bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, size);
  if (!p) return failed(kNoMemory, "host emulation: out of memory");
  std::lock_guard<std::mutex> lock(g_mu);
  g_blocks.emplace(p, size);
  g_bytes += size;
  *ptr = p;
  return kOk;
}
Status release(void* ptr) {
  if (!emulating()) return kNoCuda;
  if (ptr == nullptr) return kOk;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_blocks.find(ptr);
    if (it == g_blocks.end()) {
      g_error = "release: pointer did not come from fd::device::alloc";
      return kCudaError;
    }
    g_bytes -= it->second;
    g_blocks.erase(it);
  }
  std::free(ptr);
  return kOk;
}
Status empty_cache() { return emulating() ? kOk : kNoCuda; }  // nothing is cached
Status memory_stats(size_t* bytes_in_use, size_t* bytes_cached) {
  if (bytes_in_use) *bytes_in_use = 0;
  if (bytes_cached) *bytes_cached = 0;
  if (!emulating()) return kNoCuda;
  std::lock_guard<std::mutex> lock(g_mu);
  if (bytes_in_use) *bytes_in_use = g_bytes;
  return kOk;
}

Status upload(void* dst, const void* src, size_t bytes) {
  if (!emulating()) return kNoCuda;
  if (bytes) std::memcpy(dst, src, bytes);
  return kOk;
}
Status download(void* dst, const void* src, size_t bytes) { return upload(dst, src, bytes); }
Status synchronize() { return emulating() ? kOk : kNoCuda; }

Status timer_start() {
  if (!emulating()) return kNoCuda;
  std::lock_guard<std::mutex> lock(g_mu);
  g_timer = std::chrono::steady_clock::now();
  return kOk;
}
Status timer_stop(float* elapsed_ms) {
  if (elapsed_ms) *elapsed_ms = 0.0f;
  if (!emulating()) return kNoCuda;
  std::lock_guard<std::mutex> lock(g_mu);
  const auto dt = std::chrono::steady_clock::now() - g_timer;
  if (elapsed_ms) *elapsed_ms = std::chrono::duration<float, std::milli>(dt).count();
  return kOk;
}

}  // namespace device

// ---- every *_cuda kernel: kNoCuda, or its *_cpu twin under emulation ----
#define FD_EMULATE(...)               \
  do {                                \
    if (!emulating()) return kNoCuda; \
    __VA_ARGS__;                      \
    return kOk;                       \
  } while (0)

// The losses write their device results as floats (kernels/losses.h).
Status ranking_objective_cuda(const ObjectiveArgs& args, float* grad, float* result) {
  if (!emulating()) return kNoCuda;
  ObjectiveResult r;
  const Status st = ranking_objective_cpu(args, grad, &r);
  if (st != kOk) return st;
  result[0] = static_cast<float>(r.total);
  for (int k = 0; k < kNumTerms; ++k) result[1 + k] = static_cast<float>(r.part[k]);
  return kOk;
}
Status hidden_mse_cuda(const FeatureArgs& args, float* grad, float* loss) {
  if (!emulating()) return kNoCuda;
  double l = 0;
  const Status st = hidden_mse_cpu(args, grad, &l);
  *loss = static_cast<float>(l);
  return st;
}
Status attention_mse_cuda(const FeatureArgs& args, float* grad, float* loss) {
  if (!emulating()) return kNoCuda;
  double l = 0;
  const Status st = attention_mse_cpu(args, grad, &l);
  *loss = static_cast<float>(l);
  return st;
}
Status scale_cuda(const float* x, float c, float* out, int64_t n) { FD_EMULATE(scale_cpu(x, c, out, n)); }
Status check_mask_cuda(const float* mask, int64_t n, int64_t* bad_index) {
  if (!emulating()) return kNoCuda;
  return check_mask_cpu(mask, n, bad_index);
}
Status check_unit_labels_cuda(const float* y, const float* mask, int64_t n, int64_t* bad_index) {
  if (!emulating()) return kNoCuda;
  return check_unit_labels_cpu(y, mask, n, bad_index);
}

Status binary_cuda(int op, int in, const void* a, const int64_t* a_shape, int a_rank, const void* b,
                   const int64_t* b_shape, int b_rank, void* out) {
  FD_EMULATE(binary_cpu(op, in, a, a_shape, a_rank, b, b_shape, b_rank, out));
}
Status unary_cuda(int op, const float* x, void* out, int64_t n, double p0, double p1) {
  FD_EMULATE(unary_cpu(op, x, out, n, p0, p1));
}
Status cast_cuda(int in, const void* x, int out_type, void* out, int64_t n) {
  FD_EMULATE(cast_cpu(in, x, out_type, out, n));
}
Status fill_cuda(int type, void* out, int64_t n, double value) { FD_EMULATE(fill_cpu(type, out, n, value)); }
Status copy_cuda(void* dst, const void* src, int64_t bytes) {
  FD_EMULATE(if (bytes > 0) std::memmove(dst, src, static_cast<size_t>(bytes)));
}

Status reduce_cuda(ReduceOp op, DType in, const void* x, const int64_t* shape, int rank, uint32_t axes_mask,
                   void* out) {
  FD_EMULATE(reduce_cpu(op, in, x, shape, rank, axes_mask, out));
}
Status softmax_cuda(const float* x, int64_t rows, int64_t cols, float* out, bool log) {
  FD_EMULATE(softmax_cpu(x, rows, cols, out, log));
}
Status transpose_cuda(const void* x, const int64_t* shape, int rank, const int* perm, void* out, int64_t elem) {
  FD_EMULATE(transpose_cpu(x, shape, rank, perm, out, elem));
}
Status slice_cuda(const void* x, const int64_t* shape, int rank, const int64_t* begin, const int64_t* size, void* out,
                  int64_t elem) {
  FD_EMULATE(slice_cpu(x, shape, rank, begin, size, out, elem));
}
Status concat_cuda(const void* const* inputs, const int64_t* inner, int n, int64_t outer, void* out, int64_t elem) {
  FD_EMULATE(concat_cpu(inputs, inner, n, outer, out, elem));
}
Status tile_cuda(const void* x, const int64_t* shape, int rank, const int64_t* reps, void* out, int64_t elem) {
  FD_EMULATE(tile_cpu(x, shape, rank, reps, out, elem));
}
// The device rule for an index outside [0, dim): zeros in its output slice. gather_cpu requires valid
// indices, so those are replaced by 0 for it and their slices cleared afterwards.
Status gather_cuda(const void* x, int64_t batch, int64_t outer, int64_t dim, int64_t slice, const int32_t* indices,
                   int64_t n, void* out, int64_t elem) {
  if (!emulating()) return kNoCuda;
  const int64_t count = batch * n;
  if (first_out_of_range(indices, count, dim) < 0) {
    gather_cpu(x, batch, outer, dim, slice, indices, n, out, elem);
    return kOk;
  }
  std::vector<int32_t> safe(indices, indices + count);
  for (int32_t& i : safe)
    if (i < 0 || i >= dim) i = 0;
  if (dim > 0) gather_cpu(x, batch, outer, dim, slice, safe.data(), n, out, elem);
  const size_t bytes = static_cast<size_t>(slice * elem);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < n; ++i) {
        const int32_t k = indices[b * n + i];
        if (k < 0 || k >= dim)
          std::memset(static_cast<char*>(out) + ((b * outer + o) * n + i) * slice * elem, 0, bytes);
      }
  return kOk;
}
Status unsorted_segment_sum_cuda(const float* x, int64_t rows, int64_t cols, const int32_t* ids, int64_t segments,
                                 float* out) {
  FD_EMULATE(unsorted_segment_sum_cpu(x, rows, cols, ids, segments, out));
}

// bf16 runs the host's bf16 GEMM; the host has no TF32, so kTf32 (like the TF32 math mode) is fp32.
Status sgemm_cuda(const GemmArgs& args) {
  if (!emulating()) return kNoCuda;
  if (args.precision != GemmPrecision::kTf32) return sgemm_cpu(args);
  GemmArgs fp32 = args;
  fp32.precision = GemmPrecision::kFp32;
  return sgemm_cpu(fp32);
}
// The host has no TF32: sgemm is fp32 either way; the mode is kept so that it reads back.
static bool g_tf32 = false;
Status set_tf32_cuda(bool on) { FD_EMULATE(g_tf32 = on); }
Status tf32_cuda(bool* on) { FD_EMULATE(*on = g_tf32); }

Status adamw_update_cuda(const AdamWArgs& a) { FD_EMULATE(adamw_update_cpu(a)); }
Status sum_squares_cuda(const float* x, int64_t n, double* out_host) { FD_EMULATE(*out_host = sum_squares_cpu(x, n)); }

Status random_uniform_cuda(float* out, int64_t n, float lo, float hi, uint64_t seed) {
  FD_EMULATE(random_uniform_cpu(out, n, lo, hi, seed));
}
Status random_normal_cuda(float* out, int64_t n, float mean, float stddev, uint64_t seed) {
  FD_EMULATE(random_normal_cpu(out, n, mean, stddev, seed));
}

// Fused attention (kernels/attention.h).
Status attention_cuda(const AttentionArgs& args) {
  if (!emulating()) return kNoCuda;
  return attention_cpu(args);
}
Status attention_grad_cuda(const AttentionGradArgs& args) {
  if (!emulating()) return kNoCuda;
  return attention_grad_cpu(args);
}

// The fused LayerNorm / GELU, with or without bias and residual (kernels/nn.h).
Status layer_norm_cuda(const LayerNormArgs& args) {
  if (!emulating()) return kNoCuda;
  return layer_norm_cpu(args);
}
Status layer_norm_grad_cuda(const LayerNormGradArgs& args) {
  if (!emulating()) return kNoCuda;
  return layer_norm_grad_cpu(args);
}
Status gelu_cuda(const float* x, float* y, int64_t n) { FD_EMULATE(gelu_cpu(x, y, n)); }
Status gelu_grad_cuda(const float* dy, const float* x, float* dx, int64_t n) {
  FD_EMULATE(gelu_grad_cpu(dy, x, dx, n));
}
Status bias_gelu_cuda(const BiasGeluArgs& args) { FD_EMULATE(bias_gelu_cpu(args)); }
Status bias_gelu_grad_cuda(const BiasGeluGradArgs& args) {
  if (!emulating()) return kNoCuda;
  return bias_gelu_grad_cpu(args);
}

// ---- NCCL (kernels/nccl.h): unavailable, or one rank on the host emulation ----
namespace nccl {
namespace {
const char kNoNccl[] =
    "NCCL is unavailable: fused-distill was built without CUDA (NCCL needs `npm run build:cuda` and a GPU)";
std::mutex g_nccl_mu;  // guards the two below
std::string g_nccl_error;
int g_nranks = 0;  // 1 while the emulated communicator exists

Status nccl_failed(const std::string& message) {
  g_nccl_error = message;  // g_nccl_mu held
  return kCollectiveError;
}
Status no_nccl() {
  std::lock_guard<std::mutex> lock(g_nccl_mu);
  return nccl_failed(kNoNccl);
}
Status no_comm(const char* call) {
  return nccl_failed(std::string(call ? call : "") + (call ? ": " : "") +
                     "no communicator (initRank first; a failed or timed-out collective aborts it)");
}
}  // namespace

bool available() {
  if (emulating()) return true;
  no_nccl();  // last_error() says why
  return false;
}
std::string last_error() {
  std::lock_guard<std::mutex> lock(g_nccl_mu);
  return emulating() ? g_nccl_error : kNoNccl;
}
Status version(int* code) {
  *code = 0;
  return emulating() ? kOk : no_nccl();
}
Status unique_id(uint8_t* id) {
  if (!emulating()) return no_nccl();
  std::random_device rd;  // ids of different runs differ, as NCCL's do
  for (int i = 0; i < kUniqueIdBytes; ++i) id[i] = static_cast<uint8_t>(rd());
  return kOk;
}
Status init_rank(const uint8_t* /*id*/, int nranks, int rank) {
  if (!emulating()) return no_nccl();
  std::lock_guard<std::mutex> lock(g_nccl_mu);
  if (g_nranks) return nccl_failed("this process has a communicator already (rank 0 of 1): destroy it first");
  if (nranks != 1)
    return nccl_failed("the host emulation has one rank only (nranks = " + std::to_string(nranks) +
                       "): more ranks need NCCL on a GPU (the CUDA build)");
  if (rank != 0) return nccl_failed("rank " + std::to_string(rank) + " is not in 0..0");
  g_nranks = 1;
  return kOk;
}
Status comm_info(int* nranks, int* rank) {
  if (!emulating()) return no_nccl();
  std::lock_guard<std::mutex> lock(g_nccl_mu);
  if (!g_nranks) return no_comm(nullptr);
  *nranks = 1;
  *rank = 0;
  return kOk;
}
// One rank: the gather is a copy, the broadcast and the sum leave the buffer as it is.
Status all_gather(const void* send, void* recv, int64_t count, int dtype) {
  if (!emulating()) return no_nccl();
  std::lock_guard<std::mutex> lock(g_nccl_mu);
  if (!g_nranks) return no_comm("ncclAllGather");
  if (count > 0 && send != recv) std::memmove(recv, send, static_cast<size_t>(count * elem_bytes(DType(dtype))));
  return kOk;
}
Status broadcast(void* /*buf*/, int64_t /*count*/, int /*dtype*/, int root) {
  if (!emulating()) return no_nccl();
  std::lock_guard<std::mutex> lock(g_nccl_mu);
  if (!g_nranks) return no_comm("ncclBroadcast");
  if (root != 0) return nccl_failed("ncclBroadcast: root " + std::to_string(root) + " is not in 0..0");
  return kOk;
}
Status all_reduce_sum(float* /*buf*/, int64_t /*count*/) {
  if (!emulating()) return no_nccl();
  std::lock_guard<std::mutex> lock(g_nccl_mu);
  return g_nranks ? kOk : no_comm("ncclAllReduce");
}
Status destroy() {
  if (!emulating()) return no_nccl();
  std::lock_guard<std::mutex> lock(g_nccl_mu);
  g_nranks = 0;
  return kOk;
}
}  // namespace nccl

}  // namespace fd
