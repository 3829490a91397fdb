// Device code of the MoE kernels (Moe.cpp checks the operands, then calls
// these). Each function only queues work on `stream`: it never synchronizes,
// so the expert token counts stay on the device. Free of absl; nvcc compiles
// the definitions in MoeLaunch.cu. Pointers are device pointers; expert ids
// are i64 when `ids_are_i64`, else i32. An expert id outside [0, experts) sets
// kIndexOutOfRange in `error_flags`, and its slot contributes nothing.

#ifndef VEOMNI_RUNTIME_KERNELS_CUDA_MOELAUNCH_H
#define VEOMNI_RUNTIME_KERNELS_CUDA_MOELAUNCH_H

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace veomni::runtime::cuda {

// top_k over `rows` rows of `count` floats: values [rows, k] and indices
// [rows, k], ranked as the CPU kernel ranks (NaN first, then descending,
// equal values by the lower index).
void LaunchTopK(const float* x, int64_t rows, int64_t count, int64_t k, float* values,
                int64_t* indices, cudaStream_t stream);

// moe_gate: softmax in double, the top_k probabilities and their experts.
void LaunchMoeGate(const float* logits, int64_t tokens, int64_t experts, int64_t top_k,
                   bool normalize, float* weights, int64_t* expert_ids, cudaStream_t stream);

// moe_gate_grad: logits_grad [tokens, experts] from weights_grad [tokens, slots].
void LaunchMoeGateGrad(const float* logits, const void* expert_ids, bool ids_are_i64,
                       const float* weights_grad, int64_t tokens, int64_t experts,
                       int64_t slots, bool normalize, float* logits_grad,
                       unsigned* error_flags, cudaStream_t stream);

// The sizes of one moe_experts(_grad) launch.
struct MoeExpertsShape {
  int64_t tokens = 0;
  int64_t hidden = 0;
  int64_t slots = 0;  // k per token
  int64_t experts = 0;
  int64_t intermediate = 0;
  // GEMM operands rounded to bf16 for the tensor cores (fp32 accumulation),
  // as matmul does at bf16 precision; fp32 FMAs otherwise.
  bool bf16 = false;
  // gate_up and down arrive as bf16 (vo-bf16-matmuls rounded them), rows
  // unpadded: then bf16 is set too, and H and I are multiples of 8.
  bool weights_bf16 = false;
};

// Whether the device code takes this shape: it numbers the T * k rows as int
// (up to INT_MAX / 2) and puts the experts on a grid dimension (up to 65535).
bool MoeExpertsLaunchable(const MoeExpertsShape& shape);

// Bytes of device scratch LaunchMoeExperts and LaunchMoeExpertsGrad need; the
// caller owns it for the launch. Both take the backward's (the larger): the
// stream-ordered pool then hands the forward's freed block to the backward
// instead of holding both (a CUDA graph's memory too).
size_t MoeExpertsScratchBytes(const MoeExpertsShape& shape);

// moe_experts: y [T, H] from x [T, H], expert_ids and weights [T, k],
// gate_up [E, 2I, H], down [E, H, I] (f32, or bf16 with shape.weights_bf16).
// A non-null `projected` [T k, 2I] receives the routed rows' gate/up
// projections in routed order (keep_projected); moe_experts_grad reads them
// back from a non-null `projected` instead of recomputing them.
void LaunchMoeExperts(const MoeExpertsShape& shape, const float* x, const void* expert_ids,
                      bool ids_are_i64, const float* weights, const void* gate_up,
                      const void* down, float* y, float* projected, void* scratch,
                      unsigned* error_flags, cudaStream_t stream);

// moe_experts_grad: overwrites x_grad [T, H], weights_grad [T, k],
// gate_up_grad [E, 2I, H] and down_grad [E, H, I].
void LaunchMoeExpertsGrad(const MoeExpertsShape& shape, const float* x, const void* expert_ids,
                          bool ids_are_i64, const float* weights, const void* gate_up,
                          const void* down, const float* y_grad, const float* projected,
                          float* x_grad,
                          float* weights_grad, float* gate_up_grad, float* down_grad,
                          void* scratch, unsigned* error_flags, cudaStream_t stream);

}  // namespace veomni::runtime::cuda

#endif  // VEOMNI_RUNTIME_KERNELS_CUDA_MOELAUNCH_H
