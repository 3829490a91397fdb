// adamw: one AdamW step as torch.optim.AdamW(foreach=False) takes it on f32
// CPU tensors, operation for operation, so checkpoints match PyTorch's.

#include <cmath>

#include "absl/strings/str_cat.h"
#include "runtime/base/FloatBits.h"
#include "runtime/kernels/cpu/CpuKernels.h"
#include "runtime/kernels/cpu/KernelSupport.h"
#include "runtime/kernels/cpu/OptimizerCommon.h"

namespace veomni::runtime::cpu {

absl::StatusOr<AdamWSettings> CheckAdamW(const KernelAttrs& attrs,
                                         absl::Span<const TensorView> inputs,
                                         absl::Span<const TensorView> outputs) {
  AdamWSettings settings;
  constexpr absl::string_view kKernel = "adamw";
  // Optional outputs: the sum of grad^2 (vo.adamw sum_squares), f32[]; the
  // updated parameter's bf16 rounding (vo-keep-bf16-params), last.
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 6, 6, outputs,
                                    outputs.size() >= 3 && outputs.size() <= 5
                                        ? outputs.size()
                                        : 3));
  if (outputs.size() > 3 && outputs.back().dtype == DType::kBF16) {
    settings.bf16_param_output = static_cast<int>(outputs.size()) - 1;
  }
  const size_t plain = outputs.size() - (settings.bf16_param_output >= 0 ? 1 : 0);
  if (plain == 4) settings.sum_squares_output = 3;
  if (plain > 4) {
    return absl::InvalidArgumentError(
        absl::StrCat(kKernel, ": expects 3 outputs, then a sum of squares and a bf16 copy"));
  }
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
  if (settings.sum_squares_output >= 0) {
    VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "sum of squares", outputs[3], DType::kF32));
    VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "sum of squares", outputs[3], {}));
  }
  if (settings.bf16_param_output >= 0) {
    VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "bf16 param'",
                                      outputs[settings.bf16_param_output], param.shape));
  }
  VEOMNI_ASSIGN_OR_RETURN(settings.beta1, RequiredFloat(kKernel, attrs, "beta1"));
  VEOMNI_ASSIGN_OR_RETURN(settings.beta2, RequiredFloat(kKernel, attrs, "beta2"));
  VEOMNI_ASSIGN_OR_RETURN(settings.eps, RequiredFloat(kKernel, attrs, "eps"));
  VEOMNI_ASSIGN_OR_RETURN(settings.weight_decay, RequiredFloat(kKernel, attrs, "weight_decay"));
  return settings;
}

// adamw(param, grad, exp_avg, exp_avg_sq, hyper f32[3] = {lr,
// bias_correction1, bias_correction2}, grad_scale f32 scalar)
// {beta1, beta2, eps, weight_decay} -> (param', exp_avg', exp_avg_sq'
// [, sum of grad^2 as f32[], summed in double as reduce_sum_squares does]
// [, param' rounded to bf16, the copy vo-keep-bf16-params keeps]).
// Outputs 0, 1, 2 may alias inputs 0, 2, 3: each element is read in full
// before it is written. With g = grad * grad_scale, torch computes
//   param *= 1 - lr * weight_decay
//   exp_avg.lerp_(g, 1 - beta1)
//   exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
//   denom = exp_avg_sq.sqrt() / sqrt(bias_correction2) + eps
//   param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
// with Python-double scalars rounded to f32. Its vectorized CPU kernels fuse
// lerp and addcmul into one FMA each, so this does too (std::fma); the result
// then equals torch 2.11's bit for bit in exp_avg and exp_avg_sq, and in
// param up to torch's MKL sqrt, which is not correctly rounded.
absl::Status AdamW(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                   absl::Span<const TensorView> outputs) {
  VEOMNI_ASSIGN_OR_RETURN(AdamWSettings settings, CheckAdamW(attrs, inputs, outputs));
  const TensorView& param = inputs[0];
  const TensorView& hyper = inputs[4];
  const TensorView& grad_scale = inputs[5];
  const double beta1 = settings.beta1, beta2 = settings.beta2, eps = settings.eps;
  const double weight_decay = settings.weight_decay;

  const double lr = hyper.As<float>()[0];
  const double bias_correction1 = hyper.As<float>()[1];
  const double bias_correction2 = hyper.As<float>()[2];
  const float decay = static_cast<float>(1.0 - lr * weight_decay);
  const float lerp_weight = static_cast<float>(1.0 - beta1);
  const float beta2_f = static_cast<float>(beta2);
  const float one_minus_beta2 = static_cast<float>(1.0 - beta2);
  const float bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const float eps_f = static_cast<float>(eps);
  const float negative_step_size = static_cast<float>(-(lr / bias_correction1));
  const float scale = grad_scale.As<float>()[0];

  const float* param_in = param.As<float>();
  const float* grad = inputs[1].As<float>();
  const float* exp_avg_in = inputs[2].As<float>();
  const float* exp_avg_sq_in = inputs[3].As<float>();
  float* param_out = outputs[0].As<float>();
  float* exp_avg_out = outputs[1].As<float>();
  float* exp_avg_sq_out = outputs[2].As<float>();
  uint16_t* param_bf16 = settings.bf16_param_output >= 0
                             ? outputs[settings.bf16_param_output].As<uint16_t>()
                             : nullptr;
  double sum_squares = 0.0;
  for (int64_t i = 0; i < param.NumElements(); ++i) {
    const double unscaled = grad[i];
    sum_squares += unscaled * unscaled;
    float g = grad[i] * scale;
    float p = param_in[i] * decay;
    float m = exp_avg_in[i];
    // torch's lerp: start + w * (end - start) for w < 0.5, else
    // end + (w - 1) * (end - start), each as one FMA.
    m = lerp_weight < 0.5f ? std::fma(lerp_weight, g - m, m)
                           : std::fma(lerp_weight - 1.0f, g - m, g);
    float v = exp_avg_sq_in[i] * beta2_f;
    v = std::fma(one_minus_beta2 * g, g, v);
    float denom = std::sqrt(v) / bias_correction2_sqrt + eps_f;
    p = p + negative_step_size * m / denom;
    param_out[i] = p;
    exp_avg_out[i] = m;
    exp_avg_sq_out[i] = v;
    if (param_bf16) param_bf16[i] = FloatToBFloat16Bits(p);
  }
  if (settings.sum_squares_output >= 0) {
    *outputs[settings.sum_squares_output].As<float>() = static_cast<float>(sum_squares);
  }
  return absl::OkStatus();
}

}  // namespace veomni::runtime::cpu
