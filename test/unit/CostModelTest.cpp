// launchSeconds: each kind of work runs at its device figure (GEMMs, cuDNN
// attention and the MoE grouped GEMMs at their own rates, the rest at the
// larger of CUDA-core and HBM time), a bf16 matmul's operand copies add
// their memory time, and collectives move at NCCL's bus bandwidth.

#include "compiler/CostModel.h"
#include "passes/recompute/DeviceFigures.h"

#include <gtest/gtest.h>

namespace veomni {
namespace {

using Engine = LaunchWork::Engine;

TEST(CostModel, EachTensorCoreEngineRunsAtItsRate) {
  const DeviceFigures *h200 = lookupDeviceFigures("h200");
  ASSERT_NE(h200, nullptr);
  LaunchWork work;
  work.flops = 1e12;
  work.bytes = 1e6; // far below the compute time
  work.tensorCores = true;
  const std::pair<Engine, double> rates[] = {
      {Engine::kGemm, h200->matmulFlops},
      {Engine::kAttention, h200->attentionFlops},
      {Engine::kAttentionGrad, h200->attentionGradFlops},
      {Engine::kGroupedGemm, h200->groupedGemmFlops}};
  for (auto [engine, rate] : rates) {
    work.engine = engine;
    EXPECT_DOUBLE_EQ(launchSeconds(work, *h200), 1e12 / rate);
  }
  // The runtime's own kernels are slower than cuBLAS's peak.
  EXPECT_LT(h200->groupedGemmFlops, h200->matmulFlops);
  EXPECT_LT(h200->attentionGradFlops, h200->attentionFlops);
}

TEST(CostModel, MemoryBoundWorkAndOperandCopies) {
  const DeviceFigures *h100 = lookupDeviceFigures("h100");
  ASSERT_NE(h100, nullptr);
  LaunchWork add; // 1 GB through HBM, few operations
  add.flops = 1e6;
  add.bytes = 1e9;
  EXPECT_DOUBLE_EQ(launchSeconds(add, *h100), 1e9 / h100->memoryBytes);
  LaunchWork matmul; // the copies run before the GEMM: their times add
  matmul.flops = 1e12;
  matmul.tensorCores = true;
  matmul.prepareBytes = 6e8;
  EXPECT_DOUBLE_EQ(launchSeconds(matmul, *h100),
                   1e12 / h100->matmulFlops + 6e8 / h100->memoryBytes);
}

TEST(CostModel, CollectivesMoveAtNcclBandwidth) {
  const DeviceFigures *h200 = lookupDeviceFigures("h200");
  ASSERT_NE(h200, nullptr);
  LaunchWork gather;
  gather.collective = true;
  gather.bytes = 2 * h200->ncclBytes;
  gather.flops = 1e15; // ignored: a collective's time is its bytes
  EXPECT_DOUBLE_EQ(launchSeconds(gather, *h200), 2.0);
}

} // namespace
} // namespace veomni
