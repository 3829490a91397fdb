// Every CUDA kernel, one host function each with the CPU kernels' names and
// semantics (runtime/kernels/cpu/CpuKernels.h documents them); Registry.cpp
// maps names to them. A kernel launches on the calling thread's CudaContext
// stream and returns once it is queued: errors in the data it reads (a token
// id past the vocabulary) are flagged in the context and reported when the
// device synchronizes. Operands are device pointers.

#ifndef VEOMNI_RUNTIME_KERNELS_CUDA_CUDAKERNELS_H
#define VEOMNI_RUNTIME_KERNELS_CUDA_CUDAKERNELS_H

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "runtime/base/Tensor.h"
#include "runtime/kernels/Kernel.h"

#define VEOMNI_DECLARE_CUDA_KERNEL(function)                                        \
  absl::Status function(const KernelAttrs& attrs, absl::Span<const TensorView> inputs, \
                        absl::Span<const TensorView> outputs)

namespace veomni::runtime::cuda {

// Elementwise.cpp
VEOMNI_DECLARE_CUDA_KERNEL(Add);
VEOMNI_DECLARE_CUDA_KERNEL(Sub);
VEOMNI_DECLARE_CUDA_KERNEL(Mul);
VEOMNI_DECLARE_CUDA_KERNEL(Div);
VEOMNI_DECLARE_CUDA_KERNEL(Pow);
VEOMNI_DECLARE_CUDA_KERNEL(Maximum);
VEOMNI_DECLARE_CUDA_KERNEL(Minimum);
VEOMNI_DECLARE_CUDA_KERNEL(Compare);
VEOMNI_DECLARE_CUDA_KERNEL(Select);
VEOMNI_DECLARE_CUDA_KERNEL(Neg);
VEOMNI_DECLARE_CUDA_KERNEL(Exp);
VEOMNI_DECLARE_CUDA_KERNEL(Log);
VEOMNI_DECLARE_CUDA_KERNEL(Sqrt);
VEOMNI_DECLARE_CUDA_KERNEL(Rsqrt);
VEOMNI_DECLARE_CUDA_KERNEL(Reciprocal);
VEOMNI_DECLARE_CUDA_KERNEL(Tanh);
VEOMNI_DECLARE_CUDA_KERNEL(Erf);
VEOMNI_DECLARE_CUDA_KERNEL(Cos);
VEOMNI_DECLARE_CUDA_KERNEL(Sin);
VEOMNI_DECLARE_CUDA_KERNEL(Sigmoid);
VEOMNI_DECLARE_CUDA_KERNEL(Silu);
VEOMNI_DECLARE_CUDA_KERNEL(Gelu);
VEOMNI_DECLARE_CUDA_KERNEL(IsNan);
// Cast.cpp
VEOMNI_DECLARE_CUDA_KERNEL(Cast);
// Matmul.cpp
VEOMNI_DECLARE_CUDA_KERNEL(Matmul);
// Reduce.cpp
VEOMNI_DECLARE_CUDA_KERNEL(ReduceSum);
VEOMNI_DECLARE_CUDA_KERNEL(ReduceSumSquares);
VEOMNI_DECLARE_CUDA_KERNEL(ReduceMean);
VEOMNI_DECLARE_CUDA_KERNEL(ReduceMax);
VEOMNI_DECLARE_CUDA_KERNEL(Softmax);
VEOMNI_DECLARE_CUDA_KERNEL(LogSoftmax);
// Shape.cpp
VEOMNI_DECLARE_CUDA_KERNEL(Reshape);
VEOMNI_DECLARE_CUDA_KERNEL(Transpose);
VEOMNI_DECLARE_CUDA_KERNEL(Slice);
VEOMNI_DECLARE_CUDA_KERNEL(Concat);
VEOMNI_DECLARE_CUDA_KERNEL(BroadcastTo);
VEOMNI_DECLARE_CUDA_KERNEL(Copy);
VEOMNI_DECLARE_CUDA_KERNEL(Fill);
// Model.cpp
VEOMNI_DECLARE_CUDA_KERNEL(Embedding);
VEOMNI_DECLARE_CUDA_KERNEL(RmsNorm);
VEOMNI_DECLARE_CUDA_KERNEL(Rope);
VEOMNI_DECLARE_CUDA_KERNEL(Swiglu);
VEOMNI_DECLARE_CUDA_KERNEL(Attention);
VEOMNI_DECLARE_CUDA_KERNEL(CrossEntropy);
// ModelGrad.cpp
VEOMNI_DECLARE_CUDA_KERNEL(RmsNormGrad);
VEOMNI_DECLARE_CUDA_KERNEL(RopeGrad);
VEOMNI_DECLARE_CUDA_KERNEL(SwigluGrad);
VEOMNI_DECLARE_CUDA_KERNEL(AttentionGrad);
VEOMNI_DECLARE_CUDA_KERNEL(CrossEntropyGrad);
VEOMNI_DECLARE_CUDA_KERNEL(EmbeddingGrad);
// Moe.cpp
VEOMNI_DECLARE_CUDA_KERNEL(TopK);
VEOMNI_DECLARE_CUDA_KERNEL(MoeGate);
VEOMNI_DECLARE_CUDA_KERNEL(MoeGateGrad);
VEOMNI_DECLARE_CUDA_KERNEL(MoeExperts);
VEOMNI_DECLARE_CUDA_KERNEL(MoeExpertsGrad);
// Optimizer.cpp
VEOMNI_DECLARE_CUDA_KERNEL(AdamW);

}  // namespace veomni::runtime::cuda

namespace veomni::runtime {
// The CUDA kernel registered under `name`, or nullptr if there is none.
const KernelFn* LookupCudaKernel(absl::string_view name);
// Every registered CUDA kernel name, in registration order.
std::vector<std::string> CudaKernelNames();
}  // namespace veomni::runtime

#undef VEOMNI_DECLARE_CUDA_KERNEL

#endif  // VEOMNI_RUNTIME_KERNELS_CUDA_CUDAKERNELS_H
