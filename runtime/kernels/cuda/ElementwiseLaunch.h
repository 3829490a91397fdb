// Launches of the elementwise and cast kernels (ElementwiseLaunch.cu), for
// the wrappers in Elementwise.cpp and Cast.cpp, which have checked the
// operands. Pointers are device memory; every launch is asynchronous on
// `stream`.
//
// Broadcasting launches take the output `shape` (`rank` dims, outermost
// first) and each input's element strides over it, `rank` entries with 0
// where the input repeats (cpu::BroadcastStrides). They return false, having
// launched nothing, when the shapes need more dims of indexing than the
// kernels carry (kMaxIndexDims = 8 after merging contiguous dims).

#ifndef VEOMNI_RUNTIME_KERNELS_CUDA_ELEMENTWISELAUNCH_H
#define VEOMNI_RUNTIME_KERNELS_CUDA_ELEMENTWISELAUNCH_H

#include <cstdint>

#include <cuda_runtime_api.h>

namespace veomni::runtime::cuda {

enum class BinaryOp { kAdd, kSub, kMul, kDiv, kPow, kMaximum, kMinimum };

// The cmp predicates, numbered as the compiler numbers them.
enum class ComparePredicate { kEq = 0, kNe, kLt, kLe, kGt, kGe };

// Unary f32 math. kGelu is the erf form, kGeluTanh PyTorch's tanh form.
enum class UnaryOp {
  kNeg,
  kExp,
  kLog,
  kSqrt,
  kRsqrt,
  kReciprocal,
  kTanh,
  kErf,
  kCos,
  kSin,
  kSigmoid,
  kSilu,
  kGelu,
  kGeluTanh,
};

// The dtypes cast converts between, with the storage of runtime::DType.
enum class CastType { kF32, kBF16, kF16, kI64, kI32, kI1 };

// Integer kDiv flags kIntegerDivisionByZero in `error_flags` for a zero
// divisor (and writes 0 there). kPow is f32 only.
bool LaunchBinary(BinaryOp op, const float* lhs, const float* rhs, float* out, int rank,
                  const int64_t* shape, const int64_t* lhs_strides, const int64_t* rhs_strides,
                  unsigned* error_flags, cudaStream_t stream);
bool LaunchBinary(BinaryOp op, const int64_t* lhs, const int64_t* rhs, int64_t* out, int rank,
                  const int64_t* shape, const int64_t* lhs_strides, const int64_t* rhs_strides,
                  unsigned* error_flags, cudaStream_t stream);
bool LaunchBinary(BinaryOp op, const int32_t* lhs, const int32_t* rhs, int32_t* out, int rank,
                  const int64_t* shape, const int64_t* lhs_strides, const int64_t* rhs_strides,
                  unsigned* error_flags, cudaStream_t stream);

// out (i1, one byte per element) = predicate(lhs, rhs).
bool LaunchCompare(ComparePredicate predicate, const float* lhs, const float* rhs, uint8_t* out,
                   int rank, const int64_t* shape, const int64_t* lhs_strides,
                   const int64_t* rhs_strides, cudaStream_t stream);
bool LaunchCompare(ComparePredicate predicate, const int64_t* lhs, const int64_t* rhs,
                   uint8_t* out, int rank, const int64_t* shape, const int64_t* lhs_strides,
                   const int64_t* rhs_strides, cudaStream_t stream);
bool LaunchCompare(ComparePredicate predicate, const int32_t* lhs, const int32_t* rhs,
                   uint8_t* out, int rank, const int64_t* shape, const int64_t* lhs_strides,
                   const int64_t* rhs_strides, cudaStream_t stream);

// out = cond != 0 ? on_true : on_false, moving elements of `element_bytes`
// (1, 2, 4 or 8) without looking at them.
bool LaunchSelect(int element_bytes, const uint8_t* cond, const void* on_true,
                  const void* on_false, void* out, int rank, const int64_t* shape,
                  const int64_t* cond_strides, const int64_t* true_strides,
                  const int64_t* false_strides, cudaStream_t stream);

void LaunchUnary(UnaryOp op, const float* x, float* y, int64_t count, cudaStream_t stream);
// Wrapping negation of integers.
void LaunchNegate(const int64_t* x, int64_t* y, int64_t count, cudaStream_t stream);
void LaunchNegate(const int32_t* x, int32_t* y, int64_t count, cudaStream_t stream);
void LaunchIsNan(const float* x, uint8_t* y, int64_t count, cudaStream_t stream);

// Converts `count` elements with the CPU cast's rounding, bit for bit.
void LaunchCast(CastType from, const void* x, CastType to, void* y, int64_t count,
                cudaStream_t stream);

// dst [rows, cols] = bf16(src[r * ld + c]), dense: a block of a row-major f32
// matrix with row stride `ld` rounded as LaunchCast rounds.
void LaunchCastBlockToBf16(const float* src, int64_t rows, int64_t cols, int64_t ld, void* dst,
                           cudaStream_t stream);

}  // namespace veomni::runtime::cuda

#endif  // VEOMNI_RUNTIME_KERNELS_CUDA_ELEMENTWISELAUNCH_H
