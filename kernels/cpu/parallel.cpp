#include "parallel.h"

#include <omp.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdlib>

namespace fd {
namespace {
int default_threads() {
  // FUSED_DISTILL_NUM_THREADS wins over OpenMP's own default (OMP_NUM_THREADS or the core count).
  if (const char* env = std::getenv("FUSED_DISTILL_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return std::max(1, omp_get_max_threads());
}
std::atomic<int> g_threads{default_threads()};
}  // namespace

void set_num_threads(int n) { g_threads.store(std::max(1, n)); }
// Inside a parallel region (a kernel's per-pair products, say) a nested call runs on its own
// thread: OpenMP would run a nested region on one thread anyway, but a caller sizing its plan or
// its fork for N threads would pay for the split (smaller tiles, operands packed twice) for nothing.
int num_threads() { return omp_in_parallel() ? 1 : g_threads.load(); }

int threads_for(int64_t work, int64_t blocks) {
  constexpr int64_t kMinWorkPerThread = 32768;
  const int64_t useful = std::max<int64_t>(1, work / kMinWorkPerThread);
  return static_cast<int>(std::min<int64_t>({num_threads(), blocks, useful}));
}

int64_t physical_memory_bytes() {
  static const int64_t bytes = [] {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : INT64_MAX;
  }();
  return bytes;
}

}  // namespace fd
