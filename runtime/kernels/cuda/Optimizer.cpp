// PLACEHOLDER: to be replaced by the real kernels.
#include "runtime/kernels/cuda/CudaKernels.h"

namespace veomni::runtime::cuda {

absl::Status AdamW(const KernelAttrs&, absl::Span<const TensorView>, absl::Span<const TensorView>) {
  return absl::UnimplementedError("AdamW: not implemented on CUDA yet");
}

}  // namespace veomni::runtime::cuda
