// Launchers of the device code behind ModelGrad.cpp; the conventions of
// ModelLaunch.h (whose operand types they share) apply.

#ifndef VEOMNI_RUNTIME_KERNELS_CUDA_MODELGRADLAUNCH_H
#define VEOMNI_RUNTIME_KERNELS_CUDA_MODELGRADLAUNCH_H

#include <cstdint>

#include <cuda_runtime_api.h>

#include "runtime/kernels/cuda/ModelLaunch.h"

namespace veomni::runtime::cuda {

// rms_norm_grad keeps a block's partial dw (dim floats) in shared memory.
inline constexpr int64_t kMaxRmsNormGradDim = 32768;

// dx per row; dw zeroed, then summed over rows with fp32 atomics (one per
// column per block), so its last bits depend on the order blocks finish.
void LaunchRmsNormGrad(const float* x, const float* w, const float* dy, float* dx, float* dw,
                       int64_t rows, int64_t dim, float epsilon, cudaStream_t stream);

// `broadcast` describes dy (the shape rope's x had).
void LaunchRopeGrad(const float* dy, const float* cos, const float* sin, float* dx,
                    const RopeBroadcast& broadcast, cudaStream_t stream);

// gate and up f32, or bf16 (`bf16`); dy and the gradients f32.
void LaunchSwigluGrad(const void* gate, const void* up, bool bf16, const float* dy, float* dgate,
                      float* dup, int64_t elements, cudaStream_t stream);

// dq per query row; dk and dv zeroed, then accumulated with fp32 atomics.
void LaunchAttentionGrad(const float* q, const float* k, const float* v, const float* dout,
                         float* dq, float* dk, float* dv, const AttentionShape& shape,
                         unsigned* error_flags, cudaStream_t stream);

// `reduction` as for LaunchCrossEntropy; dloss has one float per row for
// none, else one.
void LaunchCrossEntropyGrad(const float* logits, DeviceIndices labels, const float* dloss,
                            void* dlogits, bool bf16_dlogits, int64_t rows, int64_t vocab,
                            int64_t ignore_index, int reduction, unsigned* error_flags,
                            cudaStream_t stream);

// dtable [vocab, hidden] zeroed, then dy's rows added at their ids with fp32
// atomics; ids outside [0, vocab) are skipped and flagged kTokenIdOutOfRange.
void LaunchEmbeddingGrad(DeviceIndices ids, const float* dy, float* dtable, int64_t tokens,
                         int64_t vocab, int64_t hidden, unsigned* error_flags,
                         cudaStream_t stream);

}  // namespace veomni::runtime::cuda

#endif  // VEOMNI_RUNTIME_KERNELS_CUDA_MODELGRADLAUNCH_H
