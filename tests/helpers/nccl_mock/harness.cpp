// Runs kernels/cuda/nccl.cu (compiled by nvcc) against mock_nccl.cpp without a GPU: fd::device and
// the few CUDA runtime calls nccl.cu makes are stubbed here (an event completes on its second query,
// or never with MOCK_EVENT=never). Prints one line per call: "<call> -> <status> [<ms>] <last_error>";
// --load-only: only whether NCCL could be loaded, and why not.
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "nccl.h"
#include "status.h"
#include "tensor.h"

namespace fd {
namespace device {
std::string g_err;
Status init() { return kOk; }
cudaStream_t stream() { return nullptr; }
std::string last_error() { return g_err; }
Status fail(const char* call, cudaError_t) {
  g_err = call;
  return kCudaError;
}
}  // namespace device
}  // namespace fd

namespace {
int g_queries = 0;
}
extern "C" {
void** __cudaRegisterFatBinary(void*) { return nullptr; }
void __cudaRegisterFatBinaryEnd(void**) {}
void __cudaUnregisterFatBinary(void**) {}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
  *e = reinterpret_cast<cudaEvent_t>(0x55);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) {
  g_queries = 0;
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t) {
  const char* m = std::getenv("MOCK_EVENT");
  if (m && !std::strcmp(m, "never")) return cudaErrorNotReady;
  return ++g_queries >= 2 ? cudaSuccess : cudaErrorNotReady;
}
const char* cudaGetErrorString(cudaError_t) { return "cuda error"; }
cudaError_t cudaGetLastError() { return cudaSuccess; }
}

using namespace fd;
namespace {
auto g_t0 = std::chrono::steady_clock::now();
void say(const char* what, Status st) {
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - g_t0).count();
  std::printf("%s -> %d [%.0f ms] %s\n", what, int(st), ms, st == kOk ? "" : nccl::last_error().c_str());
  std::fflush(stdout);
  g_t0 = std::chrono::steady_clock::now();
}
}  // namespace

int main(int argc, char** argv) {
  const bool available = nccl::available();  // before last_error(): argument order is unspecified
  std::printf("available %d %s\n", int(available), nccl::last_error().c_str());
  if (argc > 1 && !std::strcmp(argv[1], "--load-only")) return 0;
  int v = 0;
  say("version", nccl::version(&v));
  std::printf("version %d\n", v);
  uint8_t id[128];
  say("unique_id", nccl::unique_id(id));
  say("init_rank", nccl::init_rank(id, 2, 1));
  say("init_rank again", nccl::init_rank(id, 2, 1));
  float a[4] = {1, 2, 3, 4}, b[4] = {0, 0, 0, 0};
  say("all_gather", nccl::all_gather(a, b, 4, kF32));
  std::printf("b = %g %g %g %g\n", b[0], b[1], b[2], b[3]);
  say("all_reduce_sum", nccl::all_reduce_sum(a, 4));
  say("broadcast", nccl::broadcast(a, 4, kI32, 1));
  say("destroy", nccl::destroy());
  say("all_gather after destroy", nccl::all_gather(a, b, 4, kF32));
  return 0;
}
