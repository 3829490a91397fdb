// Test helpers for the CUDA kernels: a GPU fixture that skips cleanly where
// there is no GPU, and RunCudaKernel, which runs a registered CUDA kernel on
// copies of host tensors so a test can compare it with its CPU twin
// (RunKernel from KernelTestUtil.h) on the same operands.

#ifndef VEOMNI_TEST_UNIT_RUNTIME_CUDA_CUDAKERNELTESTUTIL_H
#define VEOMNI_TEST_UNIT_RUNTIME_CUDA_CUDAKERNELTESTUTIL_H

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "runtime/base/Status.h"
#include "runtime/device/Device.h"
#include "runtime/kernels/cuda/CudaContext.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "test/unit/runtime/KernelTestUtil.h"

namespace veomni::runtime::testing {

// The GPU every test of the process shares; null (with the reason) if none.
inline Device* TestGpu(std::string* why_not = nullptr) {
  static absl::StatusOr<std::unique_ptr<Device>> device = CreateCudaDevice(0);
  if (!device.ok()) {
    if (why_not) *why_not = std::string(device.status().message());
    return nullptr;
  }
  return device->get();
}

// Tests of this fixture run only where a GPU is; elsewhere they are skipped
// (reported as such by ctest and GoogleTest), never passed.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why_not;
    gpu_ = TestGpu(&why_not);
    if (!gpu_) GTEST_SKIP() << "no GPU: " << why_not;
    ASSERT_TRUE(gpu_->Activate().ok());
  }
  Device* gpu_ = nullptr;
};

// Sets the test GPU's compute precision for matmul and attention for the
// scope's lifetime.
class ScopedPrecision {
 public:
  explicit ScopedPrecision(cuda::MatmulPrecision precision)
      : context_(cuda::CurrentCudaContext()) {
    if (context_) {
      saved_ = context_->matmul_precision;
      context_->matmul_precision = precision;
    }
  }
  ~ScopedPrecision() {
    if (context_) context_->matmul_precision = saved_;
  }

 private:
  cuda::CudaContext* context_;
  cuda::MatmulPrecision saved_ = cuda::MatmulPrecision::kBF16;
};

// Runs CUDA kernel `name` on GPU copies of `inputs` and `outputs` (outputs
// start as the host tensors hold them, for kernels that accumulate) and
// copies the outputs back. Errors of the kernel and of the data it read are
// returned.
inline absl::Status RunCudaKernel(const std::string& name, const KernelAttrs& attrs,
                                  const std::vector<const OwnedTensor*>& inputs,
                                  const std::vector<OwnedTensor*>& outputs) {
  Device* gpu = TestGpu();
  if (!gpu) return absl::UnavailableError("no GPU");
  const KernelFn* kernel = LookupCudaKernel(name);
  if (!kernel) return absl::NotFoundError("no CUDA kernel named " + name);
  VEOMNI_RETURN_IF_ERROR(gpu->Activate());
  std::vector<DeviceBuffer> buffers;
  std::vector<TensorView> input_views, output_views;
  auto upload = [&](const OwnedTensor& tensor, std::vector<TensorView>& views) -> absl::Status {
    TensorView view = tensor.View();
    VEOMNI_ASSIGN_OR_RETURN(DeviceBuffer buffer,
                            DeviceBuffer::Allocate(*gpu, view.Bytes(), "a test operand"));
    VEOMNI_RETURN_IF_ERROR(gpu->CopyToDevice(buffer.data(), view.data, view.Bytes()));
    view.data = buffer.data();
    views.push_back(view);
    buffers.push_back(std::move(buffer));
    return absl::OkStatus();
  };
  for (const OwnedTensor* input : inputs) VEOMNI_RETURN_IF_ERROR(upload(*input, input_views));
  for (OwnedTensor* output : outputs) VEOMNI_RETURN_IF_ERROR(upload(*output, output_views));
  VEOMNI_RETURN_IF_ERROR((*kernel)(attrs, input_views, output_views));
  VEOMNI_RETURN_IF_ERROR(gpu->Synchronize());
  for (size_t i = 0; i < outputs.size(); ++i) {
    VEOMNI_RETURN_IF_ERROR(gpu->CopyToHost(outputs[i]->View().data, output_views[i].data,
                                           output_views[i].Bytes()));
  }
  return absl::OkStatus();
}

// Runs the CPU and the CUDA kernel `name` on the same operands; each gets its
// own copy of the outputs (as `outputs` hold them on entry). Fails the test
// when either kernel fails.
struct TwinResult {
  std::vector<OwnedTensor> cpu, gpu;
};
inline TwinResult RunTwins(const std::string& name, const KernelAttrs& attrs,
                           const std::vector<const OwnedTensor*>& inputs,
                           const std::vector<const OwnedTensor*>& outputs) {
  TwinResult result;
  for (const OwnedTensor* output : outputs) {
    result.cpu.push_back(*output);
    result.gpu.push_back(*output);
  }
  std::vector<OwnedTensor*> cpu_outputs, gpu_outputs;
  for (size_t i = 0; i < outputs.size(); ++i) {
    cpu_outputs.push_back(&result.cpu[i]);
    gpu_outputs.push_back(&result.gpu[i]);
  }
  absl::Status cpu_status = RunKernel(name, attrs, inputs, cpu_outputs);
  EXPECT_TRUE(cpu_status.ok()) << name << " on the CPU: " << cpu_status;
  absl::Status gpu_status = RunCudaKernel(name, attrs, inputs, gpu_outputs);
  EXPECT_TRUE(gpu_status.ok()) << name << " on the GPU: " << gpu_status;
  return result;
}

}  // namespace veomni::runtime::testing

#endif  // VEOMNI_TEST_UNIT_RUNTIME_CUDA_CUDAKERNELTESTUTIL_H
