// Attention through cuDNN's fused scaled-dot-product attention (flash
// attention on tensor cores), built with cudnn-frontend's graph API. The
// operands stay f32 in the artifact; the kernel rounds q, k, v (and dout) to
// bf16 into stream-ordered scratch, runs cuDNN with f32 softmax and
// accumulation, and widens the results back to f32.
//
// It serves attention and attention_grad when the context computes in bf16
// (--matmul_precision bf16, the default) and the operands are what cuDNN
// takes (CudnnAttentionApplies). Otherwise the f32 reference kernels run:
// they are exact to f32, which fp32 and tf32 runs compare against.

#ifndef VEOMNI_RUNTIME_KERNELS_CUDA_CUDNNATTENTION_H
#define VEOMNI_RUNTIME_KERNELS_CUDA_CUDNNATTENTION_H

#include "absl/status/status.h"
#include "runtime/kernels/cpu/ModelCommon.h"
#include "runtime/kernels/cuda/CudaContext.h"

namespace veomni::runtime::cuda {

// Whether cuDNN runs this attention: bf16 compute, no document mask
// (cu_seqlens), D == Dv, D a multiple of 8 and at most 128.
bool CudnnAttentionApplies(const cpu::AttentionGeometry& geometry, bool has_cu_seqlens,
                           const CudaContext& context);

// out = softmax(q k^T * scale [causal]) v for validated operands.
absl::Status CudnnAttention(const cpu::AttentionGeometry& geometry, const float* q,
                            const float* k, const float* v, float* out, CudaContext* context);

// dq, dk, dv of attention given dout. cuDNN's backward needs the forward's
// output and softmax statistics, which the IR does not keep, so the forward
// runs again first (about a third of the backward's cost).
absl::Status CudnnAttentionGrad(const cpu::AttentionGeometry& geometry, const float* q,
                                const float* k, const float* v, const float* dout, float* dq,
                                float* dk, float* dv, CudaContext* context);

// Frees the context's cuDNN handle and built graphs (CudaDevice's destructor).
void DestroyCudnnState(CudaContext* context);

}  // namespace veomni::runtime::cuda

#endif  // VEOMNI_RUNTIME_KERNELS_CUDA_CUDNNATTENTION_H
