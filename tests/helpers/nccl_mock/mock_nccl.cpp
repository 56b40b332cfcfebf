// A stand-in libnccl for tests/nccl_mock.test.ts: the few entry points kernels/cuda/nccl.cu loads,
// with the behaviour chosen by environment variables, so that the non-blocking init, the polling,
// the timeout and the aborts run on a machine without a GPU or NCCL.
//   MOCK_INIT=ok|hang|dup|remote  the init completes after 3 polls | never | fails "Duplicate GPU"
//                                 | fails ncclRemoteError
//   MOCK_COLL=ok|invalid          a collective is in progress for 3 polls | fails ncclInvalidArgument
// Every call is logged on stderr ("mock: ...") for the test to check the arguments it got.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {
void* const kComm = reinterpret_cast<void*>(0x1234);
int g_state = 0;  // what ncclCommGetAsyncError reports: 0 ncclSuccess, 7 ncclInProgress, else the error
int g_polls = 0;
std::string g_last;
std::string mode(const char* name) {
  const char* m = std::getenv(name);
  return m ? m : "ok";
}
void pending() {
  g_state = 7;
  g_polls = 0;
}
}  // namespace

extern "C" {
struct Config {  // ncclConfig_t as of NCCL 2.14
  size_t size;
  unsigned magic, version;
  int blocking, cga_cluster_size, min_ctas, max_ctas;
  const char* net_name;
};
struct UniqueId {
  char internal[128];
};

int ncclGetVersion(int* v) {
  *v = 22805;
  return 0;
}
int ncclGetUniqueId(UniqueId* id) {
  for (int i = 0; i < 128; i++) id->internal[i] = static_cast<char>(i);
  return 0;
}
int ncclCommInitRank(void**, int, UniqueId, int) { return 5; }
int ncclCommInitRankConfig(void** comm, int nranks, UniqueId id, int rank, Config* c) {
  std::fprintf(stderr, "mock: init nranks=%d rank=%d id[5]=%d size=%zu magic=%x version=%u blocking=%d cga=%d net=%s\n",
               nranks, rank, id.internal[5], c->size, c->magic, c->version, c->blocking, c->cga_cluster_size,
               c->net_name ? c->net_name : "null");
  *comm = kComm;
  pending();
  return 7;
}
int ncclCommGetAsyncError(void* comm, int* state) {
  if (comm != kComm) return 4;
  if (g_state == 7 && ++g_polls >= 3) {
    const std::string m = mode("MOCK_INIT");
    if (m == "hang") {
    } else if (m == "dup") {
      g_state = 5;
      g_last = "Duplicate GPU detected : rank 1 and rank 0 both on CUDA device 1b000";
    } else if (m == "remote") {
      g_state = 6;
      g_last = "remote peer gone";
    } else {
      g_state = 0;
    }
  }
  *state = g_state;
  return 0;
}
int ncclCommFinalize(void*) {
  std::fprintf(stderr, "mock: finalize\n");
  pending();
  return 7;
}
int ncclCommDestroy(void*) {
  std::fprintf(stderr, "mock: destroy\n");
  return 0;
}
int ncclCommAbort(void*) {
  std::fprintf(stderr, "mock: abort\n");
  return 0;
}
const char* ncclGetErrorString(int r) {
  return r == 4 ? "invalid argument" : r == 5 ? "invalid usage" : r == 6 ? "remote process exited" : "error";
}
const char* ncclGetLastError(void*) { return g_last.c_str(); }

static int collective() {
  if (mode("MOCK_COLL") == "invalid") {
    g_last = "bad count";
    return 4;
  }
  pending();
  return 7;
}
int ncclAllGather(const void* send, void* recv, size_t n, int type, void*, void*) {
  std::fprintf(stderr, "mock: allgather n=%zu type=%d\n", n, type);
  std::memmove(recv, send, n * (type == 1 ? 1 : 4));  // the harness's "device" pointers are host memory
  return collective();
}
int ncclBroadcast(const void* send, void* recv, size_t n, int type, int root, void*, void*) {
  std::fprintf(stderr, "mock: broadcast n=%zu type=%d root=%d inplace=%d\n", n, type, root, send == recv);
  return collective();
}
int ncclAllReduce(const void* send, void* recv, size_t n, int type, int op, void*, void*) {
  std::fprintf(stderr, "mock: allreduce n=%zu type=%d op=%d inplace=%d\n", n, type, op, send == recv);
  return collective();
}
}
