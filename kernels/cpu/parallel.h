// Deterministic parallel loops for the CPU kernels. Work is cut into blocks whose boundaries depend
// only on the problem size, never on the thread count; each block's partial result is computed
// serially and the partials are combined in block order. So 1 thread and N threads give bit-identical
// results. Threads come from OpenMP (libgomp): a well-kept pool with a cheap fork/join. Blocks are
// handed out dynamically, so a thread the OS has descheduled (a busy machine) does not hold up the
// others' share: with a static schedule one stalled thread made a 2-thread call 10x slower here.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../losses.h"  // num_threads, Status

namespace fd {

// Rows per block so that a block holds about `target` elements of work.
inline int64_t block_rows(int64_t cols, int64_t target = 16384) {
  return std::max<int64_t>(1, target / std::max<int64_t>(1, cols));
}

// Threads to use for `work` elements in `blocks` blocks: one thread for small problems (the
// fork/join would cost more than it saves), never more threads than blocks.
int threads_for(int64_t work, int64_t blocks);

// The calling thread's index within for_each_block's loop, 0 .. threads_for(...) - 1: for indexing
// per-thread buffers allocated before the loop (an allocation inside it cannot fail gracefully).
inline int block_thread() { return omp_get_thread_num(); }

// Physical memory of the machine in bytes: working buffers larger than this are refused up front,
// since with overcommit their allocation could succeed and only touching them end in the OOM killer.
int64_t physical_memory_bytes();

// Calls body(block, begin, end) for every block of [0, n) in parallel, on at most max_threads threads
// (the count per-thread buffers were allocated for).
template <class Body>
void for_each_block(int64_t n, int64_t block, int64_t work, Body&& body, int max_threads = 1 << 30) {
  const int64_t nb = (n + block - 1) / block;
  const int nt = std::min(threads_for(work, nb), max_threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
  for (int64_t b = 0; b < nb; ++b) body(b, b * block, std::min(n, (b + 1) * block));
}

}  // namespace fd
