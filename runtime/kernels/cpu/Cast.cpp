// cast: converts between f32, bf16, f16, i64, i32 and i1; the output's dtype
// is the target. Float -> float rounds to nearest even in one step from f32;
// float -> int truncates toward zero and saturates (NaN -> 0) instead of
// invoking C++'s undefined behaviour; int -> narrower int wraps; anything ->
// i1 is "!= 0" (so NaN -> 1, as in PyTorch).

#include <cmath>
#include <limits>

#include "runtime/base/FloatBits.h"
#include "runtime/kernels/cpu/CpuKernels.h"
#include "runtime/kernels/cpu/KernelSupport.h"

namespace veomni::runtime::cpu {
namespace {

// One element in the widest form of its kind: integers (and i1) as int64,
// floats as f32, which every float dtype here converts to exactly.
struct Element {
  bool is_integer;
  int64_t integer;
  float real;
};

Element LoadElement(const TensorView& tensor, int64_t index) {
  switch (tensor.dtype) {
    case DType::kF32: return {false, 0, tensor.As<float>()[index]};
    case DType::kBF16: return {false, 0, BFloat16BitsToFloat(tensor.As<uint16_t>()[index])};
    case DType::kF16: return {false, 0, HalfBitsToFloat(tensor.As<uint16_t>()[index])};
    case DType::kI64: return {true, tensor.As<int64_t>()[index], 0.0f};
    case DType::kI32: return {true, tensor.As<int32_t>()[index], 0.0f};
    case DType::kI1: return {true, tensor.As<uint8_t>()[index] != 0 ? 1 : 0, 0.0f};
  }
  return {true, 0, 0.0f};
}

template <typename Int>
Int SaturatingTruncate(float value) {
  if (std::isnan(value)) return 0;
  // Both limits are powers of two, so these doubles are exact.
  const double upper = -static_cast<double>(std::numeric_limits<Int>::min());
  const double lower = static_cast<double>(std::numeric_limits<Int>::min());
  double wide = static_cast<double>(value);
  if (wide >= upper) return std::numeric_limits<Int>::max();
  if (wide <= lower) return std::numeric_limits<Int>::min();
  return static_cast<Int>(wide);
}

float AsFloat(const Element& element) {
  return element.is_integer ? static_cast<float>(element.integer) : element.real;
}

void StoreElement(const Element& element, const TensorView& tensor, int64_t index) {
  switch (tensor.dtype) {
    case DType::kF32:
      tensor.As<float>()[index] = AsFloat(element);
      return;
    case DType::kBF16:
      tensor.As<uint16_t>()[index] = FloatToBFloat16Bits(AsFloat(element));
      return;
    case DType::kF16:
      tensor.As<uint16_t>()[index] = FloatToHalfBits(AsFloat(element));
      return;
    case DType::kI64:
      tensor.As<int64_t>()[index] =
          element.is_integer ? element.integer : SaturatingTruncate<int64_t>(element.real);
      return;
    case DType::kI32:
      tensor.As<int32_t>()[index] =
          element.is_integer
              ? static_cast<int32_t>(static_cast<uint32_t>(element.integer))
              : SaturatingTruncate<int32_t>(element.real);
      return;
    case DType::kI1:
      tensor.As<uint8_t>()[index] =
          (element.is_integer ? element.integer != 0 : element.real != 0.0f) ? 1 : 0;
      return;
  }
}

bool IsKnownDType(DType dtype) { return DTypeBytes(dtype) != 0; }

}  // namespace

absl::Status Cast(const KernelAttrs&, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "cast";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 1, 1, outputs, 1));
  const TensorView& in = inputs[0];
  const TensorView& out = outputs[0];
  if (!IsKnownDType(in.dtype)) return UnimplementedDType(kKernel, in.dtype);
  if (!IsKnownDType(out.dtype)) return UnimplementedDType(kKernel, out.dtype);
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", out, in.shape));
  int64_t count = in.NumElements();
  for (int64_t i = 0; i < count; ++i) StoreElement(LoadElement(in, i), out, i);
  return absl::OkStatus();
}

}  // namespace veomni::runtime::cpu
