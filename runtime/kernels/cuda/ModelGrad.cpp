// PLACEHOLDER: to be replaced by the real kernels.
#include "runtime/kernels/cuda/CudaKernels.h"

namespace veomni::runtime::cuda {

absl::Status RmsNormGrad(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("RmsNormGrad: not implemented on CUDA yet");
}
absl::Status RopeGrad(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("RopeGrad: not implemented on CUDA yet");
}
absl::Status SwigluGrad(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("SwigluGrad: not implemented on CUDA yet");
}
absl::Status AttentionGrad(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("AttentionGrad: not implemented on CUDA yet");
}
absl::Status CrossEntropyGrad(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("CrossEntropyGrad: not implemented on CUDA yet");
}
absl::Status EmbeddingGrad(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("EmbeddingGrad: not implemented on CUDA yet");
}

}  // namespace veomni::runtime::cuda
