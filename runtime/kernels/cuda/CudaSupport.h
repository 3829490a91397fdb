// Status helpers for the host side of the CUDA kernels (compiled by the C++
// compiler, not nvcc): CUDA and cuBLAS errors as absl::Status, and the checks
// every kernel wrapper makes before it launches.

#ifndef VEOMNI_RUNTIME_KERNELS_CUDA_CUDASUPPORT_H
#define VEOMNI_RUNTIME_KERNELS_CUDA_CUDASUPPORT_H

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/kernels/cuda/CudaContext.h"

namespace veomni::runtime::cuda {

// Internal "<what>: <cudaGetErrorString>" unless `error` is cudaSuccess.
absl::Status CudaStatus(cudaError_t error, absl::string_view what);
absl::Status CublasStatus(cublasStatus_t status, absl::string_view what);
// The launch error of the last kernel (a bad configuration), named `kernel`.
absl::Status LaunchStatus(absl::string_view kernel);
// The calling thread's context, or FailedPrecondition naming `kernel`.
absl::StatusOr<CudaContext*> RequireContext(absl::string_view kernel);

// Stream-ordered scratch for one kernel launch, carved into 256-byte aligned
// pieces: allocated and freed on the context's stream, so nothing waits and
// CUDA graph capture records both. Reserve every piece, Allocate once, then
// read the pieces' addresses with At.
class StreamScratch {
 public:
  StreamScratch(CudaContext* context, absl::string_view kernel)
      : context_(context), kernel_(kernel) {}
  ~StreamScratch();
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;

  // The offset of a new piece of `bytes`.
  size_t Reserve(size_t bytes);
  absl::Status Allocate();
  void* At(size_t offset) const { return static_cast<char*>(base_) + offset; }

 private:
  CudaContext* context_;
  absl::string_view kernel_;
  void* base_ = nullptr;
  size_t total_ = 0;
};

}  // namespace veomni::runtime::cuda

#endif  // VEOMNI_RUNTIME_KERNELS_CUDA_CUDASUPPORT_H
