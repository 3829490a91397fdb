// adamw on CUDA: the CPU kernel's operand checks, then OptimizerLaunch.cu,
// which takes the CPU kernel's operations in its order (torch's formula).

#include "runtime/base/Status.h"
#include "runtime/kernels/cpu/OptimizerCommon.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/CudaSupport.h"
#include "runtime/kernels/cuda/OptimizerLaunch.h"

namespace veomni::runtime::cuda {

absl::Status AdamW(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                   absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "adamw";
  VEOMNI_ASSIGN_OR_RETURN(cpu::AdamWSettings settings, cpu::CheckAdamW(attrs, inputs, outputs));
  const TensorView& param = inputs[0];
  const TensorView& hyper = inputs[4];
  const TensorView& grad_scale = inputs[5];
  const double beta1 = settings.beta1, beta2 = settings.beta2, eps = settings.eps;
  const double weight_decay = settings.weight_decay;
  AdamWConstants constants;
  constants.lerp_weight = static_cast<float>(1.0 - beta1);
  constants.beta2 = static_cast<float>(beta2);
  constants.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  constants.eps = static_cast<float>(eps);
  constants.weight_decay = weight_decay;

  VEOMNI_ASSIGN_OR_RETURN(CudaContext * context, RequireContext(kKernel));
  cudaError_t launched = LaunchAdamW(
      param.As<float>(), inputs[1].As<float>(), inputs[2].As<float>(), inputs[3].As<float>(),
      hyper.As<float>(), grad_scale.As<float>(), outputs[0].As<float>(),
      outputs[1].As<float>(), outputs[2].As<float>(),
      settings.sum_squares_output >= 0 ? outputs[settings.sum_squares_output].As<float>()
                                       : nullptr,
      settings.bf16_param_output >= 0 ? outputs[settings.bf16_param_output].data : nullptr,
      param.NumElements(), constants, context->stream);
  VEOMNI_RETURN_IF_ERROR(CudaStatus(launched, "adamw"));
  return LaunchStatus(kKernel);
}

}  // namespace veomni::runtime::cuda
