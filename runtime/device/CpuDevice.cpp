#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "runtime/base/Status.h"
#include "runtime/device/Device.h"

namespace veomni::runtime {

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    Reset();
    device_ = other.device_;
    data_ = other.data_;
    bytes_ = other.bytes_;
    other.device_ = nullptr;
    other.data_ = nullptr;
    other.bytes_ = 0;
  }
  return *this;
}

absl::StatusOr<double> Device::Time(const std::function<absl::Status()>& launch) {
  auto start = std::chrono::steady_clock::now();
  VEOMNI_RETURN_IF_ERROR(launch());
  VEOMNI_RETURN_IF_ERROR(Synchronize());
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

absl::StatusOr<DeviceBuffer> DeviceBuffer::Allocate(Device& device, uint64_t bytes,
                                                    absl::string_view what) {
  DeviceBuffer buffer;
  absl::StatusOr<void*> data = device.Allocate(bytes, what);
  if (!data.ok()) return data.status();
  buffer.device_ = &device;
  buffer.data_ = *data;
  buffer.bytes_ = bytes;
  return buffer;
}

void DeviceBuffer::Reset() {
  if (device_ && data_) device_->Free(data_);
  device_ = nullptr;
  data_ = nullptr;
  bytes_ = 0;
}

namespace {

class CpuDevice final : public Device {
 public:
  std::string Describe() const override { return "cpu"; }
  bool host_accessible() const override { return true; }

  absl::StatusOr<void*> Allocate(uint64_t bytes, absl::string_view what) override {
    // calloc(0) may return null; every buffer gets a distinct address.
    void* data = std::calloc(bytes == 0 ? 1 : bytes, 1);
    if (!data) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot allocate ", bytes, " bytes for ", what));
    }
    sizes_[data] = bytes;
    allocated_ += bytes;
    peak_ = std::max(peak_, allocated_);
    return data;
  }
  void Free(void* data) override {
    if (auto it = sizes_.find(data); it != sizes_.end()) {
      allocated_ -= it->second;
      sizes_.erase(it);
    }
    std::free(data);
  }
  uint64_t allocated_bytes() const override { return allocated_; }
  uint64_t peak_allocated_bytes() const override { return peak_; }
  absl::Status CopyToDevice(void* device, const void* host, uint64_t bytes) override {
    std::memcpy(device, host, bytes);
    return absl::OkStatus();
  }
  absl::Status CopyToHost(void* host, const void* device, uint64_t bytes) override {
    std::memcpy(host, device, bytes);
    return absl::OkStatus();
  }
  absl::Status CopyOnDevice(void* to, const void* from, uint64_t bytes) override {
    std::memmove(to, from, bytes);
    return absl::OkStatus();
  }
  absl::Status Synchronize() override { return absl::OkStatus(); }
  const KernelFn* LookupKernel(absl::string_view name) const override {
    return LookupCpuKernel(name);
  }
  absl::Status Activate() override { return absl::OkStatus(); }
  absl::StatusOr<std::unique_ptr<DeviceGraph>> Capture(
      const std::function<absl::Status()>&) override {
    return absl::UnimplementedError("the host device has no graphs");
  }

 private:
  std::unordered_map<void*, uint64_t> sizes_;
  uint64_t allocated_ = 0, peak_ = 0;
};

}  // namespace

absl::StatusOr<MatmulPrecision> ParseMatmulPrecision(absl::string_view name) {
  if (name == "bf16") return MatmulPrecision::kBF16;
  if (name == "tf32") return MatmulPrecision::kTF32;
  if (name == "fp32") return MatmulPrecision::kF32;
  return absl::InvalidArgumentError(
      absl::StrCat("matmul precision '", name, "': expected bf16, tf32 or fp32"));
}

std::unique_ptr<Device> CreateCpuDevice() { return std::make_unique<CpuDevice>(); }

}  // namespace veomni::runtime
