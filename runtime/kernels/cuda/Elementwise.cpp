// Elementwise kernels on CUDA: the CPU kernels' operand checks (so errors
// read the same), then one launch from ElementwiseLaunch.cu. Float math runs
// in f32 on the GPU where the CPU rounds a double result once, so results
// agree to a few ulps. An integer division by zero is flagged on the device
// and reported at the next synchronization instead of before the launch.

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/base/Status.h"
#include "runtime/kernels/cpu/KernelSupport.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/CudaSupport.h"
#include "runtime/kernels/cuda/ElementwiseLaunch.h"

namespace veomni::runtime::cuda {
namespace {

using cpu::BroadcastShapes;
using cpu::BroadcastStrides;
using cpu::CheckArity;
using cpu::CheckDType;
using cpu::CheckShape;
using cpu::CheckSupportedDType;
using cpu::UnimplementedDType;

// The launches index at most 8 dims once contiguous ones are merged.
absl::Status TooManyDims(absl::string_view kernel, absl::Span<const int64_t> shape) {
  return absl::UnimplementedError(absl::StrCat(
      kernel, ": broadcasting to ", FormatShape(shape), " needs more than 8 strided dims"));
}

// The element strides of each input over the broadcast output shape.
struct Broadcast {
  const std::vector<int64_t>& shape;
  std::vector<std::vector<int64_t>> strides;

  Broadcast(const TensorView& out, std::initializer_list<const TensorView*> inputs)
      : shape(out.shape) {
    for (const TensorView* input : inputs) {
      strides.push_back(BroadcastStrides(input->shape, out.shape));
    }
  }
  int rank() const { return static_cast<int>(shape.size()); }
};

// Arity, equal input dtypes, output dtype and the broadcast output shape, as
// the CPU checks them.
absl::Status CheckBinaryOperands(absl::string_view kernel, absl::Span<const TensorView> inputs,
                                 absl::Span<const TensorView> outputs, DType output_dtype) {
  VEOMNI_RETURN_IF_ERROR(CheckArity(kernel, inputs, 2, 2, outputs, 1));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "rhs", inputs[1], inputs[0].dtype));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "output", outputs[0], output_dtype));
  VEOMNI_ASSIGN_OR_RETURN(std::vector<int64_t> shape,
                          BroadcastShapes(kernel, {inputs[0].shape, inputs[1].shape}));
  return CheckShape(kernel, "output", outputs[0], shape);
}

template <typename T>
bool LaunchBinaryOf(BinaryOp op, const TensorView& lhs, const TensorView& rhs,
                    const TensorView& out, const CudaContext& ctx) {
  Broadcast broadcast(out, {&lhs, &rhs});
  return LaunchBinary(op, lhs.As<const T>(), rhs.As<const T>(), out.As<T>(), broadcast.rank(),
                      broadcast.shape.data(), broadcast.strides[0].data(),
                      broadcast.strides[1].data(), ctx.error_flags, ctx.stream);
}

absl::Status RunBinary(absl::string_view kernel, BinaryOp op,
                       absl::Span<const TensorView> inputs,
                       absl::Span<const TensorView> outputs) {
  VEOMNI_RETURN_IF_ERROR(CheckBinaryOperands(kernel, inputs, outputs, inputs[0].dtype));
  const TensorView& lhs = inputs[0];
  const TensorView& rhs = inputs[1];
  const TensorView& out = outputs[0];
  bool integer = lhs.dtype == DType::kI64 || lhs.dtype == DType::kI32;
  if ((lhs.dtype != DType::kF32 && !integer) || (integer && op == BinaryOp::kPow)) {
    return UnimplementedDType(kernel, lhs.dtype);
  }
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kernel));
  bool launched = false;
  switch (lhs.dtype) {
    case DType::kF32: launched = LaunchBinaryOf<float>(op, lhs, rhs, out, *ctx); break;
    case DType::kI64: launched = LaunchBinaryOf<int64_t>(op, lhs, rhs, out, *ctx); break;
    default: launched = LaunchBinaryOf<int32_t>(op, lhs, rhs, out, *ctx); break;
  }
  if (!launched) return TooManyDims(kernel, out.shape);
  return LaunchStatus(kernel);
}

template <typename T>
bool LaunchCompareOf(ComparePredicate predicate, const TensorView& lhs, const TensorView& rhs,
                     const TensorView& out, const CudaContext& ctx) {
  Broadcast broadcast(out, {&lhs, &rhs});
  return LaunchCompare(predicate, lhs.As<const T>(), rhs.As<const T>(), out.As<uint8_t>(),
                       broadcast.rank(), broadcast.shape.data(), broadcast.strides[0].data(),
                       broadcast.strides[1].data(), ctx.stream);
}

// Checks a unary kernel of matching shapes whose output has `output_dtype`.
absl::Status CheckUnaryOperands(absl::string_view kernel, absl::Span<const TensorView> inputs,
                                absl::Span<const TensorView> outputs, DType output_dtype) {
  VEOMNI_RETURN_IF_ERROR(CheckArity(kernel, inputs, 1, 1, outputs, 1));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "output", outputs[0], output_dtype));
  return CheckShape(kernel, "output", outputs[0], inputs[0].shape);
}

absl::Status RunFloatUnary(absl::string_view kernel, UnaryOp op,
                           absl::Span<const TensorView> inputs,
                           absl::Span<const TensorView> outputs) {
  if (!inputs.empty() && inputs[0].dtype != DType::kF32) {
    return UnimplementedDType(kernel, inputs[0].dtype);
  }
  VEOMNI_RETURN_IF_ERROR(CheckUnaryOperands(kernel, inputs, outputs, DType::kF32));
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kernel));
  LaunchUnary(op, inputs[0].As<const float>(), outputs[0].As<float>(), inputs[0].NumElements(),
              ctx->stream);
  return LaunchStatus(kernel);
}

}  // namespace

absl::Status Add(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunBinary("add", BinaryOp::kAdd, inputs, outputs);
}

absl::Status Sub(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunBinary("sub", BinaryOp::kSub, inputs, outputs);
}

absl::Status Mul(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunBinary("mul", BinaryOp::kMul, inputs, outputs);
}

absl::Status Div(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunBinary("div", BinaryOp::kDiv, inputs, outputs);
}

absl::Status Pow(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunBinary("pow", BinaryOp::kPow, inputs, outputs);
}

absl::Status Maximum(const KernelAttrs&, absl::Span<const TensorView> inputs,
                     absl::Span<const TensorView> outputs) {
  return RunBinary("maximum", BinaryOp::kMaximum, inputs, outputs);
}

absl::Status Minimum(const KernelAttrs&, absl::Span<const TensorView> inputs,
                     absl::Span<const TensorView> outputs) {
  return RunBinary("minimum", BinaryOp::kMinimum, inputs, outputs);
}

absl::Status Compare(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                     absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "cmp";
  VEOMNI_RETURN_IF_ERROR(CheckBinaryOperands(kKernel, inputs, outputs, DType::kI1));
  VEOMNI_ASSIGN_OR_RETURN(int64_t predicate_value, cpu::RequiredInt(kKernel, attrs, "predicate"));
  if (predicate_value < 0 || predicate_value > 5) {
    return absl::InvalidArgumentError(absl::StrCat(
        kKernel, ": predicate ", predicate_value, " is not one of 0 (eq) to 5 (ge)"));
  }
  const TensorView& lhs = inputs[0];
  if (lhs.dtype != DType::kF32 && lhs.dtype != DType::kI64 && lhs.dtype != DType::kI32) {
    return UnimplementedDType(kKernel, lhs.dtype);
  }
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kKernel));
  auto predicate = static_cast<ComparePredicate>(predicate_value);
  bool launched = false;
  switch (lhs.dtype) {
    case DType::kF32:
      launched = LaunchCompareOf<float>(predicate, lhs, inputs[1], outputs[0], *ctx);
      break;
    case DType::kI64:
      launched = LaunchCompareOf<int64_t>(predicate, lhs, inputs[1], outputs[0], *ctx);
      break;
    default:
      launched = LaunchCompareOf<int32_t>(predicate, lhs, inputs[1], outputs[0], *ctx);
      break;
  }
  if (!launched) return TooManyDims(kKernel, outputs[0].shape);
  return LaunchStatus(kKernel);
}

absl::Status Select(const KernelAttrs&, absl::Span<const TensorView> inputs,
                    absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "select";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 3, 3, outputs, 1));
  const TensorView& cond = inputs[0];
  const TensorView& on_true = inputs[1];
  const TensorView& on_false = inputs[2];
  const TensorView& out = outputs[0];
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "cond", cond, DType::kI1));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "on_false", on_false, on_true.dtype));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", out, on_true.dtype));
  VEOMNI_ASSIGN_OR_RETURN(
      std::vector<int64_t> shape,
      BroadcastShapes(kKernel, {cond.shape, on_true.shape, on_false.shape}));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", out, shape));
  int64_t element_bytes = DTypeBytes(out.dtype);
  if (element_bytes != 1 && element_bytes != 2 && element_bytes != 4 && element_bytes != 8) {
    return UnimplementedDType(kKernel, out.dtype);
  }
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kKernel));
  Broadcast broadcast(out, {&cond, &on_true, &on_false});
  if (!LaunchSelect(static_cast<int>(element_bytes), cond.As<const uint8_t>(), on_true.data,
                    on_false.data, out.data, broadcast.rank(), broadcast.shape.data(),
                    broadcast.strides[0].data(), broadcast.strides[1].data(),
                    broadcast.strides[2].data(), ctx->stream)) {
    return TooManyDims(kKernel, out.shape);
  }
  return LaunchStatus(kKernel);
}

absl::Status Neg(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "neg";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 1, 1, outputs, 1));
  VEOMNI_RETURN_IF_ERROR(CheckUnaryOperands(kKernel, inputs, outputs, inputs[0].dtype));
  const TensorView& in = inputs[0];
  if (in.dtype != DType::kF32 && in.dtype != DType::kI64 && in.dtype != DType::kI32) {
    return UnimplementedDType(kKernel, in.dtype);
  }
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kKernel));
  switch (in.dtype) {
    case DType::kF32:
      LaunchUnary(UnaryOp::kNeg, in.As<const float>(), outputs[0].As<float>(), in.NumElements(),
                  ctx->stream);
      break;
    case DType::kI64:
      LaunchNegate(in.As<const int64_t>(), outputs[0].As<int64_t>(), in.NumElements(),
                   ctx->stream);
      break;
    default:
      LaunchNegate(in.As<const int32_t>(), outputs[0].As<int32_t>(), in.NumElements(),
                   ctx->stream);
      break;
  }
  return LaunchStatus(kKernel);
}

absl::Status Exp(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunFloatUnary("exp", UnaryOp::kExp, inputs, outputs);
}

absl::Status Log(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunFloatUnary("log", UnaryOp::kLog, inputs, outputs);
}

absl::Status Sqrt(const KernelAttrs&, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  return RunFloatUnary("sqrt", UnaryOp::kSqrt, inputs, outputs);
}

absl::Status Rsqrt(const KernelAttrs&, absl::Span<const TensorView> inputs,
                   absl::Span<const TensorView> outputs) {
  return RunFloatUnary("rsqrt", UnaryOp::kRsqrt, inputs, outputs);
}

absl::Status Reciprocal(const KernelAttrs&, absl::Span<const TensorView> inputs,
                        absl::Span<const TensorView> outputs) {
  return RunFloatUnary("reciprocal", UnaryOp::kReciprocal, inputs, outputs);
}

absl::Status Tanh(const KernelAttrs&, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  return RunFloatUnary("tanh", UnaryOp::kTanh, inputs, outputs);
}

absl::Status Erf(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunFloatUnary("erf", UnaryOp::kErf, inputs, outputs);
}

absl::Status Cos(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunFloatUnary("cos", UnaryOp::kCos, inputs, outputs);
}

absl::Status Sin(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunFloatUnary("sin", UnaryOp::kSin, inputs, outputs);
}

absl::Status Sigmoid(const KernelAttrs&, absl::Span<const TensorView> inputs,
                     absl::Span<const TensorView> outputs) {
  return RunFloatUnary("sigmoid", UnaryOp::kSigmoid, inputs, outputs);
}

absl::Status Silu(const KernelAttrs&, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  return RunFloatUnary("silu", UnaryOp::kSilu, inputs, outputs);
}

// gelu {approximate: 0 = x * Phi(x) with erf, 1 = PyTorch's tanh form}.
absl::Status Gelu(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "gelu";
  VEOMNI_ASSIGN_OR_RETURN(bool tanh_form,
                          cpu::OptionalFlag(kKernel, attrs, "approximate", false));
  return RunFloatUnary(kKernel, tanh_form ? UnaryOp::kGeluTanh : UnaryOp::kGelu, inputs,
                       outputs);
}

absl::Status IsNan(const KernelAttrs&, absl::Span<const TensorView> inputs,
                   absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "is_nan";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 1, 1, outputs, 1));
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kKernel, inputs[0].dtype, {DType::kF32}));
  VEOMNI_RETURN_IF_ERROR(CheckUnaryOperands(kKernel, inputs, outputs, DType::kI1));
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kKernel));
  LaunchIsNan(inputs[0].As<const float>(), outputs[0].As<uint8_t>(), inputs[0].NumElements(),
              ctx->stream);
  return LaunchStatus(kKernel);
}

}  // namespace veomni::runtime::cuda
