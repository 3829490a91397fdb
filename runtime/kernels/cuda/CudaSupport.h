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

}  // namespace veomni::runtime::cuda

#endif  // VEOMNI_RUNTIME_KERNELS_CUDA_CUDASUPPORT_H
