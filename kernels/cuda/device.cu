// fd::device: device 0, one non-blocking stream, a caching allocator, copies (downloads and large
// uploads synchronous, small uploads staged through pinned memory and asynchronous) and event timing. Everything the
// library queues goes on that one stream, so a block handed back to the cache can be reused at once: any later use is
// ordered after the work that read it.
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../block_size.h"
#include "../elementwise.h"
#include "cuda_common.cuh"

namespace fd {
namespace device {
namespace {

std::mutex g_mu;  // guards everything below (the JS side calls from one thread; workers may too)
bool g_ready = false;
cudaStream_t g_stream = nullptr;
cudaEvent_t g_ev_start = nullptr, g_ev_stop = nullptr;
int g_sms = 0;
bool g_coop = false;
std::string g_name;

std::unordered_map<size_t, std::vector<void*>> g_free;  // size class -> cached blocks
std::unordered_map<void*, size_t> g_used;               // block -> its size class
size_t g_bytes_in_use = 0, g_bytes_cached = 0;

// coresident_blocks' answers: the occupancy query costs a few microseconds of host time per call.
std::map<std::tuple<const void*, int, size_t>, int> g_fit;
std::unordered_map<const void*, size_t> g_smem_limit;  // each kernel's dynamic shared memory limit as set

std::mutex g_err_mu;
std::string g_err;

void set_error(std::string message) {
  std::lock_guard<std::mutex> lock(g_err_mu);
  g_err = std::move(message);
}

// Frees every cached block (g_mu held).
Status free_cached_locked() {
  Status st = kOk;
  for (auto& entry : g_free) {
    for (void* p : entry.second) {
      const cudaError_t err = cudaFree(p);
      if (err != cudaSuccess && st == kOk) st = fail("cudaFree", err);
      g_bytes_cached -= entry.first;
    }
  }
  g_free.clear();
  return st;
}

Status init_locked() {
  if (g_ready) return kOk;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    set_error(std::string("no usable CUDA device: cudaGetDeviceCount: ") + cudaGetErrorString(err));
    return kNoDevice;
  }
  if (count == 0) {
    set_error("no CUDA device found (cudaGetDeviceCount returned 0)");
    return kNoDevice;
  }
  // FUSED_DISTILL_CUDA_DEVICE: the device this process uses (the CLI sets it to a rank's local rank,
  // so that the ranks on a machine take one GPU each); 0 when unset.
  int device = 0;
  if (const char* want = std::getenv("FUSED_DISTILL_CUDA_DEVICE")) {
    char* end = nullptr;
    const long d = std::strtol(want, &end, 10);
    if (end == want || *end != '\0' || d < 0 || d >= count) {
      set_error(std::string("FUSED_DISTILL_CUDA_DEVICE=") + want + ": not a device index of the " +
                std::to_string(count) + " CUDA device(s) here");
      return kNoDevice;
    }
    device = static_cast<int>(d);
  }
  FD_CUDA_TRY(cudaSetDevice(device));
  cudaDeviceProp prop;
  FD_CUDA_TRY(cudaGetDeviceProperties(&prop, device));
  int coop = 0;
  FD_CUDA_TRY(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, device));
  FD_CUDA_TRY(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
  FD_CUDA_TRY(cudaEventCreate(&g_ev_start));
  FD_CUDA_TRY(cudaEventCreate(&g_ev_stop));
  g_sms = prop.multiProcessorCount;
  g_coop = coop != 0;
  g_name = prop.name;
  g_ready = true;
  return kOk;
}

// ---- the upload staging ring ----
// Pinned host memory that small uploads are copied into before their cudaMemcpyAsync, so the caller's
// array may change as soon as upload returns. Regions are handed out in ring order; each pending one
// carries an event recorded after its copy, and a region is overwritten only after the events of the
// regions it overlaps have completed (one stream: they complete in order, so the oldest first).
constexpr size_t kStageBytes = size_t(4) << 20;
constexpr size_t kStageMax = size_t(256) << 10;  // larger uploads copy and wait, as before
constexpr size_t kStageAlign = 256;

struct StagedRegion {
  size_t begin, end;
  cudaEvent_t done;
};

std::mutex g_stage_mu;  // guards the ring; never held together with g_mu
char* g_stage = nullptr;
size_t g_stage_head = 0;
std::deque<StagedRegion> g_staged;  // pending regions, oldest first
std::vector<cudaEvent_t> g_events;  // completed events, for reuse
// FUSED_DISTILL_CUDA_SYNC_UPLOADS=1: every upload waits for the stream (the old behaviour; for A/B runs).
const bool g_sync_uploads = [] {
  const char* v = std::getenv("FUSED_DISTILL_CUDA_SYNC_UPLOADS");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}();

// Waits for the oldest pending region and recycles its event (g_stage_mu held).
Status stage_retire_oldest() {
  const StagedRegion r = g_staged.front();
  FD_CUDA_TRY(cudaEventSynchronize(r.done));
  g_staged.pop_front();
  g_events.push_back(r.done);
  return kOk;
}

// A free region of `bytes` at *offset (g_stage_mu held).
Status stage_reserve(size_t bytes, size_t* offset) {
  if (g_stage == nullptr) FD_CUDA_TRY(cudaMallocHost(reinterpret_cast<void**>(&g_stage), kStageBytes));
  size_t begin = (g_stage_head + kStageAlign - 1) / kStageAlign * kStageAlign;
  if (begin + bytes > kStageBytes) begin = 0;  // wrap
  const size_t end = begin + bytes;
  // Retire pending regions (oldest first) while any overlaps [begin, end).
  for (;;) {
    bool overlap = false;
    for (const StagedRegion& r : g_staged)
      if (r.begin < end && begin < r.end) {
        overlap = true;
        break;
      }
    if (!overlap) break;
    FD_TRY(stage_retire_oldest());
  }
  *offset = begin;
  return kOk;
}

// Records the event that frees [offset, offset + bytes) once the copy queued from it has run.
Status stage_commit(size_t offset, size_t bytes) {
  cudaEvent_t ev = nullptr;
  if (!g_events.empty()) {
    ev = g_events.back();
    g_events.pop_back();
  } else {
    FD_CUDA_TRY(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  }
  const cudaError_t err = cudaEventRecord(ev, g_stream);
  if (err != cudaSuccess) {
    g_events.push_back(ev);
    return fail("cudaEventRecord", err);
  }
  g_staged.push_back({offset, offset + bytes, ev});
  g_stage_head = offset + bytes;
  // Keep the list short: completed regions are retired without waiting.
  while (g_staged.size() > 64 && cudaEventQuery(g_staged.front().done) == cudaSuccess) {
    g_events.push_back(g_staged.front().done);
    g_staged.pop_front();
  }
  return kOk;
}

}  // namespace

// ---- internal (cuda_common.cuh) ----

cudaStream_t stream() { return g_stream; }

Status fail(const char* call, cudaError_t err) {
  // "<call>: <error>", the call named without its arguments.
  const char* paren = std::strchr(call, '(');
  const std::string name = paren ? std::string(call, paren - call) : std::string(call);
  set_error(name + ": " + cudaGetErrorString(err));
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  return kCudaError;
}

Status fail_with(Status status, const char* message) {
  set_error(message);
  return status;
}

Status coresident_blocks(const void* kernel, int threads, size_t smem, int* blocks) {
  std::lock_guard<std::mutex> lock(g_mu);
  const auto key = std::make_tuple(kernel, threads, smem);
  const auto it = g_fit.find(key);
  if (it != g_fit.end()) {
    *blocks = it->second;
    return kOk;
  }
  // Opt in above the default 48 KB (static shared memory counts towards it too). The attribute is a
  // per-kernel LIMIT, so it only ever grows: setting it to a smaller size for one shape made the next
  // launch of a larger, already-cached shape fail with "invalid argument" (seen on the H100).
  size_t& limit = g_smem_limit[kernel];
  if (smem > limit) {
    FD_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    limit = smem;
  }
  int per_sm = 0;
  FD_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
  if (per_sm < 1)
    return fail_with(kCudaError, "cudaOccupancyMaxActiveBlocksPerMultiprocessor: kernel does not fit on an SM");
  *blocks = per_sm * g_sms;
  g_fit.emplace(key, *blocks);
  return kOk;
}

Status launch(const void* kernel, int grid, int threads, size_t smem, void** args, bool need_coresident) {
  if (need_coresident && g_coop)
    FD_CUDA_TRY(cudaLaunchCooperativeKernel(kernel, dim3(grid), dim3(threads), args, smem, g_stream));
  else
    FD_CUDA_TRY(cudaLaunchKernel(kernel, dim3(grid), dim3(threads), args, smem, g_stream));
  FD_CUDA_TRY(cudaGetLastError());
  return kOk;
}

Status scratch(Scratch& s, size_t bytes, void** ptr) {
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.bytes < bytes) {
    size_t want = s.bytes ? s.bytes : 4096;
    while (want < bytes) want *= 2;  // grow geometrically: few reallocations
    if (s.ptr) {
      FD_TRY(release(s.ptr));
      s.ptr = nullptr;
      s.bytes = 0;
    }
    void* p = nullptr;
    FD_TRY(alloc(want, &p));
    FD_CUDA_TRY(cudaMemsetAsync(p, 0, want, g_stream));
    s.ptr = p;
    s.bytes = want;
  }
  *ptr = s.ptr;
  return kOk;
}

// ---- device.h ----

bool built_with_cuda() { return true; }

Status init() {
  std::lock_guard<std::mutex> lock(g_mu);
  return init_locked();
}

std::string last_error() {
  std::lock_guard<std::mutex> lock(g_err_mu);
  return g_err;
}

std::string name() {
  std::lock_guard<std::mutex> lock(g_mu);
  return init_locked() == kOk ? g_name : std::string();
}

Status alloc(size_t bytes, void** ptr) {
  std::lock_guard<std::mutex> lock(g_mu);
  FD_TRY(init_locked());
  const size_t size = block_size(bytes);  // a size class: a block serves requests up to 12.5 % smaller
  auto it = g_free.find(size);
  if (it != g_free.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    g_bytes_cached -= size;
    g_used.emplace(p, size);
    g_bytes_in_use += size;
    *ptr = p;
    return kOk;
  }
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, size);
  if (err == cudaErrorMemoryAllocation) {
    // Out of memory: give the cached blocks back to CUDA and try once more.
    cudaGetLastError();
    FD_TRY(free_cached_locked());
    err = cudaMalloc(&p, size);
  }
  if (err != cudaSuccess) return fail("cudaMalloc", err);
  g_used.emplace(p, size);
  g_bytes_in_use += size;
  *ptr = p;
  return kOk;
}

Status release(void* ptr) {
  if (ptr == nullptr) return kOk;
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_used.find(ptr);
  if (it == g_used.end()) return fail_with(kCudaError, "release: pointer did not come from fd::device::alloc");
  const size_t size = it->second;
  g_used.erase(it);
  g_bytes_in_use -= size;
  g_free[size].push_back(ptr);
  g_bytes_cached += size;
  return kOk;
}

Status empty_cache() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_ready) return kOk;
  return free_cached_locked();
}

Status memory_stats(size_t* bytes_in_use, size_t* bytes_cached) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (bytes_in_use) *bytes_in_use = g_bytes_in_use;
  if (bytes_cached) *bytes_cached = g_bytes_cached;
  return kOk;
}

Status upload(void* dst_dev, const void* src_host, size_t bytes) {
  FD_TRY(init());
  if (bytes == 0) return kOk;
  // Small uploads (tfjs's scalars and shape constants, many per step) go through the pinned staging
  // ring and return at once. Waiting for the stream here made every upload wait for all queued
  // kernels: host and device took turns instead of overlapping (on the H100, the composite-layer
  // student step spent ~120 us of host time per kernel outside the kernels).
  if (bytes <= kStageMax && !g_sync_uploads) {
    std::lock_guard<std::mutex> lock(g_stage_mu);
    size_t offset = 0;
    FD_TRY(stage_reserve(bytes, &offset));
    std::memcpy(g_stage + offset, src_host, bytes);
    FD_CUDA_TRY(cudaMemcpyAsync(dst_dev, g_stage + offset, bytes, cudaMemcpyHostToDevice, g_stream));
    return stage_commit(offset, bytes);
  }
  FD_CUDA_TRY(cudaMemcpyAsync(dst_dev, src_host, bytes, cudaMemcpyHostToDevice, g_stream));
  FD_CUDA_TRY(cudaStreamSynchronize(g_stream));
  return kOk;
}

Status download(void* dst_host, const void* src_dev, size_t bytes) {
  FD_TRY(init());
  if (bytes == 0) return kOk;
  FD_CUDA_TRY(cudaMemcpyAsync(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost, g_stream));
  FD_CUDA_TRY(cudaStreamSynchronize(g_stream));
  return kOk;
}

Status synchronize() {
  FD_TRY(init());
  FD_CUDA_TRY(cudaStreamSynchronize(g_stream));
  return kOk;
}

Status timer_start() {
  FD_TRY(init());
  FD_CUDA_TRY(cudaEventRecord(g_ev_start, g_stream));
  return kOk;
}

Status timer_stop(float* elapsed_ms) {
  FD_TRY(init());
  FD_CUDA_TRY(cudaEventRecord(g_ev_stop, g_stream));
  FD_CUDA_TRY(cudaEventSynchronize(g_ev_stop));
  float ms = 0.0f;
  FD_CUDA_TRY(cudaEventElapsedTime(&ms, g_ev_start, g_ev_stop));
  if (elapsed_ms) *elapsed_ms = ms;
  return kOk;
}

}  // namespace device

// kernels/elementwise.h: queued on the stream like every kernel.
Status copy_cuda(void* dst, const void* src, int64_t bytes) {
  FD_TRY(device::init());
  if (bytes <= 0 || dst == src) return kOk;
  FD_CUDA_TRY(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice, device::stream()));
  return kOk;
}

}  // namespace fd
