//===- DeviceFigures.cpp - what a GPU does per second ---------------------===//

#include "passes/recompute/DeviceFigures.h"

using namespace veomni;

namespace {
// bf16 GEMM: 8192^3 products measured at 769-798 (H100) and 788 TFLOP/s
// (H200) on this workplace's machines; HBM: a device-to-device copy moved
// 3.0 (H100) and 4.3 TB/s (H200) counting bytes read and written; NCCL:
// all-reduce bus bandwidth 329 GB/s on two H100s (the device tool's
// KINDS.md). fp32 CUDA cores: the datasheets' 67 TFLOP/s. Launch: a few
// microseconds.
const DeviceFigures kDevices[] = {
    {"h100", 780e12, 67e12, 3.0e12, 329e9, 4e-6},
    {"h200", 788e12, 67e12, 4.3e12, 329e9, 4e-6},
};
} // namespace

const DeviceFigures *veomni::lookupDeviceFigures(llvm::StringRef name) {
  for (const DeviceFigures &device : kDevices)
    if (device.name == name)
      return &device;
  return nullptr;
}
