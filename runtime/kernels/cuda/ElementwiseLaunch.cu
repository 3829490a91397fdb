// Device code of Elementwise.cpp and Cast.cpp. Float math runs in f32 with
// CUDA's precise (non-intrinsic) functions; integer arithmetic wraps like the
// CPU kernels'; cast reproduces runtime/base/FloatBits.h bit for bit.

#include <cstdint>
#include <limits>
#include <type_traits>

#include "runtime/kernels/cuda/CudaContext.h"
#include "runtime/kernels/cuda/DeviceIndexing.cuh"
#include "runtime/kernels/cuda/ElementwiseLaunch.h"

namespace veomni::runtime::cuda {
namespace {

// The CPU's std::numeric_limits<float>::quiet_NaN(), so NaNs match bitwise.
__device__ float QuietNan() { return __uint_as_float(0x7fc00000u); }

template <typename T>
__device__ T WrappingAdd(T a, T b) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
}
template <typename T>
__device__ T WrappingSub(T a, T b) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(a) - static_cast<U>(b));
}
template <typename T>
__device__ T WrappingMul(T a, T b) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
}

template <BinaryOp kOp, typename T>
__device__ T ApplyBinary(T a, T b, unsigned* error_flags) {
  if constexpr (std::is_floating_point_v<T>) {
    if constexpr (kOp == BinaryOp::kAdd) return a + b;
    if constexpr (kOp == BinaryOp::kSub) return a - b;
    if constexpr (kOp == BinaryOp::kMul) return a * b;
    if constexpr (kOp == BinaryOp::kDiv) return a / b;
    if constexpr (kOp == BinaryOp::kPow) return powf(a, b);
    // Like torch.maximum/minimum, a NaN on either side wins; otherwise the
    // CPU's exact expressions, so signed zeros come out the same.
    if constexpr (kOp == BinaryOp::kMaximum) {
      return (isnan(a) || isnan(b)) ? QuietNan() : (a < b ? b : a);
    }
    if constexpr (kOp == BinaryOp::kMinimum) {
      return (isnan(a) || isnan(b)) ? QuietNan() : (b < a ? b : a);
    }
  } else {
    if constexpr (kOp == BinaryOp::kAdd) return WrappingAdd(a, b);
    if constexpr (kOp == BinaryOp::kSub) return WrappingSub(a, b);
    if constexpr (kOp == BinaryOp::kMul) return WrappingMul(a, b);
    if constexpr (kOp == BinaryOp::kDiv) {
      // The GPU does not trap on a zero divisor: flag it for the host.
      if (b == 0) {
        atomicOr(error_flags, kIntegerDivisionByZero);
        return 0;
      }
      // Truncates toward zero; min / -1 wraps to min instead of overflowing.
      return b == -1 ? WrappingSub(T{0}, a) : a / b;
    }
    if constexpr (kOp == BinaryOp::kMaximum) return a < b ? b : a;
    if constexpr (kOp == BinaryOp::kMinimum) return b < a ? b : a;
  }
  return T{};  // kPow on integers, which the wrapper rejects
}

template <BinaryOp kOp, typename T>
struct BinaryBody {
  const T* lhs;
  const T* rhs;
  T* out;
  unsigned* error_flags;
  __device__ void operator()(int64_t i, const int64_t (&offsets)[2]) const {
    out[i] = ApplyBinary<kOp>(lhs[offsets[0]], rhs[offsets[1]], error_flags);
  }
};

template <BinaryOp kOp, typename T>
bool LaunchBinaryOp(const T* lhs, const T* rhs, T* out, int rank, const int64_t* shape,
                    const int64_t* lhs_strides, const int64_t* rhs_strides,
                    unsigned* error_flags, cudaStream_t stream) {
  StridedIndex<2> index;
  if (!MakeStridedIndex<2>(rank, shape, {lhs_strides, rhs_strides}, &index)) return false;
  LaunchIndexedLoop(index, ElementCount(rank, shape),
                    BinaryBody<kOp, T>{lhs, rhs, out, error_flags}, stream);
  return true;
}

template <typename T>
bool DispatchBinary(BinaryOp op, const T* lhs, const T* rhs, T* out, int rank,
                    const int64_t* shape, const int64_t* lhs_strides,
                    const int64_t* rhs_strides, unsigned* error_flags, cudaStream_t stream) {
  switch (op) {
#define VEOMNI_BINARY_CASE(kOp)                                                             \
  case kOp:                                                                                 \
    return LaunchBinaryOp<kOp>(lhs, rhs, out, rank, shape, lhs_strides, rhs_strides,       \
                               error_flags, stream);
    VEOMNI_BINARY_CASE(BinaryOp::kAdd)
    VEOMNI_BINARY_CASE(BinaryOp::kSub)
    VEOMNI_BINARY_CASE(BinaryOp::kMul)
    VEOMNI_BINARY_CASE(BinaryOp::kDiv)
    VEOMNI_BINARY_CASE(BinaryOp::kMaximum)
    VEOMNI_BINARY_CASE(BinaryOp::kMinimum)
#undef VEOMNI_BINARY_CASE
    case BinaryOp::kPow:
      if constexpr (std::is_floating_point_v<T>) {
        return LaunchBinaryOp<BinaryOp::kPow>(lhs, rhs, out, rank, shape, lhs_strides,
                                              rhs_strides, error_flags, stream);
      }
      return true;  // integer pow is rejected by the wrapper; nothing to do
  }
  return true;
}

template <ComparePredicate kPredicate, typename T>
struct CompareBody {
  const T* lhs;
  const T* rhs;
  uint8_t* out;
  __device__ void operator()(int64_t i, const int64_t (&offsets)[2]) const {
    T a = lhs[offsets[0]];
    T b = rhs[offsets[1]];
    bool result = false;
    if constexpr (kPredicate == ComparePredicate::kEq) result = a == b;
    if constexpr (kPredicate == ComparePredicate::kNe) result = a != b;
    if constexpr (kPredicate == ComparePredicate::kLt) result = a < b;
    if constexpr (kPredicate == ComparePredicate::kLe) result = a <= b;
    if constexpr (kPredicate == ComparePredicate::kGt) result = a > b;
    if constexpr (kPredicate == ComparePredicate::kGe) result = a >= b;
    out[i] = result ? 1 : 0;
  }
};

template <typename T>
bool DispatchCompare(ComparePredicate predicate, const T* lhs, const T* rhs, uint8_t* out,
                     int rank, const int64_t* shape, const int64_t* lhs_strides,
                     const int64_t* rhs_strides, cudaStream_t stream) {
  StridedIndex<2> index;
  if (!MakeStridedIndex<2>(rank, shape, {lhs_strides, rhs_strides}, &index)) return false;
  int64_t count = ElementCount(rank, shape);
  switch (predicate) {
#define VEOMNI_COMPARE_CASE(kPredicate)                                                  \
  case kPredicate:                                                                       \
    LaunchIndexedLoop(index, count, CompareBody<kPredicate, T>{lhs, rhs, out}, stream); \
    break;
    VEOMNI_COMPARE_CASE(ComparePredicate::kEq)
    VEOMNI_COMPARE_CASE(ComparePredicate::kNe)
    VEOMNI_COMPARE_CASE(ComparePredicate::kLt)
    VEOMNI_COMPARE_CASE(ComparePredicate::kLe)
    VEOMNI_COMPARE_CASE(ComparePredicate::kGt)
    VEOMNI_COMPARE_CASE(ComparePredicate::kGe)
#undef VEOMNI_COMPARE_CASE
  }
  return true;
}

template <typename Word>
struct SelectBody {
  const uint8_t* cond;
  const Word* on_true;
  const Word* on_false;
  Word* out;
  __device__ void operator()(int64_t i, const int64_t (&offsets)[3]) const {
    out[i] = cond[offsets[0]] != 0 ? on_true[offsets[1]] : on_false[offsets[2]];
  }
};

template <typename Word>
void LaunchSelectWords(const StridedIndex<3>& index, int64_t count, const uint8_t* cond,
                       const void* on_true, const void* on_false, void* out,
                       cudaStream_t stream) {
  LaunchIndexedLoop(index, count,
                    SelectBody<Word>{cond, static_cast<const Word*>(on_true),
                                     static_cast<const Word*>(on_false),
                                     static_cast<Word*>(out)},
                    stream);
}

template <UnaryOp kOp>
__device__ float ApplyUnary(float x) {
  if constexpr (kOp == UnaryOp::kNeg) return -x;
  if constexpr (kOp == UnaryOp::kExp) return expf(x);
  if constexpr (kOp == UnaryOp::kLog) return logf(x);
  if constexpr (kOp == UnaryOp::kSqrt) return sqrtf(x);
  if constexpr (kOp == UnaryOp::kRsqrt) return rsqrtf(x);
  if constexpr (kOp == UnaryOp::kReciprocal) return 1.0f / x;
  if constexpr (kOp == UnaryOp::kTanh) return tanhf(x);
  if constexpr (kOp == UnaryOp::kErf) return erff(x);
  if constexpr (kOp == UnaryOp::kCos) return cosf(x);
  if constexpr (kOp == UnaryOp::kSin) return sinf(x);
  if constexpr (kOp == UnaryOp::kSigmoid) return 1.0f / (1.0f + expf(-x));
  if constexpr (kOp == UnaryOp::kSilu) return x / (1.0f + expf(-x));
  if constexpr (kOp == UnaryOp::kGelu) {
    // x * Phi(x) through erfc, which keeps the far negative tail accurate in
    // f32 where 1 + erf(x / sqrt 2) would cancel.
    const float kInvSqrt2 = 0.70710678118654752f;
    return 0.5f * x * erfcf(-x * kInvSqrt2);
  }
  if constexpr (kOp == UnaryOp::kGeluTanh) {
    // 0.5 * (1 + tanh(u)) == sigmoid(2u), again without cancellation.
    const float kSqrt2OverPi = 0.79788456080286536f;
    float u = kSqrt2OverPi * (x + 0.044715f * x * x * x);
    return x / (1.0f + expf(-2.0f * u));
  }
  return x;
}

template <UnaryOp kOp>
struct UnaryBody {
  const float* x;
  float* y;
  __device__ void operator()(int64_t i, const int64_t (&)[1]) const { y[i] = ApplyUnary<kOp>(x[i]); }
};

template <typename T>
struct NegateBody {
  const T* x;
  T* y;
  __device__ void operator()(int64_t i, const int64_t (&)[1]) const {
    y[i] = WrappingSub(T{0}, x[i]);
  }
};

struct IsNanBody {
  const float* x;
  uint8_t* y;
  __device__ void operator()(int64_t i, const int64_t (&)[1]) const { y[i] = isnan(x[i]) ? 1 : 0; }
};

// Device copies of runtime/base/FloatBits.h, same arithmetic step by step;
// __fadd_rn/__fmul_rn pin the rounding and forbid contraction into FMAs.
__device__ uint16_t FloatToBFloat16Bits(float value) {
  uint32_t bits = __float_as_uint(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    // Rounding could carry a NaN's payload into infinity; force a quiet NaN.
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  uint32_t round_to_nearest_even = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + round_to_nearest_even) >> 16);
}

__device__ float BFloat16BitsToFloat(uint16_t bits) {
  return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}

__device__ uint16_t FloatToHalfBits(float value) {
  uint32_t bits = __float_as_uint(value);
  uint32_t sign = (bits >> 16) & 0x8000u;
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (magnitude >= 0x38800000u) {
    uint32_t odd = (magnitude >> 13) & 1u;
    magnitude += 0xc8000fffu + odd;
    return static_cast<uint16_t>(sign | (magnitude >> 13));
  }
  // Needs subnormal f32 inputs kept, i.e. no -ftz (nvcc's default).
  float rounded = __fadd_rn(__uint_as_float(magnitude), 0.5f);
  return static_cast<uint16_t>(sign | (__float_as_uint(rounded) - 0x3f000000u));
}

__device__ float HalfBitsToFloat(uint16_t bits) {
  uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {
    float magnitude = __fmul_rn(static_cast<float>(mantissa), 5.9604644775390625e-8f);  // 2^-24
    return __uint_as_float(sign | __float_as_uint(magnitude));
  }
  if (exponent == 31) return __uint_as_float(sign | 0x7f800000u | (mantissa << 13));
  return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// One element in the widest form of its kind, as the CPU cast holds it:
// integers (and i1) as int64, floats as f32.
struct CastElement {
  bool is_integer;
  int64_t integer;
  float real;
};

template <CastType kType>
__device__ CastElement LoadCastElement(const void* data, int64_t i) {
  if constexpr (kType == CastType::kF32) {
    return {false, 0, static_cast<const float*>(data)[i]};
  } else if constexpr (kType == CastType::kBF16) {
    return {false, 0, BFloat16BitsToFloat(static_cast<const uint16_t*>(data)[i])};
  } else if constexpr (kType == CastType::kF16) {
    return {false, 0, HalfBitsToFloat(static_cast<const uint16_t*>(data)[i])};
  } else if constexpr (kType == CastType::kI64) {
    return {true, static_cast<const int64_t*>(data)[i], 0.0f};
  } else if constexpr (kType == CastType::kI32) {
    return {true, static_cast<const int32_t*>(data)[i], 0.0f};
  } else {
    return {true, static_cast<const uint8_t*>(data)[i] != 0 ? 1 : 0, 0.0f};
  }
}

// Truncates toward zero and saturates; NaN -> 0 (the CPU's rule, in the
// same double arithmetic).
template <typename Int>
__device__ Int SaturatingTruncate(float value) {
  if (isnan(value)) return 0;
  // Both limits are powers of two, so these doubles are exact.
  const double lower = static_cast<double>(std::numeric_limits<Int>::min());
  const double upper = -lower;
  double wide = static_cast<double>(value);
  if (wide >= upper) return std::numeric_limits<Int>::max();
  if (wide <= lower) return std::numeric_limits<Int>::min();
  return static_cast<Int>(wide);
}

__device__ float CastAsFloat(const CastElement& element) {
  return element.is_integer ? static_cast<float>(element.integer) : element.real;
}

template <CastType kType>
__device__ void StoreCastElement(const CastElement& element, void* data, int64_t i) {
  if constexpr (kType == CastType::kF32) {
    static_cast<float*>(data)[i] = CastAsFloat(element);
  } else if constexpr (kType == CastType::kBF16) {
    static_cast<uint16_t*>(data)[i] = FloatToBFloat16Bits(CastAsFloat(element));
  } else if constexpr (kType == CastType::kF16) {
    static_cast<uint16_t*>(data)[i] = FloatToHalfBits(CastAsFloat(element));
  } else if constexpr (kType == CastType::kI64) {
    static_cast<int64_t*>(data)[i] =
        element.is_integer ? element.integer : SaturatingTruncate<int64_t>(element.real);
  } else if constexpr (kType == CastType::kI32) {
    static_cast<int32_t*>(data)[i] =
        element.is_integer ? static_cast<int32_t>(static_cast<uint32_t>(element.integer))
                           : SaturatingTruncate<int32_t>(element.real);
  } else {
    static_cast<uint8_t*>(data)[i] =
        (element.is_integer ? element.integer != 0 : element.real != 0.0f) ? 1 : 0;
  }
}

template <CastType kFrom, CastType kTo>
struct CastBody {
  const void* x;
  void* y;
  __device__ void operator()(int64_t i, const int64_t (&)[1]) const {
    StoreCastElement<kTo>(LoadCastElement<kFrom>(x, i), y, i);
  }
};

template <CastType kFrom>
void LaunchCastFrom(const void* x, CastType to, void* y, int64_t count, cudaStream_t stream) {
  switch (to) {
    case CastType::kF32:
      return LaunchContiguousLoop<1>(count, CastBody<kFrom, CastType::kF32>{x, y}, stream);
    case CastType::kBF16:
      return LaunchContiguousLoop<1>(count, CastBody<kFrom, CastType::kBF16>{x, y}, stream);
    case CastType::kF16:
      return LaunchContiguousLoop<1>(count, CastBody<kFrom, CastType::kF16>{x, y}, stream);
    case CastType::kI64:
      return LaunchContiguousLoop<1>(count, CastBody<kFrom, CastType::kI64>{x, y}, stream);
    case CastType::kI32:
      return LaunchContiguousLoop<1>(count, CastBody<kFrom, CastType::kI32>{x, y}, stream);
    case CastType::kI1:
      return LaunchContiguousLoop<1>(count, CastBody<kFrom, CastType::kI1>{x, y}, stream);
  }
}

// dst [rows, cols] = bf16(src[r * ld + c]): a block of an f32 matrix rounded
// into a dense copy. Blocks stride over rows, threads over a row; kVector
// moves 4 elements a thread (cols and ld multiples of 4, src 16-byte aligned).
template <bool kVector>
__global__ void CastBlockToBf16Kernel(const float* src, int64_t rows, int64_t cols, int64_t ld,
                                      uint16_t* dst) {
  const int64_t units = kVector ? cols / 4 : cols;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const float* in = src + r * ld;
    uint16_t* out = dst + r * cols;
    for (int64_t u = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; u < units;
         u += stride) {
      if constexpr (kVector) {
        const float4 v = reinterpret_cast<const float4*>(in)[u];
        uint2 packed;
        packed.x = FloatToBFloat16Bits(v.x) | static_cast<uint32_t>(FloatToBFloat16Bits(v.y)) << 16;
        packed.y = FloatToBFloat16Bits(v.z) | static_cast<uint32_t>(FloatToBFloat16Bits(v.w)) << 16;
        reinterpret_cast<uint2*>(out)[u] = packed;
      } else {
        out[u] = FloatToBFloat16Bits(in[u]);
      }
    }
  }
}

}  // namespace

bool LaunchBinary(BinaryOp op, const float* lhs, const float* rhs, float* out, int rank,
                  const int64_t* shape, const int64_t* lhs_strides, const int64_t* rhs_strides,
                  unsigned* error_flags, cudaStream_t stream) {
  return DispatchBinary(op, lhs, rhs, out, rank, shape, lhs_strides, rhs_strides, error_flags,
                        stream);
}
bool LaunchBinary(BinaryOp op, const int64_t* lhs, const int64_t* rhs, int64_t* out, int rank,
                  const int64_t* shape, const int64_t* lhs_strides, const int64_t* rhs_strides,
                  unsigned* error_flags, cudaStream_t stream) {
  return DispatchBinary(op, lhs, rhs, out, rank, shape, lhs_strides, rhs_strides, error_flags,
                        stream);
}
bool LaunchBinary(BinaryOp op, const int32_t* lhs, const int32_t* rhs, int32_t* out, int rank,
                  const int64_t* shape, const int64_t* lhs_strides, const int64_t* rhs_strides,
                  unsigned* error_flags, cudaStream_t stream) {
  return DispatchBinary(op, lhs, rhs, out, rank, shape, lhs_strides, rhs_strides, error_flags,
                        stream);
}

bool LaunchCompare(ComparePredicate predicate, const float* lhs, const float* rhs, uint8_t* out,
                   int rank, const int64_t* shape, const int64_t* lhs_strides,
                   const int64_t* rhs_strides, cudaStream_t stream) {
  return DispatchCompare(predicate, lhs, rhs, out, rank, shape, lhs_strides, rhs_strides,
                         stream);
}
bool LaunchCompare(ComparePredicate predicate, const int64_t* lhs, const int64_t* rhs,
                   uint8_t* out, int rank, const int64_t* shape, const int64_t* lhs_strides,
                   const int64_t* rhs_strides, cudaStream_t stream) {
  return DispatchCompare(predicate, lhs, rhs, out, rank, shape, lhs_strides, rhs_strides,
                         stream);
}
bool LaunchCompare(ComparePredicate predicate, const int32_t* lhs, const int32_t* rhs,
                   uint8_t* out, int rank, const int64_t* shape, const int64_t* lhs_strides,
                   const int64_t* rhs_strides, cudaStream_t stream) {
  return DispatchCompare(predicate, lhs, rhs, out, rank, shape, lhs_strides, rhs_strides,
                         stream);
}

bool LaunchSelect(int element_bytes, const uint8_t* cond, const void* on_true,
                  const void* on_false, void* out, int rank, const int64_t* shape,
                  const int64_t* cond_strides, const int64_t* true_strides,
                  const int64_t* false_strides, cudaStream_t stream) {
  StridedIndex<3> index;
  if (!MakeStridedIndex<3>(rank, shape, {cond_strides, true_strides, false_strides}, &index)) {
    return false;
  }
  int64_t count = ElementCount(rank, shape);
  switch (element_bytes) {
    case 1:
      LaunchSelectWords<uint8_t>(index, count, cond, on_true, on_false, out, stream);
      break;
    case 2:
      LaunchSelectWords<uint16_t>(index, count, cond, on_true, on_false, out, stream);
      break;
    case 4:
      LaunchSelectWords<uint32_t>(index, count, cond, on_true, on_false, out, stream);
      break;
    case 8:
      LaunchSelectWords<uint64_t>(index, count, cond, on_true, on_false, out, stream);
      break;
  }
  return true;
}

void LaunchUnary(UnaryOp op, const float* x, float* y, int64_t count, cudaStream_t stream) {
  switch (op) {
#define VEOMNI_UNARY_CASE(kOp)                                          \
  case kOp:                                                             \
    return LaunchContiguousLoop<1>(count, UnaryBody<kOp>{x, y}, stream);
    VEOMNI_UNARY_CASE(UnaryOp::kNeg)
    VEOMNI_UNARY_CASE(UnaryOp::kExp)
    VEOMNI_UNARY_CASE(UnaryOp::kLog)
    VEOMNI_UNARY_CASE(UnaryOp::kSqrt)
    VEOMNI_UNARY_CASE(UnaryOp::kRsqrt)
    VEOMNI_UNARY_CASE(UnaryOp::kReciprocal)
    VEOMNI_UNARY_CASE(UnaryOp::kTanh)
    VEOMNI_UNARY_CASE(UnaryOp::kErf)
    VEOMNI_UNARY_CASE(UnaryOp::kCos)
    VEOMNI_UNARY_CASE(UnaryOp::kSin)
    VEOMNI_UNARY_CASE(UnaryOp::kSigmoid)
    VEOMNI_UNARY_CASE(UnaryOp::kSilu)
    VEOMNI_UNARY_CASE(UnaryOp::kGelu)
    VEOMNI_UNARY_CASE(UnaryOp::kGeluTanh)
#undef VEOMNI_UNARY_CASE
  }
}

void LaunchNegate(const int64_t* x, int64_t* y, int64_t count, cudaStream_t stream) {
  LaunchContiguousLoop<1>(count, NegateBody<int64_t>{x, y}, stream);
}
void LaunchNegate(const int32_t* x, int32_t* y, int64_t count, cudaStream_t stream) {
  LaunchContiguousLoop<1>(count, NegateBody<int32_t>{x, y}, stream);
}

void LaunchIsNan(const float* x, uint8_t* y, int64_t count, cudaStream_t stream) {
  LaunchContiguousLoop<1>(count, IsNanBody{x, y}, stream);
}

void LaunchCastBlockToBf16(const float* src, int64_t rows, int64_t cols, int64_t ld, void* dst,
                           cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  // A block without gaps is one long row: spread over the x blocks.
  if (cols == ld && rows > 1) {
    cols *= rows;
    ld = cols;
    rows = 1;
  }
  const bool vector = cols % 4 == 0 && ld % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0 &&
                      reinterpret_cast<uintptr_t>(dst) % 8 == 0;
  const int64_t units = vector ? cols / 4 : cols;
  const unsigned x_blocks = GridBlocks(units, kElementwiseThreads);
  const int64_t y_most = kMaxGridBlocks / x_blocks > 0 ? kMaxGridBlocks / x_blocks : 1;
  const dim3 grid(x_blocks, static_cast<unsigned>(rows < y_most ? rows : y_most));
  uint16_t* out = static_cast<uint16_t*>(dst);
  if (vector) {
    CastBlockToBf16Kernel<true><<<grid, kElementwiseThreads, 0, stream>>>(src, rows, cols, ld, out);
  } else {
    CastBlockToBf16Kernel<false><<<grid, kElementwiseThreads, 0, stream>>>(src, rows, cols, ld, out);
  }
}

void LaunchCast(CastType from, const void* x, CastType to, void* y, int64_t count,
                cudaStream_t stream) {
  switch (from) {
    case CastType::kF32: return LaunchCastFrom<CastType::kF32>(x, to, y, count, stream);
    case CastType::kBF16: return LaunchCastFrom<CastType::kBF16>(x, to, y, count, stream);
    case CastType::kF16: return LaunchCastFrom<CastType::kF16>(x, to, y, count, stream);
    case CastType::kI64: return LaunchCastFrom<CastType::kI64>(x, to, y, count, stream);
    case CastType::kI32: return LaunchCastFrom<CastType::kI32>(x, to, y, count, stream);
    case CastType::kI1: return LaunchCastFrom<CastType::kI1>(x, to, y, count, stream);
  }
}

}  // namespace veomni::runtime::cuda
