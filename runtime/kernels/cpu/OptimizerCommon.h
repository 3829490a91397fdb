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
};

// adamw(param, grad, exp_avg, exp_avg_sq, hyper [3], grad_scale [] or [1])
// -> (param', exp_avg', exp_avg_sq'), all f32 of param's shape; the
// attributes beta1, beta2, eps and weight_decay.
absl::StatusOr<AdamWSettings> CheckAdamW(const KernelAttrs& attrs,
                                         absl::Span<const TensorView> inputs,
                                         absl::Span<const TensorView> outputs);

}  // namespace veomni::runtime::cpu

#endif  // VEOMNI_RUNTIME_KERNELS_CPU_OPTIMIZERCOMMON_H
