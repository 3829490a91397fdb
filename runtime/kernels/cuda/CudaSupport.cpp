#include "runtime/kernels/cuda/CudaSupport.h"

#include "absl/strings/str_cat.h"

namespace veomni::runtime::cuda {
namespace {
thread_local CudaContext* current_context = nullptr;
}  // namespace

CudaContext* CurrentCudaContext() { return current_context; }
void SetCurrentCudaContext(CudaContext* context) { current_context = context; }

absl::Status CudaStatus(cudaError_t error, absl::string_view what) {
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(error)));
}

absl::Status CublasStatus(cublasStatus_t status, absl::string_view what) {
  if (status == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat(what, ": cuBLAS status ", static_cast<int>(status)));
}

absl::Status LaunchStatus(absl::string_view kernel) {
  return CudaStatus(cudaGetLastError(), absl::StrCat(kernel, ": launch"));
}

absl::StatusOr<CudaContext*> RequireContext(absl::string_view kernel) {
  if (current_context) return current_context;
  return absl::FailedPreconditionError(
      absl::StrCat(kernel, ": no CUDA context on this thread (run it through a CUDA device)"));
}

StreamScratch::~StreamScratch() {
  if (base_ != nullptr) cudaFreeAsync(base_, context_->stream);
}

size_t StreamScratch::Reserve(size_t bytes) {
  size_t offset = total_;
  total_ += (bytes + 255) / 256 * 256;
  return offset;
}

absl::Status StreamScratch::Allocate() {
  return CudaStatus(cudaMallocAsync(&base_, total_ == 0 ? 256 : total_, context_->stream),
                    absl::StrCat(kernel_, ": ", total_, " bytes of scratch"));
}

}  // namespace veomni::runtime::cuda
