// One CUDA GPU: memory from cudaMalloc, every copy and kernel on one stream,
// cuBLASLt with its workspace, and the word in which kernels flag bad data.

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "runtime/base/Status.h"
#include "runtime/device/Device.h"
#include "runtime/kernels/cuda/CudaContext.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/CudnnAttention.h"
#include "runtime/kernels/cuda/CudaSupport.h"

namespace veomni::runtime {
namespace {

using cuda::CudaStatus;

// cuBLASLt's recommended workspace on Hopper.
constexpr size_t kCublasLtWorkspaceBytes = 32u << 20;

class CudaGraph final : public DeviceGraph {
 public:
  CudaGraph(cudaGraphExec_t exec, cudaStream_t stream) : exec_(exec), stream_(stream) {}
  ~CudaGraph() override { cudaGraphExecDestroy(exec_); }
  absl::Status Replay() override {
    return CudaStatus(cudaGraphLaunch(exec_, stream_), "replaying a CUDA graph");
  }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
};

class CudaDevice final : public Device {
 public:
  ~CudaDevice() override {
    cudaSetDevice(context_.device);
    if (context_.stream) cudaStreamSynchronize(context_.stream);
    cuda::DestroyCudnnState(&context_);
    if (context_.cublaslt) cublasLtDestroy(context_.cublaslt);
    if (context_.workspace) cudaFree(context_.workspace);
    if (context_.error_flags) cudaFree(context_.error_flags);
    if (timing_start_) cudaEventDestroy(timing_start_);
    if (timing_stop_) cudaEventDestroy(timing_stop_);
    if (context_.stream) cudaStreamDestroy(context_.stream);
    if (cuda::CurrentCudaContext() == &context_) cuda::SetCurrentCudaContext(nullptr);
  }

  static absl::StatusOr<std::unique_ptr<Device>> Open(int ordinal, MatmulPrecision precision) {
    int count = 0;
    cudaError_t error = cudaGetDeviceCount(&count);
    if (error != cudaSuccess || count == 0) {
      return absl::UnavailableError(absl::StrCat(
          "no CUDA GPU is visible to this process",
          error != cudaSuccess ? absl::StrCat(" (", cudaGetErrorString(error), ")") : ""));
    }
    if (ordinal < 0 || ordinal >= count) {
      return absl::UnavailableError(
          absl::StrCat("CUDA GPU ", ordinal, " does not exist; this process sees ", count));
    }
    auto device = std::unique_ptr<CudaDevice>(new CudaDevice());
    cuda::CudaContext& context = device->context_;
    context.device = ordinal;
    context.matmul_precision = precision == MatmulPrecision::kBF16   ? cuda::MatmulPrecision::kBF16
                               : precision == MatmulPrecision::kTF32 ? cuda::MatmulPrecision::kTF32
                                                                     : cuda::MatmulPrecision::kF32;
    VEOMNI_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(ordinal), "cudaSetDevice"));
    cudaDeviceProp properties;
    VEOMNI_RETURN_IF_ERROR(
        CudaStatus(cudaGetDeviceProperties(&properties, ordinal), "cudaGetDeviceProperties"));
    device->description_ = absl::StrCat("cuda:", ordinal, " (", properties.name, ")");
    VEOMNI_RETURN_IF_ERROR(CudaStatus(
        cudaStreamCreateWithFlags(&context.stream, cudaStreamNonBlocking), "cudaStreamCreate"));
    VEOMNI_RETURN_IF_ERROR(cuda::CublasStatus(cublasLtCreate(&context.cublaslt), "cublasLtCreate"));
    VEOMNI_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&context.workspace, kCublasLtWorkspaceBytes),
                                      "cuBLASLt workspace"));
    context.workspace_bytes = kCublasLtWorkspaceBytes;
    // Counted with what Allocate hands out, as the compiler's plan counts it.
    device->allocated_ = device->peak_ = kCublasLtWorkspaceBytes;
    VEOMNI_RETURN_IF_ERROR(
        CudaStatus(cudaMalloc(reinterpret_cast<void**>(&context.error_flags), sizeof(unsigned)), "error flags"));
    VEOMNI_RETURN_IF_ERROR(
        CudaStatus(cudaMemset(context.error_flags, 0, sizeof(unsigned)), "error flags"));
    // Kernel scratch comes from the default pool when a function runs
    // eagerly. By default the pool hands its memory back to the driver at
    // every synchronization, so each eager step (an expert-parallel one, a
    // profiled one) mapped its scratch again; the pool keeps it instead, and
    // Capture empties it before a graph takes its own.
    cudaMemPool_t pool;
    VEOMNI_RETURN_IF_ERROR(
        CudaStatus(cudaDeviceGetDefaultMemPool(&pool, ordinal), "the default memory pool"));
    uint64_t keep_all = UINT64_MAX;
    VEOMNI_RETURN_IF_ERROR(CudaStatus(
        cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all),
        "the default memory pool"));
    return std::unique_ptr<Device>(std::move(device));
  }

  std::string Describe() const override { return description_; }
  bool host_accessible() const override { return false; }

  absl::StatusOr<void*> Allocate(uint64_t bytes, absl::string_view what) override {
    VEOMNI_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(context_.device), "cudaSetDevice"));
    void* data = nullptr;
    cudaError_t error = cudaMalloc(&data, bytes == 0 ? 1 : bytes);
    if (error != cudaSuccess) {
      cudaGetLastError();  // an allocation failure is not sticky; clear it
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot allocate ", bytes, " bytes of GPU memory for ", what, " on ",
                       description_, " (", free_bytes, " of ", total_bytes,
                       " bytes free): ", cudaGetErrorString(error)));
    }
    error = cudaMemsetAsync(data, 0, bytes, context_.stream);
    if (error != cudaSuccess) {
      cudaFree(data);
      return CudaStatus(error, absl::StrCat("zeroing ", what));
    }
    sizes_[data] = bytes;
    allocated_ += bytes;
    peak_ = std::max(peak_, allocated_);
    return data;
  }
  uint64_t allocated_bytes() const override { return allocated_; }
  uint64_t peak_allocated_bytes() const override { return peak_; }
  // Kernels' stream-ordered scratch lives in the device's default pool when
  // run directly and in graph memory when replayed from a CUDA graph; a
  // function runs one way at a time, so the larger high-water mark is the one
  // that adds to the allocations.
  uint64_t peak_scratch_bytes() const override {
    uint64_t pool_high = 0, graph_high = 0;
    cudaMemPool_t pool;
    if (cudaDeviceGetDefaultMemPool(&pool, context_.device) == cudaSuccess) {
      cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &pool_high);
    }
    cudaDeviceGetGraphMemAttribute(context_.device, cudaGraphMemAttrUsedMemHigh, &graph_high);
    cudaGetLastError();  // the figures are a report; a failed query reads as 0
    return std::max(pool_high, graph_high);
  }
  void Free(void* data) override {
    if (auto it = sizes_.find(data); it != sizes_.end()) {
      allocated_ -= it->second;
      sizes_.erase(it);
    }
    cudaSetDevice(context_.device);
    // Freed memory may still be read by queued kernels.
    cudaStreamSynchronize(context_.stream);
    cudaFree(data);
  }
  absl::Status CopyToDevice(void* device, const void* host, uint64_t bytes) override {
    return CudaStatus(
        cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, context_.stream),
        "copy to the GPU");
  }
  absl::Status CopyToHost(void* host, const void* device, uint64_t bytes) override {
    VEOMNI_RETURN_IF_ERROR(CudaStatus(
        cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, context_.stream),
        "copy from the GPU"));
    // The host reads it next.
    return Synchronize();
  }
  absl::Status CopyOnDevice(void* to, const void* from, uint64_t bytes) override {
    if (to == from || bytes == 0) return absl::OkStatus();
    const auto* source = static_cast<const uint8_t*>(from);
    auto* target = static_cast<uint8_t*>(to);
    // cudaMemcpy requires disjoint ranges. Overlapping ones move in chunks no
    // longer than the distance, in the direction that reads each byte before
    // it is overwritten (as memmove); no allocation, so graph capture works.
    if (source < target + bytes && target < source + bytes) {
      const uint64_t distance = source > target ? source - target : target - source;
      if (bytes / distance > 4096) {
        return absl::UnimplementedError(absl::StrCat(
            "an overlapping copy of ", bytes, " bytes shifted by ", distance,
            " would take more than 4096 steps on the GPU"));
      }
      for (uint64_t done = 0; done < bytes;) {
        const uint64_t chunk = std::min(distance, bytes - done);
        // Forward when moving down, backward (from the end) when moving up.
        const uint64_t at = source > target ? done : bytes - done - chunk;
        VEOMNI_RETURN_IF_ERROR(CudaStatus(
            cudaMemcpyAsync(target + at, source + at, chunk, cudaMemcpyDeviceToDevice,
                            context_.stream),
            "copy on the GPU"));
        done += chunk;
      }
      return absl::OkStatus();
    }
    return CudaStatus(
        cudaMemcpyAsync(to, from, bytes, cudaMemcpyDeviceToDevice, context_.stream),
        "copy on the GPU");
  }
  absl::StatusOr<double> Time(const std::function<absl::Status()>& launch) override {
    if (!timing_start_) {
      VEOMNI_RETURN_IF_ERROR(CudaStatus(cudaEventCreate(&timing_start_), "timing event"));
      VEOMNI_RETURN_IF_ERROR(CudaStatus(cudaEventCreate(&timing_stop_), "timing event"));
    }
    VEOMNI_RETURN_IF_ERROR(
        CudaStatus(cudaEventRecord(timing_start_, context_.stream), "timing event"));
    VEOMNI_RETURN_IF_ERROR(launch());
    VEOMNI_RETURN_IF_ERROR(
        CudaStatus(cudaEventRecord(timing_stop_, context_.stream), "timing event"));
    VEOMNI_RETURN_IF_ERROR(Synchronize());
    float milliseconds = 0;
    VEOMNI_RETURN_IF_ERROR(CudaStatus(
        cudaEventElapsedTime(&milliseconds, timing_start_, timing_stop_), "timing event"));
    return milliseconds / 1000.0;
  }

  absl::Status Synchronize() override {
    VEOMNI_RETURN_IF_ERROR(
        CudaStatus(cudaStreamSynchronize(context_.stream), "a kernel on the GPU failed"));
    unsigned flags = 0;
    VEOMNI_RETURN_IF_ERROR(CudaStatus(
        cudaMemcpy(&flags, context_.error_flags, sizeof(flags), cudaMemcpyDeviceToHost),
        "reading the data-error flags"));
    if (flags == 0) return absl::OkStatus();
    cudaMemset(context_.error_flags, 0, sizeof(unsigned));
    std::string what;
    if (flags & cuda::kTokenIdOutOfRange) what += " a token id outside the embedding table;";
    if (flags & cuda::kLabelOutOfRange) what += " a label outside the vocabulary;";
    if (flags & cuda::kIndexOutOfRange) what += " an expert index outside [0, experts);";
    if (flags & cuda::kIntegerDivisionByZero) what += " an integer division by zero;";
    if (flags & cuda::kBadShapeData) what += " inconsistent sequence lengths (cu_seqlens);";
    return absl::InvalidArgumentError(
        absl::StrCat("kernels on ", description_, " read bad data:", what));
  }
  const KernelFn* LookupKernel(absl::string_view name) const override {
    return LookupCudaKernel(name);
  }
  absl::Status Activate() override {
    cuda::SetCurrentCudaContext(&context_);
    return CudaStatus(cudaSetDevice(context_.device), "cudaSetDevice");
  }
  absl::StatusOr<std::unique_ptr<DeviceGraph>> Capture(
      const std::function<absl::Status()>& launch) override {
    VEOMNI_RETURN_IF_ERROR(Activate());
    // The graph's scratch comes from graph memory: what the default pool
    // kept from eager runs would be held twice.
    VEOMNI_RETURN_IF_ERROR(Synchronize());
    cudaMemPool_t pool;
    VEOMNI_RETURN_IF_ERROR(CudaStatus(cudaDeviceGetDefaultMemPool(&pool, context_.device),
                                      "the default memory pool"));
    VEOMNI_RETURN_IF_ERROR(CudaStatus(cudaMemPoolTrimTo(pool, 0), "trimming the memory pool"));
    VEOMNI_RETURN_IF_ERROR(CudaStatus(
        cudaStreamBeginCapture(context_.stream, cudaStreamCaptureModeThreadLocal),
        "starting a CUDA graph capture"));
    absl::Status launched = launch();
    cudaGraph_t graph = nullptr;
    cudaError_t ended = cudaStreamEndCapture(context_.stream, &graph);
    if (!launched.ok()) {
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      return launched;
    }
    VEOMNI_RETURN_IF_ERROR(CudaStatus(
        ended, "capturing a CUDA graph (run with --cuda_graphs=false to find the culprit)"));
    cudaGraphExec_t exec = nullptr;
    cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    VEOMNI_RETURN_IF_ERROR(CudaStatus(instantiated, "instantiating a CUDA graph"));
    return std::unique_ptr<DeviceGraph>(new CudaGraph(exec, context_.stream));
  }

 private:
  CudaDevice() = default;
  cuda::CudaContext context_;
  // Around each command of a profiled run (Time), created on first use.
  cudaEvent_t timing_start_ = nullptr, timing_stop_ = nullptr;
  std::string description_;
  std::unordered_map<void*, uint64_t> sizes_;
  uint64_t allocated_ = 0, peak_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Device>> CreateCudaDevice(int ordinal,
                                                         MatmulPrecision precision) {
  return CudaDevice::Open(ordinal, precision);
}

bool HaveCudaBackend() { return true; }

}  // namespace veomni::runtime
