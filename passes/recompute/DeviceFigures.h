//===- DeviceFigures.h - what a GPU does per second -----------*- C++ -*-===//
//
// The small table of device figures behind every time estimate of the
// compiler: the recompute pass's ROI and veomni-compile --explain's step time.
//
//===----------------------------------------------------------------------===//
#ifndef VEOMNI_PASSES_RECOMPUTE_DEVICEFIGURES_H
#define VEOMNI_PASSES_RECOMPUTE_DEVICEFIGURES_H

#include "llvm/ADT/StringRef.h"

#include <algorithm>
#include <string>

namespace veomni {

struct DeviceFigures {
  std::string name;
  double matmulFlops;   // bf16 tensor-core GEMM, FLOP/s
  double vectorFlops;   // fp32 CUDA-core work, FLOP/s
  double memoryBytes;   // HBM, bytes/s (read + write)
  double ncclBytes;     // NCCL bus bandwidth between the GPUs of one host, bytes/s
  double launchSeconds; // per kernel launch
  // What the runtime's own tensor-core kernels reach, FLOP/s as the cost
  // model counts their work (--explain's step time; the recompute pass
  // compares costs with matmulFlops alone): cuDNN's fused attention forward
  // and backward, and the MoE grouped GEMMs (their rounding of f32
  // weights is costed apart, as bytes).
  double attentionFlops;
  double attentionGradFlops;
  double groupedGemmFlops;

  /// max(compute, memory) for work of `flops` and `bytes`.
  double seconds(double flops, double bytes, bool tensorCores) const {
    return std::max(flops / (tensorCores ? matmulFlops : vectorFlops),
                    bytes / memoryBytes);
  }
};

/// "h100" or "h200"; null for another name.
const DeviceFigures *lookupDeviceFigures(llvm::StringRef name);

} // namespace veomni

#endif // VEOMNI_PASSES_RECOMPUTE_DEVICEFIGURES_H
