// The state CUDA kernels run with: one stream, the cuBLASLt handle and its
// workspace, and a device word where kernels flag bad data (a token id past
// the vocabulary) that the executor reports at the next synchronization.
// Free of absl so that .cu files include it too.

#ifndef VEOMNI_RUNTIME_KERNELS_CUDA_CUDACONTEXT_H
#define VEOMNI_RUNTIME_KERNELS_CUDA_CUDACONTEXT_H

#include <cstddef>
#include <cstdint>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "runtime/kernels/MatmulCopies.h"

namespace veomni::runtime::cuda {

// Bits of CudaContext::error_flags, set by kernels with atomicOr.
enum DataErrorFlag : unsigned {
  kTokenIdOutOfRange = 1u << 0,  // embedding(_grad): id < 0 or >= rows
  kLabelOutOfRange = 1u << 1,    // cross_entropy(_grad): label outside [0, V) and not ignored
  kIndexOutOfRange = 1u << 2,    // moe routing: expert index outside [0, E)
  kIntegerDivisionByZero = 1u << 3,  // div on integers with a zero divisor
  kBadShapeData = 1u << 4,       // data that describes shapes is inconsistent (cu_seqlens)
};

// What matmul's fp32 operands are rounded to inside cuBLASLt: bf16 (the
// training default, bf16 tensor-core compute with fp32 accumulation), tf32,
// or none (fp32 throughout, for comparisons with the CPU).
enum class MatmulPrecision { kBF16, kTF32, kF32 };

// cuDNN's handle and built attention graphs (CudnnAttention.cpp), made on
// first use.
struct CudnnState;

struct CudaContext {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasLtHandle_t cublaslt = nullptr;
  void* workspace = nullptr;  // for cuBLASLt
  size_t workspace_bytes = 0;
  unsigned* error_flags = nullptr;  // one device word of DataErrorFlag bits
  // Also chooses attention's kernel: cuDNN's fused attention computes in
  // bf16, the reference kernel in f32 (CudnnAttention.h).
  MatmulPrecision matmul_precision = MatmulPrecision::kBF16;
  // Scratch a bf16 matmul's operand copies may take (MatmulCopies.h); tests
  // lower it to make small products run in pieces.
  int64_t matmul_copy_bytes = kMatmulCopyBytes;
  CudnnState* cudnn = nullptr;
};

// The context of the calling thread, set by the CUDA device before it runs
// kernels; null on a thread that has none.
CudaContext* CurrentCudaContext();
void SetCurrentCudaContext(CudaContext* context);

}  // namespace veomni::runtime::cuda

#endif  // VEOMNI_RUNTIME_KERNELS_CUDA_CUDACONTEXT_H
