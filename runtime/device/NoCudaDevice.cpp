// A build without nvcc has no CUDA backend; asking for it says so.

#include "runtime/device/Device.h"

namespace veomni::runtime {

absl::StatusOr<std::unique_ptr<Device>> CreateCudaDevice(int, MatmulPrecision) {
  return absl::UnimplementedError(
      "this build has no CUDA backend: nvcc was not found when it was configured "
      "(set CMAKE_CUDA_COMPILER, or put /usr/local/cuda/bin on PATH, and reconfigure)");
}

bool HaveCudaBackend() { return false; }

}  // namespace veomni::runtime
