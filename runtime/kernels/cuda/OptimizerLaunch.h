// Launcher of the device code behind Optimizer.cpp. Free of absl so that nvcc
// compiles the definition; it queues its work on `stream` and returns.

#ifndef VEOMNI_RUNTIME_KERNELS_CUDA_OPTIMIZERLAUNCH_H
#define VEOMNI_RUNTIME_KERNELS_CUDA_OPTIMIZERLAUNCH_H

#include <cstdint>

#include <cuda_runtime_api.h>

namespace veomni::runtime::cuda {

// adamw's attributes, rounded to f32 as torch rounds its Python scalars;
// weight_decay stays double because it multiplies lr, which lives on the
// device (hyper), in double.
struct AdamWConstants {
  float lerp_weight = 0.0f;      // 1 - beta1
  float beta2 = 0.0f;
  float one_minus_beta2 = 0.0f;  // 1 - beta2
  float eps = 0.0f;
  double weight_decay = 0.0;
};

// One AdamW step over `elements` values; hyper = {lr, bias_correction1,
// bias_correction2} and grad_scale are device scalars. The outputs may alias
// param, exp_avg and exp_avg_sq. A non-null grad_sum_squares receives the sum
// of grad^2 (unscaled): per-block partials in double, summed in block order
// by a second kernel, so the result does not vary between runs. A non-null
// param_bf16 receives param_out rounded to bf16 (nearest even). Fails only
// when the partials' stream-ordered scratch cannot be had.
cudaError_t LaunchAdamW(const float* param, const float* grad, const float* exp_avg,
                        const float* exp_avg_sq, const float* hyper, const float* grad_scale,
                        float* param_out, float* exp_avg_out, float* exp_avg_sq_out,
                        float* grad_sum_squares, void* param_bf16, int64_t elements,
                        const AdamWConstants& constants, cudaStream_t stream);

}  // namespace veomni::runtime::cuda

#endif  // VEOMNI_RUNTIME_KERNELS_CUDA_OPTIMIZERLAUNCH_H
