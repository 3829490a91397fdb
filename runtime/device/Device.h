// Where an executor keeps its tensors and runs its kernels: the host (the CPU
// backend) or one CUDA GPU. The executor plans the same arena on either; the
// device only allocates, copies and names the kernel for each launch.

#ifndef VEOMNI_RUNTIME_DEVICE_DEVICE_H
#define VEOMNI_RUNTIME_DEVICE_DEVICE_H

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/kernels/Kernel.h"

namespace veomni::runtime {

// Work recorded once and replayed as a whole (a CUDA graph).
class DeviceGraph {
 public:
  virtual ~DeviceGraph() = default;
  virtual absl::Status Replay() = 0;
};

class Device {
 public:
  virtual ~Device() = default;

  // "cpu", "cuda:0 (NVIDIA H100 80GB HBM3)".
  virtual std::string Describe() const = 0;
  // Whether the host may read and write this device's memory directly.
  virtual bool host_accessible() const = 0;

  // `bytes` of zeroed memory; ResourceExhausted naming `what` when it cannot.
  virtual absl::StatusOr<void*> Allocate(uint64_t bytes, absl::string_view what) = 0;
  virtual void Free(void* data) = 0;
  virtual absl::Status CopyToDevice(void* device, const void* host, uint64_t bytes) = 0;
  virtual absl::Status CopyToHost(void* host, const void* device, uint64_t bytes) = 0;
  // Within device memory; the ranges may overlap.
  virtual absl::Status CopyOnDevice(void* to, const void* from, uint64_t bytes) = 0;
  // Waits for every launched kernel and copy; reports what failed in them.
  virtual absl::Status Synchronize() = 0;
  // Bytes this device has handed out through Allocate, now and at most.
  virtual uint64_t allocated_bytes() const = 0;
  virtual uint64_t peak_allocated_bytes() const = 0;
  // The most stream-ordered scratch kernels held at once (cuDNN attention,
  // MoE, split reductions), which Allocate does not hand out; 0 on the host.
  virtual uint64_t peak_scratch_bytes() const { return 0; }

  // The kernel of this backend registered under `name`, or nullptr.
  virtual const KernelFn* LookupKernel(absl::string_view name) const = 0;
  // Makes this device's kernels run on the calling thread's context (a CUDA
  // stream and handles); the executor calls it before each function.
  virtual absl::Status Activate() = 0;
  // Runs `launch`, waits for its work, and returns the seconds the work took:
  // on a GPU the time between events around it on the stream (the host's
  // launch overhead left out, as in a replayed graph), on the host the wall
  // time. A failure of `launch` or of its work is returned instead.
  virtual absl::StatusOr<double> Time(const std::function<absl::Status()>& launch);
  // Records what `launch` queues on this device as a graph instead of running
  // it. Unimplemented on a device without graphs (the host).
  virtual absl::StatusOr<std::unique_ptr<DeviceGraph>> Capture(
      const std::function<absl::Status()>& launch) = 0;
};

// Memory of one device, freed with it.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { Reset(); }
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  static absl::StatusOr<DeviceBuffer> Allocate(Device& device, uint64_t bytes,
                                               absl::string_view what);
  uint8_t* data() const { return static_cast<uint8_t*>(data_); }
  uint64_t size() const { return bytes_; }
  void Reset();

 private:
  Device* device_ = nullptr;
  void* data_ = nullptr;
  uint64_t bytes_ = 0;
};

// The host. Kernels are the reference CPU kernels.
std::unique_ptr<Device> CreateCpuDevice();

// What matmul rounds its fp32 operands to on a GPU's tensor cores.
enum class MatmulPrecision { kBF16, kTF32, kF32 };
// "bf16", "tf32" or "fp32"; InvalidArgument naming the choices otherwise.
absl::StatusOr<MatmulPrecision> ParseMatmulPrecision(absl::string_view name);

// GPU `ordinal` of this process. Unimplemented when this build has no CUDA
// backend (nvcc was not found when it was configured); Unavailable when the
// GPU cannot be opened.
absl::StatusOr<std::unique_ptr<Device>> CreateCudaDevice(
    int ordinal, MatmulPrecision precision = MatmulPrecision::kBF16);
// Whether this build has the CUDA backend.
bool HaveCudaBackend();

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_DEVICE_DEVICE_H
