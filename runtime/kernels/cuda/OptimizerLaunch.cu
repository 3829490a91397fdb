// Device code of Optimizer.cpp: the CPU kernel's operations in its order,
// each an explicitly rounded intrinsic so that nvcc cannot contract a multiply
// and an add into an FMA the CPU does not take (or the reverse). Every
// operation is correctly rounded IEEE, as on the CPU, so the two agree bit
// for bit.

#include "runtime/kernels/cuda/OptimizerLaunch.h"

#include <cstdint>

namespace veomni::runtime::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t{1} << 20;

__global__ void AdamWKernel(const float* param, const float* grad, const float* exp_avg,
                            const float* exp_avg_sq, const float* hyper,
                            const float* grad_scale, float* param_out, float* exp_avg_out,
                            float* exp_avg_sq_out, int64_t elements, AdamWConstants constants) {
  // The CPU derives these from hyper on the host in double, then rounds.
  const double lr = hyper[0];
  const double bias_correction1 = hyper[1];
  const double bias_correction2 = hyper[2];
  const float decay = static_cast<float>(__dsub_rn(1.0, __dmul_rn(lr, constants.weight_decay)));
  const float bias_correction2_sqrt = static_cast<float>(__dsqrt_rn(bias_correction2));
  const float negative_step_size = static_cast<float>(-__ddiv_rn(lr, bias_correction1));
  const float scale = grad_scale[0];
  const float lerp_weight = constants.lerp_weight;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < elements;
       i += stride) {
    float g = __fmul_rn(grad[i], scale);
    float p = __fmul_rn(param[i], decay);
    float m = exp_avg[i];
    // torch's lerp: start + w * (end - start) for w < 0.5, else
    // end + (w - 1) * (end - start), each as one FMA.
    float difference = __fsub_rn(g, m);
    m = lerp_weight < 0.5f ? __fmaf_rn(lerp_weight, difference, m)
                           : __fmaf_rn(__fsub_rn(lerp_weight, 1.0f), difference, g);
    float v = __fmul_rn(exp_avg_sq[i], constants.beta2);
    v = __fmaf_rn(__fmul_rn(constants.one_minus_beta2, g), g, v);
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), bias_correction2_sqrt), constants.eps);
    p = __fadd_rn(p, __fdiv_rn(__fmul_rn(negative_step_size, m), denom));
    param_out[i] = p;
    exp_avg_out[i] = m;
    exp_avg_sq_out[i] = v;
  }
}

}  // namespace

void LaunchAdamW(const float* param, const float* grad, const float* exp_avg,
                 const float* exp_avg_sq, const float* hyper, const float* grad_scale,
                 float* param_out, float* exp_avg_out, float* exp_avg_sq_out, int64_t elements,
                 const AdamWConstants& constants, cudaStream_t stream) {
  if (elements == 0) return;
  int64_t blocks = (elements + kThreads - 1) / kThreads;
  AdamWKernel<<<static_cast<unsigned>(blocks < kMaxBlocks ? blocks : kMaxBlocks), kThreads, 0,
                stream>>>(param, grad, exp_avg, exp_avg_sq, hyper, grad_scale, param_out,
                          exp_avg_out, exp_avg_sq_out, elements, constants);
}

}  // namespace veomni::runtime::cuda
