//===- DeviceFigures.cpp - what a GPU does per second ---------------------===//

#include "passes/recompute/DeviceFigures.h"

using namespace veomni;

namespace {
// bf16 GEMM: 8192^3 products measured at 769-798 (H100) and 788 TFLOP/s
// (H200) on this workplace's machines; HBM: a device-to-device copy moved
// 3.0 (H100) and 4.3 TB/s (H200) counting bytes read and written; NCCL:
// all-reduce bus bandwidth 329 GB/s on two H100s (the device tool's
// KINDS.md). fp32 CUDA cores: the datasheets' 67 TFLOP/s. Launch: a few
// microseconds. The runtime's attention and MoE kernels: the dense and MoE
// benchmarks' --profile on an H200 (2026-11-26, bench/README.md), per FLOP
// of the cost model: attention 3.85 TFLOP in 11 ms, attention_grad 9.62 in
// 36 ms; moe_experts 2.47 TFLOP and moe_experts_grad 7.42 in 90 ms together,
// less the 13.4 ms their rounding of f32 weights takes at HBM speed (the cost
// model's prepare bytes): 130 TFLOP/s. The H100 has the same SMs and clocks
// and is taken to reach the same.
const DeviceFigures kDevices[] = {
    {"h100", 780e12, 67e12, 3.0e12, 329e9, 4e-6, 350e12, 267e12, 130e12},
    {"h200", 788e12, 67e12, 4.3e12, 329e9, 4e-6, 350e12, 267e12, 130e12},
};
} // namespace

const DeviceFigures *veomni::lookupDeviceFigures(llvm::StringRef name) {
  for (const DeviceFigures &device : kDevices)
    if (device.name == name)
      return &device;
  return nullptr;
}
