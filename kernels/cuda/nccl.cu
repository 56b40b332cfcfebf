// fd::nccl (kernels/nccl.h) through NCCL loaded at run time: the build machine has no NCCL and the GPU
// machines have it only inside PyTorch's install, so nothing here includes nccl.h or links it. The
// entry points are declared by hand from NCCL's public API (nccl.h; enum values included) and found
// with dlsym, as gemm.cu does for cuBLAS.
//
// The communicator is non-blocking (ncclCommInitRankConfig with blocking = 0, NCCL >= 2.14): every
// call returns at once and this file polls ncclCommGetAsyncError, and a CUDA event for a collective's
// completion, until done, an error, or the deadline (FUSED_DISTILL_COLLECTIVE_TIMEOUT_S), when it
// aborts the communicator. An older NCCL without ncclCommInitRankConfig gets ncclCommInitRank, whose
// init blocks (no timeout for the init itself; the collectives still have one).
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "../nccl.h"
#include "../tensor.h"
#include "cuda_common.cuh"

namespace fd {
namespace nccl {
namespace {

// ---- the hand-declared NCCL surface ----
using Comm = void*;  // ncclComm_t (an opaque pointer)
struct UniqueId {    // ncclUniqueId, passed by value
  char internal[kUniqueIdBytes];
};
constexpr int kSuccess = 0;     // ncclResult_t: ncclSuccess
constexpr int kInProgress = 7;  // ncclResult_t: ncclInProgress (non-blocking communicators)
const char* const kResultNames[] = {"ncclSuccess",       "ncclUnhandledCudaError", "ncclSystemError",
                                    "ncclInternalError", "ncclInvalidArgument",    "ncclInvalidUsage",
                                    "ncclRemoteError",   "ncclInProgress"};
constexpr int kUint8 = 1, kInt32 = 2, kFloat32 = 7;  // ncclDataType_t: ncclUint8, ncclInt32, ncclFloat32
constexpr int kSum = 0;                              // ncclRedOp_t: ncclSum
// ncclConfig_t as NCCL 2.14 declared it (the release that added it). NCCL reads `size` bytes of it and
// gives the fields a newer release added their defaults when `version` is older than that release.
struct Config {
  size_t size;
  unsigned int magic;    // 0xcafebeef, what NCCL_CONFIG_INITIALIZER sets
  unsigned int version;  // NCCL_VERSION(2, 14, 0) = 2 * 10000 + 14 * 100 + 0
  int blocking;
  int cga_cluster_size, min_ctas, max_ctas;  // NCCL_CONFIG_UNDEF_INT (INT_MIN): NCCL's choice
  const char* net_name;                      // NCCL_CONFIG_UNDEF_PTR (null)
};
using GetVersionFn = int (*)(int*);
using GetUniqueIdFn = int (*)(UniqueId*);
using InitRankFn = int (*)(Comm*, int, UniqueId, int);
using InitRankConfigFn = int (*)(Comm*, int, UniqueId, int, Config*);
using CommFn = int (*)(Comm);  // ncclCommFinalize, ncclCommDestroy, ncclCommAbort
using AsyncErrorFn = int (*)(Comm, int*);
using ErrorStringFn = const char* (*)(int);
using LastErrorFn = const char* (*)(Comm);  // ncclGetLastError (optional, NCCL >= 2.13)
using AllGatherFn = int (*)(const void*, void*, size_t, int, Comm, cudaStream_t);
using BroadcastFn = int (*)(const void*, void*, size_t, int, int, Comm, cudaStream_t);
using AllReduceFn = int (*)(const void*, void*, size_t, int, int, Comm, cudaStream_t);

struct Nccl {
  std::mutex mu;  // guards everything here: one NCCL call at a time
  bool tried = false, loaded = false;
  std::string missing;  // why NCCL could not be loaded
  GetVersionFn get_version = nullptr;
  GetUniqueIdFn get_unique_id = nullptr;
  InitRankFn init_rank = nullptr;
  InitRankConfigFn init_rank_config = nullptr;  // optional: NCCL >= 2.14
  CommFn finalize = nullptr;                    // optional: NCCL >= 2.14
  CommFn destroy = nullptr, abort = nullptr;
  AsyncErrorFn async_error = nullptr;
  ErrorStringFn error_string = nullptr;
  LastErrorFn last_error = nullptr;
  AllGatherFn all_gather = nullptr;
  BroadcastFn broadcast = nullptr;
  AllReduceFn all_reduce = nullptr;
  Comm comm = nullptr;
  int nranks = 0, rank = 0;
  cudaEvent_t done = nullptr;  // recorded after each collective, polled
};
Nccl g;

std::mutex g_err_mu;
std::string g_err;

Status fail(const std::string& message) {
  std::lock_guard<std::mutex> lock(g_err_mu);
  g_err = message;
  return kCollectiveError;
}

// A device call's failure, with the device's message, as this file's error.
Status from_device(Status st) {
  if (st != kOk) fail(device::last_error());
  return st;
}

// "<call>: <name> (<NCCL's words>): <ncclGetLastError>" for a failed result.
std::string describe(const std::string& call, int result, Comm comm) {
  std::string s = call + ": " + (result >= 0 && result < 8 ? kResultNames[result] : "ncclResult_t");
  s += " " + std::to_string(result);
  if (g.error_string) {
    const char* what = g.error_string(result);
    if (what && *what) s += std::string(" (") + what + ")";
  }
  if (g.last_error) {
    const char* last = g.last_error(comm);
    if (last && *last) s += std::string(": ") + last;
  }
  return s;
}

// Aborts the communicator (g.mu held) and records `message`.
Status abort_locked(const std::string& message) {
  if (g.comm) {
    g.abort(g.comm);
    g.comm = nullptr;
    g.nranks = 0;
  }
  return fail(message + "; the communicator was aborted (initRank again with a new unique id)");
}

// FUSED_DISTILL_COLLECTIVE_TIMEOUT_S, read at every call (a test may shorten it): seconds > 0.
Status timeout_s(double* seconds) {
  *seconds = kDefaultTimeoutS;
  const char* v = std::getenv("FUSED_DISTILL_COLLECTIVE_TIMEOUT_S");
  if (v == nullptr || *v == '\0') return kOk;
  char* end = nullptr;
  const double s = std::strtod(v, &end);
  if (end == v || *end != '\0' || !(s > 0) || s > 1e9)
    return fail(std::string("FUSED_DISTILL_COLLECTIVE_TIMEOUT_S=") + v + ": not a number of seconds > 0");
  *seconds = s;
  return kOk;
}

struct Deadline {
  std::chrono::steady_clock::time_point end;
  double seconds;
};

Status deadline(Deadline* d) {
  FD_TRY(timeout_s(&d->seconds));
  d->end = std::chrono::steady_clock::now() +
           std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(d->seconds));
  return kOk;
}

std::string seconds_text(double s) {
  std::string t = std::to_string(s);
  t.erase(t.find_last_not_of('0') + 1);  // "1800.000000" -> "1800."
  if (!t.empty() && t.back() == '.') t.pop_back();
  return t;
}

// Polls until the communicator's pending call is done (event == nullptr: ncclCommGetAsyncError says
// ncclSuccess) or, with an event, until the event has completed too; aborts on an error or at the
// deadline (g.mu held).
Status wait_locked(const std::string& what, cudaEvent_t event, const Deadline& d) {
  auto pause = std::chrono::microseconds(10);
  for (;;) {
    int state = kSuccess;
    const int r = g.async_error(g.comm, &state);
    if (r != kSuccess) return abort_locked(describe("ncclCommGetAsyncError during " + what, r, g.comm));
    if (state != kSuccess && state != kInProgress) return abort_locked(describe(what, state, g.comm));
    if (state == kSuccess) {
      if (event == nullptr) return kOk;
      const cudaError_t e = cudaEventQuery(event);
      if (e == cudaSuccess) return kOk;
      if (e != cudaErrorNotReady) {
        cudaGetLastError();
        return abort_locked(what + ": cudaEventQuery: " + cudaGetErrorString(e));
      }
    }
    if (std::chrono::steady_clock::now() >= d.end)
      return abort_locked(what + " did not complete within " + seconds_text(d.seconds) +
                          " s (FUSED_DISTILL_COLLECTIVE_TIMEOUT_S): a rank may have died, hung, or not called it");
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
}

// Loads libnccl (g.mu held).
Status load_locked() {
  if (g.loaded) return kOk;
  if (g.tried) return fail(g.missing);
  g.tried = true;
  void* lib = nullptr;
  std::string errors;
  const char* env = std::getenv("FUSED_DISTILL_NCCL_LIBRARY");
  for (const char* name : {env, "libnccl.so.2", "libnccl.so"}) {
    if (name == nullptr || *name == '\0') continue;
    lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib) break;
    const char* e = dlerror();
    errors += std::string(errors.empty() ? "" : "; ") + (e ? e : name);
  }
  if (!lib) {
    g.missing = "NCCL not found (set FUSED_DISTILL_NCCL_LIBRARY to a libnccl.so.2): " + errors;
    return fail(g.missing);
  }
  auto sym = [&](const char* name) { return dlsym(lib, name); };
  g.get_version = reinterpret_cast<GetVersionFn>(sym("ncclGetVersion"));
  g.get_unique_id = reinterpret_cast<GetUniqueIdFn>(sym("ncclGetUniqueId"));
  g.init_rank = reinterpret_cast<InitRankFn>(sym("ncclCommInitRank"));
  g.init_rank_config = reinterpret_cast<InitRankConfigFn>(sym("ncclCommInitRankConfig"));
  g.finalize = reinterpret_cast<CommFn>(sym("ncclCommFinalize"));
  g.destroy = reinterpret_cast<CommFn>(sym("ncclCommDestroy"));
  g.abort = reinterpret_cast<CommFn>(sym("ncclCommAbort"));
  g.async_error = reinterpret_cast<AsyncErrorFn>(sym("ncclCommGetAsyncError"));
  g.error_string = reinterpret_cast<ErrorStringFn>(sym("ncclGetErrorString"));
  g.last_error = reinterpret_cast<LastErrorFn>(sym("ncclGetLastError"));
  g.all_gather = reinterpret_cast<AllGatherFn>(sym("ncclAllGather"));
  g.broadcast = reinterpret_cast<BroadcastFn>(sym("ncclBroadcast"));
  g.all_reduce = reinterpret_cast<AllReduceFn>(sym("ncclAllReduce"));
  if (!g.get_version || !g.get_unique_id || !g.init_rank || !g.destroy || !g.abort || !g.async_error ||
      !g.error_string || !g.all_gather || !g.broadcast || !g.all_reduce) {
    g.missing = "NCCL not usable: the loaded libnccl lacks a needed entry point (NCCL >= 2.7 needed)";
    return fail(g.missing);
  }
  if (!g.init_rank_config || !g.finalize) {  // before 2.14: blocking init, no finalize
    g.init_rank_config = nullptr;
    g.finalize = nullptr;
  }
  g.loaded = true;
  return kOk;
}

// Device ready and NCCL loaded (g.mu held).
Status ready_locked() {
  const Status st = device::init();
  if (st != kOk) {
    fail("NCCL needs a CUDA device: " + device::last_error());
    return st;
  }
  return load_locked();
}

Status no_comm(const char* call) {
  return fail(std::string(call ? call : "") + (call ? ": " : "") +
              "no communicator (initRank first; a failed or timed-out collective aborts it)");
}

int nccl_type(int dtype) { return dtype == kF32 ? kFloat32 : dtype == kI32 ? kInt32 : kUint8; }

// Queues a collective (enqueue returns its ncclResult_t) and waits for it on the stream (g.mu held).
template <class Enqueue>
Status collective_locked(const char* call, Enqueue enqueue) {
  if (!g.comm) return no_comm(call);
  Deadline d;
  FD_TRY(deadline(&d));
  const int r = enqueue();
  // Any failure leaves the other ranks waiting in their part: abort, so they fail too (not hang).
  if (r != kSuccess && r != kInProgress) return abort_locked(describe(call, r, g.comm));
  if (r == kInProgress) FD_TRY(wait_locked(call, nullptr, d));  // queued once the call has completed
  const cudaError_t e = cudaEventRecord(g.done, device::stream());
  if (e != cudaSuccess) {
    cudaGetLastError();
    return abort_locked(std::string(call) + ": cudaEventRecord: " + cudaGetErrorString(e));
  }
  return wait_locked(call, g.done, d);
}

}  // namespace

bool available() {
  std::lock_guard<std::mutex> lock(g.mu);
  return ready_locked() == kOk;
}

std::string last_error() {
  std::lock_guard<std::mutex> lock(g_err_mu);
  return g_err;
}

Status version(int* code) {
  *code = 0;
  std::lock_guard<std::mutex> lock(g.mu);
  FD_TRY(load_locked());
  const int r = g.get_version(code);
  return r == kSuccess ? kOk : fail(describe("ncclGetVersion", r, nullptr));
}

Status unique_id(uint8_t* id) {
  std::lock_guard<std::mutex> lock(g.mu);
  FD_TRY(load_locked());
  UniqueId u;
  const int r = g.get_unique_id(&u);
  if (r != kSuccess) return fail(describe("ncclGetUniqueId", r, nullptr));
  std::memcpy(id, u.internal, kUniqueIdBytes);
  return kOk;
}

Status init_rank(const uint8_t* id, int nranks, int rank) {
  std::lock_guard<std::mutex> lock(g.mu);
  FD_TRY(ready_locked());
  if (g.comm)
    return fail("this process has a communicator already (rank " + std::to_string(g.rank) + " of " +
                std::to_string(g.nranks) + "): destroy it first");
  if (nranks < 1 || rank < 0 || rank >= nranks)
    return fail("rank " + std::to_string(rank) + " is not in 0.." + std::to_string(nranks - 1));
  if (!g.done) {
    const cudaError_t e = cudaEventCreateWithFlags(&g.done, cudaEventDisableTiming);
    if (e != cudaSuccess) return from_device(device::fail("cudaEventCreateWithFlags", e));
  }
  Deadline d;
  FD_TRY(deadline(&d));
  UniqueId u;
  std::memcpy(u.internal, id, kUniqueIdBytes);
  Comm comm = nullptr;
  const char* call = g.init_rank_config ? "ncclCommInitRankConfig" : "ncclCommInitRank";
  int r;
  if (g.init_rank_config) {
    Config c{sizeof(Config), 0xcafebeefu, 21400u, 0, INT_MIN, INT_MIN, INT_MIN, nullptr};
    r = g.init_rank_config(&comm, nranks, u, rank, &c);
  } else {
    r = g.init_rank(&comm, nranks, u, rank);
  }
  if (r != kSuccess && r != kInProgress) {
    const std::string msg = describe(call, r, comm);
    if (comm) g.abort(comm);
    return fail(msg);
  }
  g.comm = comm;
  g.nranks = nranks;
  g.rank = rank;
  // Non-blocking: the init runs on NCCL's thread until every rank has joined.
  if (g.init_rank_config) FD_TRY(wait_locked(call, nullptr, d));
  return kOk;
}

Status comm_info(int* nranks, int* rank) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (!g.comm) return no_comm(nullptr);
  *nranks = g.nranks;
  *rank = g.rank;
  return kOk;
}

Status all_gather(const void* send, void* recv, int64_t count, int dtype) {
  std::lock_guard<std::mutex> lock(g.mu);
  return collective_locked("ncclAllGather", [&] {
    return g.all_gather(send, recv, size_t(count), nccl_type(dtype), g.comm, device::stream());
  });
}

Status broadcast(void* buf, int64_t count, int dtype, int root) {
  std::lock_guard<std::mutex> lock(g.mu);
  return collective_locked("ncclBroadcast", [&] {
    return g.broadcast(buf, buf, size_t(count), nccl_type(dtype), root, g.comm, device::stream());
  });
}

Status all_reduce_sum(float* buf, int64_t count) {
  std::lock_guard<std::mutex> lock(g.mu);
  return collective_locked(
      "ncclAllReduce", [&] { return g.all_reduce(buf, buf, size_t(count), kFloat32, kSum, g.comm, device::stream()); });
}

Status destroy() {
  std::lock_guard<std::mutex> lock(g.mu);
  if (!g.comm) return kOk;
  if (g.finalize) {
    // Flushes the communicator's pending work (non-blocking: polled like a collective, with the deadline).
    Deadline d;
    FD_TRY(deadline(&d));
    const int r = g.finalize(g.comm);
    if (r != kSuccess && r != kInProgress) return abort_locked(describe("ncclCommFinalize", r, g.comm));
    FD_TRY(wait_locked("ncclCommFinalize", nullptr, d));
  }
  const int r = g.destroy(g.comm);
  const std::string msg = r == kSuccess ? "" : describe("ncclCommDestroy", r, g.comm);
  g.comm = nullptr;
  g.nranks = 0;
  return r == kSuccess ? kOk : fail(msg);
}

}  // namespace nccl
}  // namespace fd
