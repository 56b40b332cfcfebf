// The result code of every kernel entry point, CPU and CUDA (losses.h, elementwise.h, gemm.h, ...),
// and of the device functions (device.h). The N-API layer turns it into a JS error.
#pragma once

namespace fd {

enum Status : int {
  kOk = 0,
  kBadMask = 1,    // a mask/tokenMask value other than 0 or 1 (reported by check_mask)
  kNoCuda = 2,     // built without CUDA
  kNoDevice = 3,   // CUDA built in but no usable device
  kCudaError = 4,  // a CUDA call failed; cuda_last_error() has the message
  kBadShape = 5,   // a negative size or a leading dimension too small (sgemm_cpu)
  kNoMemory = 6,   // a working buffer could not be allocated
  kBadLabel = 7,   // a label outside its loss's domain (reported by check_unit_labels)
  // NCCL missing, failed or timed out (kernels/nccl.h): nccl::last_error() says why
  kCollectiveError = 8,
};

}  // namespace fd
