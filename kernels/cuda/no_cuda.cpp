// The CPU-only build's CUDA side: every device function and every *_cuda kernel answers kNoCuda.
// Plain C++, no CUDA headers.
#include <string>

#include "device.h"
#include "losses.h"
#include "nn.h"

namespace fd {
namespace {
const char kMessage[] = "fused-distill was built without CUDA: run `npm run build:cuda`";
}  // namespace

namespace device {

bool built_with_cuda() { return false; }
Status init() { return kNoCuda; }
std::string last_error() { return kMessage; }
std::string name() { return ""; }

Status alloc(size_t, void** ptr) {
  if (ptr) *ptr = nullptr;
  return kNoCuda;
}
Status release(void*) { return kNoCuda; }
Status empty_cache() { return kNoCuda; }
Status memory_stats(size_t* bytes_in_use, size_t* bytes_cached) {
  if (bytes_in_use) *bytes_in_use = 0;
  if (bytes_cached) *bytes_cached = 0;
  return kNoCuda;
}

Status upload(void*, const void*, size_t) { return kNoCuda; }
Status download(void*, const void*, size_t) { return kNoCuda; }
Status synchronize() { return kNoCuda; }

Status timer_start() { return kNoCuda; }
Status timer_stop(float* elapsed_ms) {
  if (elapsed_ms) *elapsed_ms = 0.0f;
  return kNoCuda;
}

}  // namespace device

Status ranking_objective_cuda(const ObjectiveArgs&, float*, float*) { return kNoCuda; }
Status hidden_mse_cuda(const FeatureArgs&, float*, float*) { return kNoCuda; }
Status attention_mse_cuda(const FeatureArgs&, float*, float*) { return kNoCuda; }
Status scale_cuda(const float*, float, float*, int64_t) { return kNoCuda; }
Status layer_norm_cuda(const LayerNormArgs&) { return kNoCuda; }
Status layer_norm_grad_cuda(const LayerNormGradArgs&) { return kNoCuda; }
Status gelu_cuda(const float*, float*, int64_t) { return kNoCuda; }
Status gelu_grad_cuda(const float*, const float*, float*, int64_t) { return kNoCuda; }

}  // namespace fd
