// Device code of Optimizer.cpp: the CPU kernel's operations in its order,
// each an explicitly rounded intrinsic so that nvcc cannot contract a multiply
// and an add into an FMA the CPU does not take (or the reverse). Every
// operation is correctly rounded IEEE, as on the CPU, so the two agree bit
// for bit.

#include "runtime/kernels/cuda/OptimizerLaunch.h"

#include <cstdint>

#include <cuda_bf16.h>

#include <cub/block/block_reduce.cuh>

namespace veomni::runtime::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t{1} << 20;
// Blocks of an update that also sums grad^2: enough to fill an H200 several
// times over, few enough for one block to add their partials.
constexpr int64_t kMaxSummingBlocks = 4096;

// The step's scalars, derived on the device from hyper as the CPU derives
// them on the host: in double, then rounded.
struct AdamWStep {
  float decay, bias_correction2_sqrt, negative_step_size, scale, lerp_weight, beta2,
      one_minus_beta2, eps;
};

__device__ AdamWStep MakeStep(const float* hyper, const float* grad_scale,
                              const AdamWConstants& constants) {
  const double lr = hyper[0];
  const double bias_correction1 = hyper[1];
  const double bias_correction2 = hyper[2];
  AdamWStep step;
  step.decay = static_cast<float>(__dsub_rn(1.0, __dmul_rn(lr, constants.weight_decay)));
  step.bias_correction2_sqrt = static_cast<float>(__dsqrt_rn(bias_correction2));
  step.negative_step_size = static_cast<float>(-__ddiv_rn(lr, bias_correction1));
  step.scale = grad_scale[0];
  step.lerp_weight = constants.lerp_weight;
  step.beta2 = constants.beta2;
  step.one_minus_beta2 = constants.one_minus_beta2;
  step.eps = constants.eps;
  return step;
}

// One element: p, m and v are updated in place.
__device__ void Update(const AdamWStep& s, float grad, float& p, float& m, float& v) {
  float g = __fmul_rn(grad, s.scale);
  p = __fmul_rn(p, s.decay);
  // torch's lerp: start + w * (end - start) for w < 0.5, else
  // end + (w - 1) * (end - start), each as one FMA.
  float difference = __fsub_rn(g, m);
  m = s.lerp_weight < 0.5f ? __fmaf_rn(s.lerp_weight, difference, m)
                           : __fmaf_rn(__fsub_rn(s.lerp_weight, 1.0f), difference, g);
  v = __fmul_rn(v, s.beta2);
  v = __fmaf_rn(__fmul_rn(s.one_minus_beta2, g), g, v);
  float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), s.bias_correction2_sqrt), s.eps);
  p = __fadd_rn(p, __fdiv_rn(__fmul_rn(s.negative_step_size, m), denom));
}

// Elements [0, vectors * 4) as float4s when every array is 16-byte aligned
// (vectors > 0 only then), the rest one by one: the step is memory bound,
// and wide accesses move its 28 bytes an element faster.
// With `partials`, block b also writes the sum of grad^2 over the elements
// its threads took to partials[b].
__global__ void __launch_bounds__(kThreads)
    AdamWKernel(const float* param, const float* grad, const float* exp_avg,
                const float* exp_avg_sq, const float* hyper, const float* grad_scale,
                float* param_out, float* exp_avg_out, float* exp_avg_sq_out,
                __nv_bfloat16* param_bf16, double* partials, int64_t elements,
                int64_t vectors, AdamWConstants constants) {
  const AdamWStep s = MakeStep(hyper, grad_scale, constants);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  double squares = 0.0;
  for (int64_t i = first; i < vectors; i += stride) {
    float4 g = reinterpret_cast<const float4*>(grad)[i];
    if (partials) {
      squares += static_cast<double>(g.x) * g.x + static_cast<double>(g.y) * g.y +
                 static_cast<double>(g.z) * g.z + static_cast<double>(g.w) * g.w;
    }
    float4 p = reinterpret_cast<const float4*>(param)[i];
    float4 m = reinterpret_cast<const float4*>(exp_avg)[i];
    float4 v = reinterpret_cast<const float4*>(exp_avg_sq)[i];
    Update(s, g.x, p.x, m.x, v.x);
    Update(s, g.y, p.y, m.y, v.y);
    Update(s, g.z, p.z, m.z, v.z);
    Update(s, g.w, p.w, m.w, v.w);
    reinterpret_cast<float4*>(param_out)[i] = p;
    reinterpret_cast<float4*>(exp_avg_out)[i] = m;
    reinterpret_cast<float4*>(exp_avg_sq_out)[i] = v;
    if (param_bf16) {  // 8-byte aligned (LaunchAdamW checks it for this path)
      __nv_bfloat162* copy = reinterpret_cast<__nv_bfloat162*>(param_bf16 + 4 * i);
      copy[0] = __floats2bfloat162_rn(p.x, p.y);
      copy[1] = __floats2bfloat162_rn(p.z, p.w);
    }
  }
  for (int64_t i = vectors * 4 + first; i < elements; i += stride) {
    float p = param[i];
    float m = exp_avg[i];
    float v = exp_avg_sq[i];
    const float g = grad[i];
    squares += static_cast<double>(g) * g;
    Update(s, g, p, m, v);
    param_out[i] = p;
    exp_avg_out[i] = m;
    exp_avg_sq_out[i] = v;
    if (param_bf16) param_bf16[i] = __float2bfloat16_rn(p);
  }
  if (!partials) return;
  using BlockReduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename BlockReduce::TempStorage temp;
  const double total = BlockReduce(temp).Sum(squares);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// sum = the partials added in a fixed order (then rounded to f32).
__global__ void __launch_bounds__(kThreads)
    SumPartialsKernel(const double* partials, int64_t count, float* sum) {
  using BlockReduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename BlockReduce::TempStorage temp;
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += kThreads) acc += partials[i];
  const double total = BlockReduce(temp).Sum(acc);
  if (threadIdx.x == 0) *sum = static_cast<float>(total);
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

cudaError_t LaunchAdamW(const float* param, const float* grad, const float* exp_avg,
                        const float* exp_avg_sq, const float* hyper, const float* grad_scale,
                        float* param_out, float* exp_avg_out, float* exp_avg_sq_out,
                        float* grad_sum_squares, void* param_bf16, int64_t elements,
                        const AdamWConstants& constants, cudaStream_t stream) {
  if (elements == 0) {
    return grad_sum_squares ? cudaMemsetAsync(grad_sum_squares, 0, sizeof(float), stream)
                            : cudaSuccess;
  }
  const bool aligned = Aligned16(param) && Aligned16(grad) && Aligned16(exp_avg) &&
                       Aligned16(exp_avg_sq) && Aligned16(param_out) &&
                       Aligned16(exp_avg_out) && Aligned16(exp_avg_sq_out) &&
                       (!param_bf16 || reinterpret_cast<uintptr_t>(param_bf16) % 8 == 0);
  const int64_t vectors = aligned ? elements / 4 : 0;
  const int64_t threads = vectors + (elements - vectors * 4);
  int64_t blocks = (threads + kThreads - 1) / kThreads;
  // Summing, fewer blocks (each strides further) keep the partials few.
  const int64_t most = grad_sum_squares ? kMaxSummingBlocks : kMaxBlocks;
  if (blocks > most) blocks = most;
  double* partials = nullptr;
  if (grad_sum_squares) {
    cudaError_t status =
        cudaMallocAsync(reinterpret_cast<void**>(&partials), blocks * sizeof(double), stream);
    if (status != cudaSuccess) return status;
  }
  AdamWKernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      param, grad, exp_avg, exp_avg_sq, hyper, grad_scale, param_out, exp_avg_out,
      exp_avg_sq_out, static_cast<__nv_bfloat16*>(param_bf16), partials, elements, vectors,
      constants);
  if (partials) {
    SumPartialsKernel<<<1, kThreads, 0, stream>>>(partials, blocks, grad_sum_squares);
    cudaFreeAsync(partials, stream);
  }
  return cudaGetLastError();
}

}  // namespace veomni::runtime::cuda
