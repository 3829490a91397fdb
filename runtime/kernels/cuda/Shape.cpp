// PLACEHOLDER: to be replaced by the real kernels.
#include "runtime/kernels/cuda/CudaKernels.h"

namespace veomni::runtime::cuda {

absl::Status Reshape(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("Reshape: not implemented on CUDA yet");
}
absl::Status Transpose(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("Transpose: not implemented on CUDA yet");
}
absl::Status Slice(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("Slice: not implemented on CUDA yet");
}
absl::Status Concat(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("Concat: not implemented on CUDA yet");
}
absl::Status BroadcastTo(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("BroadcastTo: not implemented on CUDA yet");
}
absl::Status Copy(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("Copy: not implemented on CUDA yet");
}
absl::Status Fill(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("Fill: not implemented on CUDA yet");
}

}  // namespace veomni::runtime::cuda
