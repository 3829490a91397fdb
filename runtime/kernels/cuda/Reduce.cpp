// PLACEHOLDER: to be replaced by the real kernels.
#include "runtime/kernels/cuda/CudaKernels.h"

namespace veomni::runtime::cuda {

absl::Status ReduceSum(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("ReduceSum: not implemented on CUDA yet");
}
absl::Status ReduceMean(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("ReduceMean: not implemented on CUDA yet");
}
absl::Status ReduceMax(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("ReduceMax: not implemented on CUDA yet");
}
absl::Status Softmax(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("Softmax: not implemented on CUDA yet");
}
absl::Status LogSoftmax(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("LogSoftmax: not implemented on CUDA yet");
}

}  // namespace veomni::runtime::cuda
