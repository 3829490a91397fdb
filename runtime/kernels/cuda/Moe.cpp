// The MoE kernels on CUDA: the CPU kernels' operand checks (MoeCommon.h),
// then the device code of MoeLaunch.cu on the context's stream, its GEMMs in
// the context's matmul precision (bf16 on tensor cores, else fp32). Expert ids
// are range-checked on the device (kIndexOutOfRange), since reading them here
// would synchronize.

#include <cstddef>

#include "absl/strings/str_cat.h"
#include "runtime/base/Status.h"
#include "runtime/kernels/cpu/KernelSupport.h"
#include "runtime/kernels/cpu/MoeCommon.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/CudaSupport.h"
#include "runtime/kernels/cuda/MoeLaunch.h"

namespace veomni::runtime::cuda {
namespace {

MoeExpertsShape ShapeOf(const cpu::MoeExpertsPlan& plan, const CudaContext& context,
                        absl::Span<const TensorView> inputs) {
  MoeExpertsShape shape;
  // Weights the compiler rounded are multiplied as they are, at any
  // precision setting (as matmul's bf16 operands).
  shape.weights_bf16 = inputs[3].dtype == DType::kBF16;
  shape.bf16 = shape.weights_bf16 || context.matmul_precision == MatmulPrecision::kBF16;
  shape.tokens = plan.tokens;
  shape.hidden = plan.hidden;
  shape.slots = plan.slots;
  shape.experts = plan.experts;
  shape.intermediate = plan.intermediate;
  return shape;
}

absl::Status CheckLaunchable(absl::string_view kernel, const MoeExpertsShape& shape) {
  if (shape.weights_bf16 && (shape.hidden % 8 != 0 || shape.intermediate % 8 != 0)) {
    // The GEMMs read 16-byte row chunks; f32 weights get padded copies.
    return absl::UnimplementedError(absl::StrCat(
        kernel, ": bf16 expert weights need hidden and intermediate sizes divisible by 8, got ",
        shape.hidden, " and ", shape.intermediate));
  }
  if (MoeExpertsLaunchable(shape)) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrCat(
      kernel, ": ", shape.tokens, " tokens x ", shape.slots, " slots and ", shape.experts,
      " experts exceed what the CUDA kernel indexes (rows <= 2^30, experts <= 65535)"));
}

// Runs `launch(scratch)` with `bytes` of stream-ordered scratch.
template <typename Launch>
absl::Status WithScratch(absl::string_view kernel, CudaContext* ctx, size_t bytes,
                         Launch launch) {
  StreamScratch scratch(ctx, kernel);
  size_t offset = scratch.Reserve(bytes);
  VEOMNI_RETURN_IF_ERROR(scratch.Allocate());
  launch(scratch.At(offset));
  return LaunchStatus(kernel);
}

}  // namespace

absl::Status TopK(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "top_k";
  VEOMNI_ASSIGN_OR_RETURN(cpu::TopKPlan plan, cpu::PlanTopK(kKernel, attrs, inputs, outputs));
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kKernel));
  LaunchTopK(inputs[0].As<const float>(), plan.rows, plan.count, plan.k,
             outputs[0].As<float>(), outputs[1].As<int64_t>(), ctx->stream);
  return LaunchStatus(kKernel);
}

absl::Status MoeGate(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                     absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "moe_gate";
  VEOMNI_ASSIGN_OR_RETURN(cpu::MoeGatePlan plan,
                          cpu::PlanMoeGate(kKernel, attrs, inputs, outputs));
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kKernel));
  LaunchMoeGate(inputs[0].As<const float>(), plan.tokens, plan.experts, plan.top_k,
                plan.normalize, outputs[0].As<float>(), outputs[1].As<int64_t>(), ctx->stream);
  return LaunchStatus(kKernel);
}

absl::Status MoeGateGrad(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                         absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "moe_gate_grad";
  VEOMNI_ASSIGN_OR_RETURN(cpu::MoeGateGradPlan plan,
                          cpu::PlanMoeGateGrad(kKernel, attrs, inputs, outputs));
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kKernel));
  LaunchMoeGateGrad(inputs[0].As<const float>(), inputs[1].data,
                    inputs[1].dtype == DType::kI64, inputs[2].As<const float>(), plan.tokens,
                    plan.experts, plan.slots, plan.normalize, outputs[0].As<float>(),
                    ctx->error_flags, ctx->stream);
  return LaunchStatus(kKernel);
}

absl::Status MoeExperts(const KernelAttrs&, absl::Span<const TensorView> inputs,
                        absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "moe_experts";
  VEOMNI_RETURN_IF_ERROR(
      cpu::CheckArity(kKernel, inputs, 5, 5, outputs, outputs.size() == 2 ? 2 : 1));
  VEOMNI_ASSIGN_OR_RETURN(cpu::MoeExpertsPlan plan, cpu::PlanMoeExperts(kKernel, inputs));
  VEOMNI_RETURN_IF_ERROR(cpu::CheckMoeExpertsOutput(kKernel, plan, outputs.first(1)));
  if (outputs.size() == 2) {
    VEOMNI_RETURN_IF_ERROR(cpu::CheckMoeProjected(kKernel, plan, outputs[1]));
  }
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kKernel));
  MoeExpertsShape shape = ShapeOf(plan, *ctx, inputs);
  VEOMNI_RETURN_IF_ERROR(CheckLaunchable(kKernel, shape));
  return WithScratch(kKernel, ctx, MoeExpertsScratchBytes(shape),
                     [&](void* scratch) {
                       LaunchMoeExperts(shape, inputs[0].As<const float>(), inputs[1].data,
                                        inputs[1].dtype == DType::kI64,
                                        inputs[2].As<const float>(),
                                        inputs[3].data, inputs[4].data, outputs[0].As<float>(),
                                        outputs.size() == 2 ? outputs[1].As<float>() : nullptr,
                                        scratch, ctx->error_flags, ctx->stream);
                     });
}

absl::Status MoeExpertsGrad(const KernelAttrs&, absl::Span<const TensorView> inputs,
                            absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "moe_experts_grad";
  VEOMNI_RETURN_IF_ERROR(cpu::CheckArity(kKernel, inputs, 6, 7, outputs, 4));
  VEOMNI_ASSIGN_OR_RETURN(cpu::MoeExpertsPlan plan, cpu::PlanMoeExperts(kKernel, inputs));
  VEOMNI_RETURN_IF_ERROR(cpu::CheckMoeExpertsGradOperands(kKernel, plan, inputs, outputs));
  const bool kept = inputs.size() == 7;
  if (kept) VEOMNI_RETURN_IF_ERROR(cpu::CheckMoeProjected(kKernel, plan, inputs[6]));
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kKernel));
  MoeExpertsShape shape = ShapeOf(plan, *ctx, inputs);
  VEOMNI_RETURN_IF_ERROR(CheckLaunchable(kKernel, shape));
  return WithScratch(kKernel, ctx, MoeExpertsScratchBytes(shape),
                     [&](void* scratch) {
                       LaunchMoeExpertsGrad(
                           shape, inputs[0].As<const float>(), inputs[1].data,
                           inputs[1].dtype == DType::kI64, inputs[2].As<const float>(),
                           inputs[3].data, inputs[4].data, inputs[5].As<const float>(),
                           kept ? inputs[6].As<const float>() : nullptr, outputs[0].As<float>(),
                           outputs[1].As<float>(), outputs[2].As<float>(),
                           outputs[3].As<float>(), scratch, ctx->error_flags, ctx->stream);
                     });
}

}  // namespace veomni::runtime::cuda
