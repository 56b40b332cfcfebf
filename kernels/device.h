// Device memory and stream for the CUDA path: a caching allocator (freed blocks are kept for reuse,
// like PyTorch's), one stream, explicit uploads/downloads and event timing. Implemented in
// kernels/cuda/device.cu, or by kernels/cuda/no_cuda.cpp (everything returns kNoCuda) in CPU builds.
#pragma once
#include <cstddef>
#include <string>

#include "status.h"

namespace fd {
namespace device {

bool built_with_cuda();
// Selects device 0 and creates the stream on first use; kNoDevice when none answers.
Status init();
// The message of the last failed call (CUDA's error string, or why there is no device).
std::string last_error();
std::string name();  // the device's name ("" without one)

Status alloc(size_t bytes, void** ptr);  // from the cache when a block of that size is free
Status release(void* ptr);               // back to the cache (ptr must come from alloc)
Status empty_cache();                    // cudaFree every cached block
Status memory_stats(size_t* bytes_in_use, size_t* bytes_cached);

Status upload(void* dst_dev, const void* src_host, size_t bytes);    // src may change on return
Status download(void* dst_host, const void* src_dev, size_t bytes);  // synchronous
Status synchronize();

// Device time between two points of the stream, from CUDA events.
Status timer_start();
Status timer_stop(float* elapsed_ms);

}  // namespace device
}  // namespace fd
