// PLACEHOLDER: to be replaced by the real kernels.
#include "runtime/kernels/cuda/CudaKernels.h"

namespace veomni::runtime::cuda {

absl::Status TopK(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("TopK: not implemented on CUDA yet");
}
absl::Status MoeGate(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("MoeGate: not implemented on CUDA yet");
}
absl::Status MoeGateGrad(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("MoeGateGrad: not implemented on CUDA yet");
}
absl::Status MoeExperts(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("MoeExperts: not implemented on CUDA yet");
}
absl::Status MoeExpertsGrad(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("MoeExpertsGrad: not implemented on CUDA yet");
}

}  // namespace veomni::runtime::cuda
