// The CUDA device: allocation, copies (overlapping ones too), and the clean
// refusal where no GPU is visible.

#include <cstring>
#include <numeric>
#include <vector>

#include "test/unit/runtime/cuda/CudaKernelTestUtil.h"

namespace veomni::runtime::testing {
namespace {

TEST(CudaDeviceOpen, FailsWithAReasonOrOpens) {
  absl::StatusOr<std::unique_ptr<Device>> device = CreateCudaDevice(0);
  if (!device.ok()) {
    // Without a GPU (or its driver) the error says so; nothing crashes.
    EXPECT_EQ(device.status().code(), absl::StatusCode::kUnavailable) << device.status();
    EXPECT_NE(device.status().message().find("GPU"), std::string::npos) << device.status();
    return;
  }
  EXPECT_NE((*device)->Describe().find("cuda:0"), std::string::npos);
  EXPECT_FALSE((*device)->host_accessible());
}

TEST(CudaDeviceOpen, RejectsAMissingOrdinal) {
  absl::StatusOr<std::unique_ptr<Device>> device = CreateCudaDevice(1 << 20);
  ASSERT_FALSE(device.ok());
  EXPECT_EQ(device.status().code(), absl::StatusCode::kUnavailable) << device.status();
}

TEST_F(GpuTest, CopiesRoundTripAndMemoryStartsZeroed) {
  std::vector<uint8_t> host(1000003);
  std::iota(host.begin(), host.end(), 0);
  auto buffer = DeviceBuffer::Allocate(*gpu_, host.size(), "test");
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  std::vector<uint8_t> back(host.size(), 7);
  ASSERT_TRUE(gpu_->CopyToHost(back.data(), buffer->data(), back.size()).ok());
  EXPECT_EQ(back, std::vector<uint8_t>(host.size(), 0));
  ASSERT_TRUE(gpu_->CopyToDevice(buffer->data(), host.data(), host.size()).ok());
  ASSERT_TRUE(gpu_->CopyToHost(back.data(), buffer->data(), back.size()).ok());
  EXPECT_EQ(back, host);
}

TEST_F(GpuTest, OverlappingCopiesActLikeMemmove) {
  std::vector<uint8_t> host(4096);
  std::iota(host.begin(), host.end(), 0);
  auto buffer = DeviceBuffer::Allocate(*gpu_, host.size(), "test");
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  ASSERT_TRUE(gpu_->CopyToDevice(buffer->data(), host.data(), host.size()).ok());
  ASSERT_TRUE(gpu_->CopyOnDevice(buffer->data() + 100, buffer->data(), 3000).ok());
  std::memmove(host.data() + 100, host.data(), 3000);
  std::vector<uint8_t> back(host.size());
  ASSERT_TRUE(gpu_->CopyToHost(back.data(), buffer->data(), back.size()).ok());
  EXPECT_EQ(back, host);
}

TEST_F(GpuTest, AnImpossibleAllocationIsAnError) {
  auto buffer = DeviceBuffer::Allocate(*gpu_, uint64_t{1} << 50, "a petabyte");
  ASSERT_FALSE(buffer.ok());
  EXPECT_EQ(buffer.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(buffer.status().message().find("a petabyte"), std::string::npos);
  // The device stays usable.
  EXPECT_TRUE(gpu_->Synchronize().ok());
}

}  // namespace
}  // namespace veomni::runtime::testing
