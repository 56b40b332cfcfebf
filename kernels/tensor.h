// How the tensor ops (elementwise.h, reduce.h, softmax.h, layout.h) and the device buffers name an
// element type, and the most axes the shape ops take. No N-API here.
#pragma once
#include <cstdint>

namespace fd {

// Element types, matching tfjs's dtypes: float32, int32, bool (one byte, 0 or 1).
enum DType : int { kF32 = 0, kI32 = 1, kU8 = 2 };

inline int64_t elem_bytes(DType t) { return t == kU8 ? 1 : 4; }

// Most axes a shape of reduce.h and layout.h may have (elementwise.h's broadcasting has kMaxRank).
constexpr int kMaxShapeRank = 16;

}  // namespace fd
