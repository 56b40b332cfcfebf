// Elementwise tensor ops for the 'native' tfjs backend (kernels/cpu/elementwise_binary.cpp and
// elementwise_unary.cpp): binary ops with numpy/tfjs broadcasting, unary math, casts and fills, on
// dense row-major arrays. Each op reproduces what tfjs's 'cpu' backend computes (which evaluates in
// float64 and rounds once to float32): exactly for the arithmetic, comparison, rounding and cast
// ops, within ~1.5 ulp for the transcendental ones (see elementwise_math.h). No N-API here.
#pragma once
#include <cstdint>

#include "status.h"
#include "tensor.h"

namespace fd {

// The numbers are the addon's opcodes (exported to JS as mathOps.binary / mathOps.unary):
// append only.
enum BinaryOp : int {
  kAdd = 0,
  kSub = 1,
  kMul = 2,  // tfjs kernel "Multiply"
  kRealDiv = 3,
  kMaximum = 4,  // NaN if either is NaN; max(-0, +0) = +0 (JS Math.max)
  kMinimum = 5,  // NaN if either is NaN; min(-0, +0) = -0
  kPow = 6,      // JS Math.pow: pow(x, NaN) = NaN, pow(+-1, +-inf) = NaN
  kSquaredDifference = 7,
  kFloorDiv = 8,  // floor(a / b), output int32 (JS ToInt32: NaN and +-inf give 0, large values wrap)
  kMod = 9,       // tfjs's floor-mod: the result has b's sign
  kPrelu = 10,    // a < 0 ? b * a : a
  kGreater = 11,  // comparisons: output bool
  kGreaterEqual = 12,
  kLess = 13,
  kLessEqual = 14,
  kEqual = 15,
  kNotEqual = 16,
  kNumBinaryOps = 17,
};

enum UnaryOp : int {
  kExp = 0,
  kLog = 1,
  kLog1p = 2,
  kExpm1 = 3,
  kTanh = 4,
  kSigmoid = 5,
  kErf = 6,
  kSoftplus = 7,
  kElu = 8,
  kSelu = 9,
  kRelu = 10,
  kRelu6 = 11,
  kLeakyRelu = 12,    // p0 = alpha
  kStep = 13,         // p0 = alpha: x > 0 ? 1 : alpha, NaN stays NaN
  kClipByValue = 14,  // p0 = min, p1 = max
  kSqrt = 15,
  kRsqrt = 16,
  kSquare = 17,
  kNeg = 18,
  kAbs = 19,
  kReciprocal = 20,
  kSign = 21,  // NaN gives 0
  kFloor = 22,
  kCeil = 23,
  kRound = 24,  // half to even
  kSin = 25,
  kCos = 26,
  kIsNaN = 27,  // IsNaN, IsInf, IsFinite: output bool
  kIsInf = 28,
  kIsFinite = 29,
  kNumUnaryOps = 30,
};

constexpr int kMaxRank = 12;

// Names, for the addon's opcode tables (index = opcode).
const char* binary_op_name(int op);
const char* unary_op_name(int op);

// The element type the op writes for inputs of type `in`, or -1 when the op does not take that type
// (float32 takes every op; int32 takes Add, Sub, Multiply, Maximum, Minimum, SquaredDifference,
// FloorDiv and the comparisons).
int binary_out_type(int op, int in);
// Unary ops take float32 only; the output is float32 or (IsNaN, IsInf, IsFinite) bool.
int unary_out_type(int op);

// The broadcast shape of a and b (numpy rules, shapes aligned on the right) into out_shape (room for
// kMaxRank dims); false when they are incompatible. Ranks are <= kMaxRank.
bool broadcast_shape(const int64_t* a_shape, int a_rank, const int64_t* b_shape, int b_rank, int64_t* out_shape,
                     int* out_rank);

// out = op(a, b) broadcast. a and b hold elements of type `in`, out of binary_out_type(op, in).
// out may be a or b itself when that input has the output's shape and type; no other overlap.
void binary_cpu(int op, int in, const void* a, const int64_t* a_shape, int a_rank, const void* b,
                const int64_t* b_shape, int b_rank, void* out);

// out[i] = op(x[i]) for n float32 elements; p0, p1 are the op's attributes (see UnaryOp). out may
// be x when the output is float32.
void unary_cpu(int op, const float* x, void* out, int64_t n, double p0, double p1);

// out = x converted as tfjs's Cast does: float -> int32 truncates toward zero with JS ToInt32
// wrapping (NaN, +-inf -> 0), -> bool is x != 0 (NaN -> 1), bool/int32 -> float32 rounds to nearest.
void cast_cpu(int in, const void* x, int out_type, void* out, int64_t n);

// out[0..n) = value converted as a JS typed array's fill would: Math.fround for float32, ToInt32 for
// int32, ToUint8 (mod 256) for bool.
void fill_cpu(int type, void* out, int64_t n, double value);

// ---- CUDA (kernels/cuda/; kernels/cuda/no_cuda.cpp in CPU builds) ----
// The same parameters and semantics as the CPU functions above, on DEVICE pointers (shapes are host
// arrays). Work is queued on the library's stream (fd::device), nothing synchronises.
Status binary_cuda(int op, int in, const void* a, const int64_t* a_shape, int a_rank, const void* b,
                   const int64_t* b_shape, int b_rank, void* out);
Status unary_cuda(int op, const float* x, void* out, int64_t n, double p0, double p1);
Status cast_cuda(int in, const void* x, int out_type, void* out, int64_t n);
Status fill_cuda(int type, void* out, int64_t n, double value);
// device-to-device copy of `bytes`
Status copy_cuda(void* dst, const void* src, int64_t bytes);

}  // namespace fd
