// adamw on CUDA: the CPU kernel's operand checks, then OptimizerLaunch.cu,
// which takes the CPU kernel's operations in its order (torch's formula).

#include "absl/strings/str_cat.h"
#include "runtime/kernels/cpu/KernelSupport.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/CudaSupport.h"
#include "runtime/kernels/cuda/OptimizerLaunch.h"

namespace veomni::runtime::cuda {

using cpu::CheckArity;
using cpu::CheckDType;
using cpu::CheckShape;
using cpu::CheckSupportedDType;
using cpu::RequiredFloat;

absl::Status AdamW(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                   absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "adamw";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 6, 6, outputs, 3));
  const TensorView& param = inputs[0];
  const TensorView& hyper = inputs[4];
  const TensorView& grad_scale = inputs[5];
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kKernel, param.dtype, {DType::kF32}));
  const char* roles[] = {"grad", "exp_avg", "exp_avg_sq", "param'", "exp_avg'", "exp_avg_sq'"};
  const TensorView* same_as_param[] = {&inputs[1], &inputs[2], &inputs[3],
                                       &outputs[0], &outputs[1], &outputs[2]};
  for (int i = 0; i < 6; ++i) {
    VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, roles[i], *same_as_param[i], DType::kF32));
    VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, roles[i], *same_as_param[i], param.shape));
  }
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "hyper", hyper, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "hyper", hyper, {3}));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "grad_scale", grad_scale, DType::kF32));
  if (grad_scale.shape.size() > 1 || grad_scale.NumElements() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(kKernel, ": grad_scale has shape ",
                                                   FormatShape(grad_scale.shape),
                                                   ", expected [] or [1]"));
  }
  VEOMNI_ASSIGN_OR_RETURN(double beta1, RequiredFloat(kKernel, attrs, "beta1"));
  VEOMNI_ASSIGN_OR_RETURN(double beta2, RequiredFloat(kKernel, attrs, "beta2"));
  VEOMNI_ASSIGN_OR_RETURN(double eps, RequiredFloat(kKernel, attrs, "eps"));
  VEOMNI_ASSIGN_OR_RETURN(double weight_decay, RequiredFloat(kKernel, attrs, "weight_decay"));
  AdamWConstants constants;
  constants.lerp_weight = static_cast<float>(1.0 - beta1);
  constants.beta2 = static_cast<float>(beta2);
  constants.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  constants.eps = static_cast<float>(eps);
  constants.weight_decay = weight_decay;

  VEOMNI_ASSIGN_OR_RETURN(CudaContext * context, RequireContext(kKernel));
  LaunchAdamW(param.As<float>(), inputs[1].As<float>(), inputs[2].As<float>(),
              inputs[3].As<float>(), hyper.As<float>(), grad_scale.As<float>(),
              outputs[0].As<float>(), outputs[1].As<float>(), outputs[2].As<float>(),
              param.NumElements(), constants, context->stream);
  return LaunchStatus(kKernel);
}

}  // namespace veomni::runtime::cuda
