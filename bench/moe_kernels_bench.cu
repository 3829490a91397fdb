// Times the CUDA moe_experts and moe_experts_grad kernels (MoeLaunch.cu) at
// one shape, as the training step runs them, and prints milliseconds and the
// expert GEMMs' TFLOP/s. Built and run by bench/moe-kernels.sh, which also
// times PyTorch's grouped GEMM on the same GPU for scale.
//
//   moe_kernels_bench TOKENS HIDDEN EXPERTS TOP_K INTERMEDIATE [bf16|f32]
//
// Built with VEOMNI_MOE_INTERNALS, this file includes MoeLaunch.cu itself
// (not linked beside it) and also times each product of the backward alone,
// and the rounding of the weights, from the scratch a full launch left.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <cuda_runtime.h>

#ifdef VEOMNI_MOE_INTERNALS
#include "runtime/kernels/cuda/MoeLaunch.cu"
#else
#include "runtime/kernels/cuda/MoeLaunch.h"
#endif

namespace {

using veomni::runtime::cuda::MoeExpertsShape;

void Check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  std::fprintf(stderr, "moe_kernels_bench: %s: %s\n", what, cudaGetErrorString(status));
  std::exit(1);
}

// Uniform floats in [-scale, scale) from a hash of the index: reproducible
// without a host copy.
__global__ void FillKernel(float* data, int64_t count, uint32_t seed, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 16;
    h *= 2246822519u;
    h ^= h >> 13;
    data[i] = scale * (static_cast<float>(h & 0xffffff) / 8388608.0f - 1.0f);
  }
}

// Token t's slot j picks expert (t * 7919 + j * (E / k + 1)) % E: distinct
// experts per token, balanced over experts, as a trained router roughly is.
__global__ void RouteKernel(int64_t* ids, int64_t tokens, int64_t slots, int64_t experts) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < tokens * slots; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t t = i / slots, j = i % slots;
    ids[i] = (t * 7919 + j * (experts / slots + 1)) % experts;
  }
}

float* DeviceFloats(int64_t count, uint32_t seed, float scale) {
  float* data = nullptr;
  Check(cudaMalloc(&data, static_cast<size_t>(count > 0 ? count : 1) * sizeof(float)), "cudaMalloc");
  FillKernel<<<1024, 256>>>(data, count, seed, scale);
  return data;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr,
                 "usage: moe_kernels_bench TOKENS HIDDEN EXPERTS TOP_K INTERMEDIATE [bf16|f32]\n");
    return 2;
  }
  MoeExpertsShape shape;
  shape.tokens = std::atoll(argv[1]);
  shape.hidden = std::atoll(argv[2]);
  shape.experts = std::atoll(argv[3]);
  shape.slots = std::atoll(argv[4]);
  shape.intermediate = std::atoll(argv[5]);
  shape.bf16 = argc < 7 || std::string(argv[6]) == "bf16";
  if (shape.tokens <= 0 || shape.hidden <= 0 || shape.experts <= 0 || shape.slots <= 0 ||
      shape.intermediate <= 0 || shape.slots > shape.experts ||
      !veomni::runtime::cuda::MoeExpertsLaunchable(shape)) {
    std::fprintf(stderr, "moe_kernels_bench: the shape is not one the kernels take\n");
    return 2;
  }
  const int64_t T = shape.tokens, H = shape.hidden, E = shape.experts, k = shape.slots,
                I = shape.intermediate;
  float* x = DeviceFloats(T * H, 1, 1.0f);
  float* weights = DeviceFloats(T * k, 2, 0.5f);
  float* gate_up = DeviceFloats(E * 2 * I * H, 3, 0.03f);
  float* down = DeviceFloats(E * H * I, 4, 0.03f);
  float* y_grad = DeviceFloats(T * H, 5, 1.0f);
  float* y = DeviceFloats(T * H, 6, 0.0f);
  float* x_grad = DeviceFloats(T * H, 7, 0.0f);
  float* weights_grad = DeviceFloats(T * k, 8, 0.0f);
  float* gate_up_grad = DeviceFloats(E * 2 * I * H, 9, 0.0f);
  float* down_grad = DeviceFloats(E * H * I, 10, 0.0f);
  int64_t* ids = nullptr;
  Check(cudaMalloc(&ids, T * k * sizeof(int64_t)), "cudaMalloc");
  RouteKernel<<<1024, 256>>>(ids, T, k, E);
  void* scratch = nullptr;
  Check(cudaMalloc(&scratch, veomni::runtime::cuda::MoeExpertsScratchBytes(shape)),
        "cudaMalloc");
  unsigned* flags = nullptr;
  Check(cudaMalloc(&flags, sizeof(unsigned)), "cudaMalloc");
  Check(cudaMemset(flags, 0, sizeof(unsigned)), "cudaMemset");
  cudaStream_t stream = nullptr;
  Check(cudaStreamCreate(&stream), "cudaStreamCreate");
  Check(cudaDeviceSynchronize(), "setup");

  auto forward = [&] {
    veomni::runtime::cuda::LaunchMoeExperts(shape, x, ids, true, weights, gate_up, down, y,
                                            /*projected=*/nullptr, scratch, flags, stream);
  };
  auto backward = [&] {
    veomni::runtime::cuda::LaunchMoeExpertsGrad(shape, x, ids, true, weights, gate_up, down,
                                                y_grad, /*projected=*/nullptr, x_grad,
                                                weights_grad, gate_up_grad,
                                                down_grad, scratch, flags, stream);
  };
  cudaEvent_t start, stop;
  Check(cudaEventCreate(&start), "cudaEventCreate");
  Check(cudaEventCreate(&stop), "cudaEventCreate");
  auto time_ms = [&](auto&& launch) {
    constexpr int kWarmup = 3, kRuns = 20;
    for (int i = 0; i < kWarmup; ++i) launch();
    Check(cudaEventRecord(start, stream), "cudaEventRecord");
    for (int i = 0; i < kRuns; ++i) launch();
    Check(cudaEventRecord(stop, stream), "cudaEventRecord");
    Check(cudaEventSynchronize(stop), "kernels");
    float ms = 0.0f;
    Check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    return ms / kRuns;
  };
  // One unit: a [T k, H] x [H, I] product over the routed rows. The forward
  // runs 3 (gate_up, down), the backward 8 (gate_up again, then
  // down^T dy, both weight gradients and gate_up^T [dg; du]).
  const double unit = 2.0 * T * k * H * I;
  const double forward_ms = time_ms(forward);
  const double backward_ms = time_ms(backward);
  unsigned host_flags = 0;
  Check(cudaMemcpy(&host_flags, flags, sizeof(unsigned), cudaMemcpyDeviceToHost), "flags");
  if (host_flags != 0) {
    std::fprintf(stderr, "moe_kernels_bench: the kernels flagged bad data (%u)\n", host_flags);
    return 1;
  }
  std::printf("moe_experts      T %lld H %lld E %lld k %lld I %lld %s: %.3f ms, %.1f TFLOP/s\n",
              static_cast<long long>(T), static_cast<long long>(H), static_cast<long long>(E),
              static_cast<long long>(k), static_cast<long long>(I), shape.bf16 ? "bf16" : "f32",
              forward_ms, 3 * unit / forward_ms / 1e9);
  std::printf("moe_experts_grad T %lld H %lld E %lld k %lld I %lld %s: %.3f ms, %.1f TFLOP/s\n",
              static_cast<long long>(T), static_cast<long long>(H), static_cast<long long>(E),
              static_cast<long long>(k), static_cast<long long>(I), shape.bf16 ? "bf16" : "f32",
              backward_ms, 8 * unit / backward_ms / 1e9);
#ifdef VEOMNI_MOE_INTERNALS
  {
    // The last backward left its routing and operand copies in `scratch`.
    using namespace veomni::runtime::cuda;
    ExpertsScratch s;
    LayOutScratch(shape, true, static_cast<char*>(scratch), &s);
    auto report = [&](const char* what, double units, auto&& launch) {
      const double ms = time_ms(launch);
      std::printf("  %-34s %.3f ms", what, ms);
      if (units > 0) std::printf(", %.1f TFLOP/s", units * unit / ms / 1e9);
      std::printf("\n");
    };
    report("round both weights to bf16", 0, [&] {
      ToBf16Rows(gate_up, H, nullptr, 0, nullptr, nullptr, E * 2 * I, H, s.gate_up_bf16, stream);
      ToBf16Rows(down, I, nullptr, 0, nullptr, nullptr, E * H, I, s.down_bf16, stream);
    });
    report("gate_up x (rows, W^T)", 2,
           [&] { RunRowsProduct(shape, GateUpProduct(shape, s, x, gate_up), s, stream); });
    report("down^T dy (rows, W)", 1, [&] {
      RunRowsProduct(shape, BackDownProduct(shape, s, down, y_grad), s, stream);
    });
    report("down_grad (outer)", 1, [&] {
      RunOuterProduct(shape, DownGradProduct(shape, s, weights, y_grad, down_grad), s, stream);
    });
    report("gate_up^T [dg; du] (rows, W)", 2,
           [&] { RunRowsProduct(shape, BackGateUpProduct(shape, s, gate_up), s, stream); });
    report("gate_up_grad (outer)", 2, [&] {
      RunOuterProduct(shape, GateUpGradProduct(shape, s, x, gate_up_grad), s, stream);
    });
    Check(cudaStreamSynchronize(stream), "the products");
  }
#endif
  return 0;
}
