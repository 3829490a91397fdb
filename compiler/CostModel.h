//===- CostModel.h - FLOPs, bytes and time of a lowered step ---*- C++ -*-===//
//
// What each runtime launch costs: FLOPs (the matmul-like work: matmul,
// attention, the MoE experts, counted as the baseline counts them), bytes
// moved (every operand read and result written once), and a time from a
// small table of device figures, max(FLOPs / rate, bytes / bandwidth) plus a
// launch overhead. Collectives cost their bytes over the NCCL bandwidth.
// Measured kernel times (veomni-run --profile_out) refine the estimate: a
// kernel that was measured costs its measured time per launch.
//
//===----------------------------------------------------------------------===//
#ifndef VEOMNI_COMPILER_COSTMODEL_H
#define VEOMNI_COMPILER_COSTMODEL_H

#include "mlir/IR/BuiltinOps.h"
#include "passes/recompute/DeviceFigures.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace veomni {

/// FLOPs and bytes of one vrt.launch.
struct LaunchWork {
  double flops = 0, bytes = 0;
  bool tensorCores = false; // matmul-like work that runs on tensor cores
  bool collective = false;
  // Which tensor-core engine runs `flops` (DeviceFigures' rates).
  enum class Engine { kGemm, kAttention, kAttentionGrad, kGroupedGemm } engine = Engine::kGemm;
  // Memory-bound work before the compute, in bytes read and written: a bf16
  // matmul's operand copies.
  double prepareBytes = 0;
};
/// Seconds of one launch's work on `device` (collectives at NCCL's rate).
double launchSeconds(const LaunchWork &work, const DeviceFigures &device);
LaunchWork launchWork(mlir::Operation *launch);

struct KernelEstimate {
  std::string kernel;
  int64_t launches = 0;
  double flops = 0, seconds = 0;
};
struct StepEstimate {
  double flops = 0, seconds = 0;
  std::vector<KernelEstimate> kernels; // most time first
};

/// The measured seconds per kernel name of a profiled run
/// (`veomni-run --profile_out`): {"kernel": {"launches": N, "seconds": S}}.
using KernelProfile = llvm::StringMap<std::pair<int64_t, double>>;
llvm::Expected<KernelProfile> readKernelProfile(llvm::StringRef path);

/// One optimizer step of a lowered module on one rank: @count_tokens and
/// @micro_step `gradAccum` times, @optimizer_step once. With `measured`, a
/// kernel the profile saw costs its measured time per launch instead.
StepEstimate estimateStep(mlir::ModuleOp module, const DeviceFigures &device,
                          int64_t gradAccum,
                          const KernelProfile *measured = nullptr);

/// Device memory the CUDA runtime holds beside the planned arena and state
/// (runtime/device/CudaDevice.cpp, runtime/comm/NcclCommunicator.cpp,
/// runtime/kernels/cuda/MoeLaunch.cu): cuBLASLt's workspace, the collective
/// scratch (the largest any collective needs: a gather or reduce-scatter
/// along an inner dim stages the whole tensor, an all-to-all both sides),
/// the MoE kernels' per-launch scratch (about: its small index arrays are
/// left out), and cuDNN attention's (runtime/kernels/cuda/CudnnAttention.cpp:
/// bf16 copies of its operands and results, the softmax statistics, and
/// cuDNN's workspace, taken as an f32 dq accumulator; about), and bf16
/// matmul's copies of its operands (runtime/kernels/cuda/Matmul.cpp). Kernel
/// scratch is freed after each launch, so only the largest counts. With
/// expert parallelism, the exchange buffers of one expert launch
/// (runtime/executor/ExpertParallel.cpp), live together with that launch's
/// MoE scratch, for balanced routing.
struct GpuExtras {
  int64_t cublasWorkspace = 0, collectiveScratch = 0, moeScratch = 0, attentionScratch = 0,
          matmulScratch = 0, expertExchange = 0;
  int64_t kernelScratch() const {
    return std::max({moeScratch, attentionScratch, matmulScratch});
  }
  int64_t total() const {
    return cublasWorkspace + collectiveScratch + kernelScratch() + expertExchange;
  }
};
GpuExtras gpuExtras(mlir::ModuleOp module);

} // namespace veomni

#endif // VEOMNI_COMPILER_COSTMODEL_H
