// Collectives across processes on device buffers, through NCCL (one communicator per process).
// kernels/cuda/nccl.cu loads NCCL at run time with dlopen (like cuBLAS in gemm.cu: nothing links it),
// from FUSED_DISTILL_NCCL_LIBRARY when set, else libnccl.so.2, else libnccl.so. In a build without
// CUDA (kernels/cuda/no_cuda.cpp) NCCL is unavailable, except under FUSED_DISTILL_EMULATE_DEVICE=1,
// where a one-rank communicator is emulated on the host (a collective of one rank is a copy).
//
// Every collective runs on the library's stream (device.h) and returns when it has completed there:
// it waits on a CUDA event, polling ncclCommGetAsyncError, and gives up after
// FUSED_DISTILL_COLLECTIVE_TIMEOUT_S seconds (default 1800), aborting the communicator
// (ncclCommAbort), so that a rank that died or never called the collective cannot hang the others.
// After a failure or a timeout the communicator is gone: init_rank again (with a new unique id).
#pragma once
#include <cstdint>
#include <string>

#include "status.h"

namespace fd {
namespace nccl {

constexpr int kUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES
constexpr double kDefaultTimeoutS = 1800;

// True when NCCL could be loaded (and a device answers); otherwise last_error() says why.
bool available();
// Why the last call failed, or why NCCL is unavailable.
std::string last_error();
// NCCL's version code (e.g. 22805 for 2.28.5); 0 under the host emulation.
Status version(int* code);
// A new communicator id (rank 0 makes it and sends it to the others), kUniqueIdBytes bytes.
Status unique_id(uint8_t* id);
// Joins communicator `id` as `rank` of `nranks` (returns when every rank has joined, or fails after
// the timeout). One communicator per process: a previous one must be destroyed first.
Status init_rank(const uint8_t* id, int nranks, int rank);
// The communicator's size and this process's rank (kCollectiveError when there is none).
Status comm_info(int* nranks, int* rank);
// recv[r * count .. (r + 1) * count) = rank r's send[0 .. count), elements of dtype (fd::DType);
// recv holds nranks * count elements and may not overlap send except as rank's slot (NCCL in-place).
Status all_gather(const void* send, void* recv, int64_t count, int dtype);
// buf[0 .. count) of rank `root` on every rank, in place.
Status broadcast(void* buf, int64_t count, int dtype, int root);
// buf[i] = the sum over ranks of buf[i], in place, float32 (the order of the sum is NCCL's).
Status all_reduce_sum(float* buf, int64_t count);
// Ends the communicator (ncclCommFinalize + ncclCommDestroy); no-op when there is none.
Status destroy();

}  // namespace nccl
}  // namespace fd
