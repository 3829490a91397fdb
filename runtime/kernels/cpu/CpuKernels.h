// Every CPU kernel, one function each; Registry.cpp maps names to them. Each
// family's semantics are documented at its definition.

#ifndef VEOMNI_RUNTIME_KERNELS_CPU_CPUKERNELS_H
#define VEOMNI_RUNTIME_KERNELS_CPU_CPUKERNELS_H

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "runtime/base/Tensor.h"
#include "runtime/kernels/Kernel.h"

#define VEOMNI_DECLARE_CPU_KERNEL(function)                             \
  absl::Status function(const KernelAttrs& attrs,                     \
                        absl::Span<const TensorView> inputs, \
                        absl::Span<const TensorView> outputs)

namespace veomni::runtime::cpu {

// Elementwise.cpp
VEOMNI_DECLARE_CPU_KERNEL(Add);
VEOMNI_DECLARE_CPU_KERNEL(Sub);
VEOMNI_DECLARE_CPU_KERNEL(Mul);
VEOMNI_DECLARE_CPU_KERNEL(Div);
VEOMNI_DECLARE_CPU_KERNEL(Pow);
VEOMNI_DECLARE_CPU_KERNEL(Maximum);
VEOMNI_DECLARE_CPU_KERNEL(Minimum);
VEOMNI_DECLARE_CPU_KERNEL(Compare);
VEOMNI_DECLARE_CPU_KERNEL(Select);
VEOMNI_DECLARE_CPU_KERNEL(Neg);
VEOMNI_DECLARE_CPU_KERNEL(Exp);
VEOMNI_DECLARE_CPU_KERNEL(Log);
VEOMNI_DECLARE_CPU_KERNEL(Sqrt);
VEOMNI_DECLARE_CPU_KERNEL(Rsqrt);
VEOMNI_DECLARE_CPU_KERNEL(Reciprocal);
VEOMNI_DECLARE_CPU_KERNEL(Tanh);
VEOMNI_DECLARE_CPU_KERNEL(Erf);
VEOMNI_DECLARE_CPU_KERNEL(Cos);
VEOMNI_DECLARE_CPU_KERNEL(Sin);
VEOMNI_DECLARE_CPU_KERNEL(Sigmoid);
VEOMNI_DECLARE_CPU_KERNEL(Silu);
VEOMNI_DECLARE_CPU_KERNEL(Gelu);
VEOMNI_DECLARE_CPU_KERNEL(IsNan);

// Cast.cpp
VEOMNI_DECLARE_CPU_KERNEL(Cast);

// Matmul.cpp
VEOMNI_DECLARE_CPU_KERNEL(Matmul);

// Reduce.cpp
VEOMNI_DECLARE_CPU_KERNEL(ReduceSum);
VEOMNI_DECLARE_CPU_KERNEL(ReduceSumSquares);
VEOMNI_DECLARE_CPU_KERNEL(ReduceMean);
VEOMNI_DECLARE_CPU_KERNEL(ReduceMax);
VEOMNI_DECLARE_CPU_KERNEL(Softmax);
VEOMNI_DECLARE_CPU_KERNEL(LogSoftmax);

// Shape.cpp
VEOMNI_DECLARE_CPU_KERNEL(Reshape);
VEOMNI_DECLARE_CPU_KERNEL(Transpose);
VEOMNI_DECLARE_CPU_KERNEL(Slice);
VEOMNI_DECLARE_CPU_KERNEL(Concat);
VEOMNI_DECLARE_CPU_KERNEL(BroadcastTo);
VEOMNI_DECLARE_CPU_KERNEL(Copy);
VEOMNI_DECLARE_CPU_KERNEL(Fill);

// Model.cpp
VEOMNI_DECLARE_CPU_KERNEL(Embedding);
VEOMNI_DECLARE_CPU_KERNEL(RmsNorm);
VEOMNI_DECLARE_CPU_KERNEL(Rope);
VEOMNI_DECLARE_CPU_KERNEL(Swiglu);
VEOMNI_DECLARE_CPU_KERNEL(Attention);
VEOMNI_DECLARE_CPU_KERNEL(CrossEntropy);

// ModelGrad.cpp
VEOMNI_DECLARE_CPU_KERNEL(RmsNormGrad);
VEOMNI_DECLARE_CPU_KERNEL(RopeGrad);
VEOMNI_DECLARE_CPU_KERNEL(SwigluGrad);
VEOMNI_DECLARE_CPU_KERNEL(AttentionGrad);
VEOMNI_DECLARE_CPU_KERNEL(CrossEntropyGrad);
VEOMNI_DECLARE_CPU_KERNEL(EmbeddingGrad);

// Moe.cpp
VEOMNI_DECLARE_CPU_KERNEL(TopK);
VEOMNI_DECLARE_CPU_KERNEL(MoeGate);
VEOMNI_DECLARE_CPU_KERNEL(MoeGateGrad);
VEOMNI_DECLARE_CPU_KERNEL(MoeExperts);
VEOMNI_DECLARE_CPU_KERNEL(MoeExpertsGrad);
// The two kernels above with y (resp. x_grad) left in double, unrounded:
// expert parallelism combines the owners' rows in double and rounds once,
// as one rank does. `y` / `x_grad` hold T * H doubles.
absl::Status MoeExpertsInDouble(absl::Span<const TensorView> inputs, double* y);
absl::Status MoeExpertsGradInDouble(absl::Span<const TensorView> inputs,
                                    absl::Span<const TensorView> outputs, double* x_grad);

// Optimizer.cpp
VEOMNI_DECLARE_CPU_KERNEL(AdamW);

}  // namespace veomni::runtime::cpu

#undef VEOMNI_DECLARE_CPU_KERNEL

#endif  // VEOMNI_RUNTIME_KERNELS_CPU_CPUKERNELS_H
