// The operand checks of adamw, shared by the CPU and CUDA kernels so that
// both accept the same launches and say the same when they refuse one.

#ifndef VEOMNI_RUNTIME_KERNELS_CPU_OPTIMIZERCOMMON_H
#define VEOMNI_RUNTIME_KERNELS_CPU_OPTIMIZERCOMMON_H

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/base/Tensor.h"
#include "runtime/kernels/Kernel.h"

namespace veomni::runtime::cpu {

struct AdamWSettings {
  double beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  // The optional outputs' indices, or -1.
  int sum_squares_output = -1;
  int bf16_param_output = -1;
};

// adamw(param, grad, exp_avg, exp_avg_sq, hyper [3], grad_scale [] or [1])
// -> (param', exp_avg', exp_avg_sq' [, sum of grad^2 f32[]] [, param' in
// bf16]), the first three f32 of param's shape; the attributes beta1, beta2,
// eps and weight_decay.
absl::StatusOr<AdamWSettings> CheckAdamW(const KernelAttrs& attrs,
                                         absl::Span<const TensorView> inputs,
                                         absl::Span<const TensorView> outputs);

}  // namespace veomni::runtime::cpu

#endif  // VEOMNI_RUNTIME_KERNELS_CPU_OPTIMIZERCOMMON_H
