// Reductions {axes, keep_dims} and softmax / log_softmax {axis} on CUDA, with
// the CPU kernels' checks. f32 sums accumulate in double like the CPU's, but
// in another order; softmax takes exp in f32 and sums it in double.

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/base/Status.h"
#include "runtime/kernels/cpu/KernelSupport.h"
#include "runtime/kernels/cpu/ReduceCommon.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/CudaSupport.h"
#include "runtime/kernels/cuda/ReduceLaunch.h"

namespace veomni::runtime::cuda {
namespace {

using cpu::CheckArity;
using cpu::CheckDType;
using cpu::CheckShape;
using cpu::CheckSupportedDType;
using cpu::DimProduct;

// The input's dims split into those kept in the output (in order, which is
// the output's row-major layout) and those reduced, each with the input's
// element strides.
struct ReductionPlan {
  std::vector<int64_t> kept_shape, kept_strides;
  std::vector<int64_t> reduced_shape, reduced_strides;
  int64_t reduced_count = 1;
  int64_t output_count = 1;
};

// The CPU's attribute and output-shape checks (ReduceCommon.h), then the
// strides the device walks.
absl::StatusOr<ReductionPlan> PlanReduction(absl::string_view kernel, const KernelAttrs& attrs,
                                            const TensorView& in, const TensorView& out) {
  VEOMNI_ASSIGN_OR_RETURN(std::vector<bool> reduced, cpu::ReducedDims(kernel, attrs, in, out));
  const size_t rank = in.shape.size();
  std::vector<int64_t> in_strides = cpu::ContiguousStrides(in.shape);
  ReductionPlan plan;
  for (size_t d = 0; d < rank; ++d) {
    if (reduced[d]) {
      plan.reduced_shape.push_back(in.shape[d]);
      plan.reduced_strides.push_back(in_strides[d]);
      plan.reduced_count *= in.shape[d];
    } else {
      plan.kept_shape.push_back(in.shape[d]);
      plan.kept_strides.push_back(in_strides[d]);
      plan.output_count *= in.shape[d];
    }
  }
  return plan;
}

template <typename T>
bool LaunchPlanned(ReduceOp op, const TensorView& in, const TensorView& out,
                   const ReductionPlan& plan, cudaStream_t stream) {
  return LaunchReduce(op, in.As<const T>(), out.As<T>(), static_cast<int>(plan.kept_shape.size()),
                      plan.kept_shape.data(), plan.kept_strides.data(),
                      static_cast<int>(plan.reduced_shape.size()), plan.reduced_shape.data(),
                      plan.reduced_strides.data(), stream);
}

absl::Status RunReduction(absl::string_view kernel, ReduceOp op, const TensorView& in,
                          const TensorView& out, const ReductionPlan& plan) {
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kernel));
  bool launched = false;
  switch (in.dtype) {
    case DType::kI64: launched = LaunchPlanned<int64_t>(op, in, out, plan, ctx->stream); break;
    case DType::kI32: launched = LaunchPlanned<int32_t>(op, in, out, plan, ctx->stream); break;
    default: launched = LaunchPlanned<float>(op, in, out, plan, ctx->stream); break;
  }
  if (!launched) {
    return absl::UnimplementedError(absl::StrCat(
        kernel, ": reducing ", FormatShape(in.shape), " needs more than 8 strided dims on CUDA"));
  }
  return LaunchStatus(kernel);
}

// The CPU's checks of softmax-like kernels, then the launch along `axis`.
absl::Status RunSoftmax(absl::string_view kernel, bool log, const KernelAttrs& attrs,
                        absl::Span<const TensorView> inputs,
                        absl::Span<const TensorView> outputs) {
  VEOMNI_RETURN_IF_ERROR(CheckArity(kernel, inputs, 1, 1, outputs, 1));
  const TensorView& in = inputs[0];
  const TensorView& out = outputs[0];
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kernel, in.dtype, {DType::kF32}));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "output", out, in.dtype));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kernel, "output", out, in.shape));
  VEOMNI_ASSIGN_OR_RETURN(int64_t raw_axis, cpu::RequiredInt(kernel, attrs, "axis"));
  VEOMNI_ASSIGN_OR_RETURN(int64_t axis, cpu::NormalizeAxis(kernel, raw_axis, in.shape.size()));
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kernel));
  LaunchSoftmax(log, in.As<const float>(), out.As<float>(), DimProduct(in.shape, 0, axis),
                in.shape[axis], DimProduct(in.shape, axis + 1, in.shape.size()), ctx->stream);
  return LaunchStatus(kernel);
}

}  // namespace

absl::Status ReduceSum(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                       absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "reduce_sum";
  VEOMNI_RETURN_IF_ERROR(cpu::CheckReductionOperands(kKernel, inputs, outputs,
                                                {DType::kF32, DType::kI64, DType::kI32}));
  VEOMNI_ASSIGN_OR_RETURN(ReductionPlan plan, PlanReduction(kKernel, attrs, inputs[0], outputs[0]));
  return RunReduction(kKernel, ReduceOp::kSum, inputs[0], outputs[0], plan);
}

absl::Status ReduceSumSquares(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                              absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "reduce_sum_squares";
  VEOMNI_RETURN_IF_ERROR(cpu::CheckReductionOperands(kKernel, inputs, outputs, {DType::kF32}));
  VEOMNI_ASSIGN_OR_RETURN(ReductionPlan plan, PlanReduction(kKernel, attrs, inputs[0], outputs[0]));
  return RunReduction(kKernel, ReduceOp::kSumSquares, inputs[0], outputs[0], plan);
}

// A mean over zero elements is NaN (0 / 0), as in PyTorch.
absl::Status ReduceMean(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                        absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "reduce_mean";
  VEOMNI_RETURN_IF_ERROR(cpu::CheckReductionOperands(kKernel, inputs, outputs, {DType::kF32}));
  VEOMNI_ASSIGN_OR_RETURN(ReductionPlan plan, PlanReduction(kKernel, attrs, inputs[0], outputs[0]));
  return RunReduction(kKernel, ReduceOp::kMean, inputs[0], outputs[0], plan);
}

absl::Status ReduceMax(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                       absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "reduce_max";
  VEOMNI_RETURN_IF_ERROR(cpu::CheckReductionOperands(kKernel, inputs, outputs,
                                                {DType::kF32, DType::kI64, DType::kI32}));
  VEOMNI_ASSIGN_OR_RETURN(ReductionPlan plan, PlanReduction(kKernel, attrs, inputs[0], outputs[0]));
  if (plan.reduced_count == 0 && plan.output_count > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        kKernel, ": reducing input of shape ", FormatShape(inputs[0].shape),
        " over an empty axis has no maximum"));
  }
  return RunReduction(kKernel, ReduceOp::kMax, inputs[0], outputs[0], plan);
}

absl::Status Softmax(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                     absl::Span<const TensorView> outputs) {
  return RunSoftmax("softmax", /*log=*/false, attrs, inputs, outputs);
}

absl::Status LogSoftmax(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                        absl::Span<const TensorView> outputs) {
  return RunSoftmax("log_softmax", /*log=*/true, attrs, inputs, outputs);
}

}  // namespace veomni::runtime::cuda
