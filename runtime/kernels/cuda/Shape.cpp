// Data movement on CUDA with the CPU kernels' checks: reshape and copy are
// device-to-device copies; transpose, slice, broadcast_to and concat are
// strided element copies (ShapeLaunch.cu); fill writes one word.

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/base/FloatBits.h"
#include "runtime/base/Status.h"
#include "runtime/kernels/cpu/KernelSupport.h"
#include "runtime/kernels/cpu/ShapeCommon.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/CudaSupport.h"
#include "runtime/kernels/cuda/ShapeLaunch.h"

namespace veomni::runtime::cuda {
namespace {

using cpu::CheckArity;
using cpu::CheckDType;
using cpu::CheckShape;
using cpu::ContiguousStrides;
using cpu::RequiredInts;
using cpu::UnimplementedDType;

absl::Status CheckOneToOne(absl::string_view kernel, absl::Span<const TensorView> inputs,
                           absl::Span<const TensorView> outputs) {
  VEOMNI_RETURN_IF_ERROR(CheckArity(kernel, inputs, 1, 1, outputs, 1));
  return CheckDType(kernel, "output", outputs[0], inputs[0].dtype);
}

// out[index] = in[base + index . in_strides] over every index of the output.
absl::Status GatherStrided(absl::string_view kernel, const TensorView& in, int64_t base,
                           const std::vector<int64_t>& in_strides, const TensorView& out) {
  int64_t element_bytes = DTypeBytes(in.dtype);
  if (element_bytes != 1 && element_bytes != 2 && element_bytes != 4 && element_bytes != 8) {
    return UnimplementedDType(kernel, in.dtype);
  }
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kernel));
  std::vector<int64_t> out_strides = ContiguousStrides(out.shape);
  const char* source = static_cast<const char*>(in.data) + base * element_bytes;
  if (!LaunchStridedCopy(static_cast<int>(element_bytes), source, out.data,
                         static_cast<int>(out.shape.size()), out.shape.data(),
                         in_strides.data(), out_strides.data(), ctx->stream)) {
    return absl::UnimplementedError(absl::StrCat(
        kernel, ": ", FormatShape(out.shape), " needs more than 8 strided dims on CUDA"));
  }
  return LaunchStatus(kernel);
}

// The bytes of `in` into `out`; nothing when they are one buffer (an
// executor that reshapes in place passes it twice).
absl::Status CopyBytes(absl::string_view kernel, const TensorView& in, const TensorView& out) {
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kernel));
  if (in.Bytes() == 0 || in.data == out.data) return absl::OkStatus();
  return CudaStatus(cudaMemcpyAsync(out.data, in.data, static_cast<size_t>(in.Bytes()),
                                    cudaMemcpyDeviceToDevice, ctx->stream),
                    absl::StrCat(kernel, ": copy"));
}

}  // namespace

absl::Status Reshape(const KernelAttrs&, absl::Span<const TensorView> inputs,
                     absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "reshape";
  VEOMNI_RETURN_IF_ERROR(cpu::CheckReshape(inputs, outputs));
  return CopyBytes(kKernel, inputs[0], outputs[0]);
}

absl::Status Transpose(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                       absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "transpose";
  VEOMNI_ASSIGN_OR_RETURN(cpu::StridedRead read, cpu::PlanTranspose(attrs, inputs, outputs));
  return GatherStrided(kKernel, inputs[0], read.base, read.strides, outputs[0]);
}

absl::Status Slice(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                   absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "slice";
  VEOMNI_ASSIGN_OR_RETURN(cpu::StridedRead read, cpu::PlanSlice(attrs, inputs, outputs));
  return GatherStrided(kKernel, inputs[0], read.base, read.strides, outputs[0]);
}

absl::Status Concat(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                    absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "concat";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 1, cpu::kAnyNumberOfInputs, outputs, 1));
  const TensorView& first = inputs[0];
  const TensorView& out = outputs[0];
  size_t rank = first.shape.size();
  VEOMNI_ASSIGN_OR_RETURN(int64_t raw_axis, cpu::RequiredInt(kKernel, attrs, "axis"));
  VEOMNI_ASSIGN_OR_RETURN(int64_t axis, cpu::NormalizeAxis(kKernel, raw_axis, rank));
  std::vector<int64_t> expected = first.shape;
  expected[axis] = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorView& in = inputs[i];
    std::string role = absl::StrCat("input ", i);
    VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, role, in, first.dtype));
    bool compatible = in.shape.size() == rank;
    for (size_t d = 0; compatible && d < rank; ++d) {
      compatible = static_cast<int64_t>(d) == axis || in.shape[d] == first.shape[d];
    }
    if (!compatible) {
      return absl::InvalidArgumentError(absl::StrCat(
          kKernel, ": ", role, " has shape ", FormatShape(in.shape), ", which differs from ",
          FormatShape(first.shape), " outside axis ", axis));
    }
    expected[axis] += in.shape[axis];
  }
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", out, first.dtype));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", out, expected));
  int64_t element_bytes = DTypeBytes(first.dtype);
  // A dtype outside the enum has no bytes to move, as on the CPU.
  if (element_bytes == 0) return absl::OkStatus();
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kKernel));
  // Each input is copied into its window of the output along `axis`.
  std::vector<int64_t> out_strides = ContiguousStrides(out.shape);
  int64_t axis_offset = 0;
  for (const TensorView& in : inputs) {
    std::vector<int64_t> in_strides = ContiguousStrides(in.shape);
    char* window = static_cast<char*>(out.data) + axis_offset * out_strides[axis] * element_bytes;
    if (!LaunchStridedCopy(static_cast<int>(element_bytes), in.data, window,
                           static_cast<int>(rank), in.shape.data(), in_strides.data(),
                           out_strides.data(), ctx->stream)) {
      return absl::UnimplementedError(absl::StrCat(
          kKernel, ": ", FormatShape(in.shape), " needs more than 8 strided dims on CUDA"));
    }
    axis_offset += in.shape[axis];
  }
  return LaunchStatus(kKernel);
}

absl::Status BroadcastTo(const KernelAttrs&, absl::Span<const TensorView> inputs,
                         absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "broadcast_to";
  VEOMNI_RETURN_IF_ERROR(CheckOneToOne(kKernel, inputs, outputs));
  const TensorView& in = inputs[0];
  const TensorView& out = outputs[0];
  if (!cpu::IsBroadcastableTo(in.shape, out.shape)) {
    return absl::InvalidArgumentError(absl::StrCat(kKernel, ": shape ", FormatShape(in.shape),
                                                   " does not broadcast to ",
                                                   FormatShape(out.shape)));
  }
  return GatherStrided(kKernel, in, 0, cpu::BroadcastStrides(in.shape, out.shape), out);
}

absl::Status Copy(const KernelAttrs&, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "copy";
  VEOMNI_RETURN_IF_ERROR(CheckOneToOne(kKernel, inputs, outputs));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", outputs[0], inputs[0].shape));
  return CopyBytes(kKernel, inputs[0], outputs[0]);
}

// fill {value}: f32 gets the value rounded to float, i64/i32 get it only if
// it is an integer in range.
absl::Status Fill(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "fill";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 0, 0, outputs, 1));
  const TensorView& out = outputs[0];
  VEOMNI_RETURN_IF_ERROR(cpu::CheckSupportedDType(kKernel, out.dtype,
                                                  {DType::kF32, DType::kI64, DType::kI32}));
  VEOMNI_ASSIGN_OR_RETURN(double value, cpu::RequiredFloat(kKernel, attrs, "value"));
  switch (out.dtype) {
    case DType::kI64: {
      VEOMNI_ASSIGN_OR_RETURN(int64_t integer, cpu::IntegralFillValue<int64_t>(kKernel, value));
      VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kKernel));
      LaunchFill(out.As<uint64_t>(), static_cast<uint64_t>(integer), out.NumElements(),
                 ctx->stream);
      break;
    }
    case DType::kI32: {
      VEOMNI_ASSIGN_OR_RETURN(int32_t integer, cpu::IntegralFillValue<int32_t>(kKernel, value));
      VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kKernel));
      LaunchFill(out.As<uint32_t>(), static_cast<uint32_t>(integer), out.NumElements(),
                 ctx->stream);
      break;
    }
    default: {
      VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kKernel));
      LaunchFill(out.As<uint32_t>(), FloatToBits(static_cast<float>(value)), out.NumElements(),
                 ctx->stream);
    }
  }
  return LaunchStatus(kKernel);
}

}  // namespace veomni::runtime::cuda
