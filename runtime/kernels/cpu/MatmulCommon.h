// The operand checks and geometry of matmul, shared by the CPU and CUDA
// kernels so that both accept the same launches and say the same when they
// refuse one.

#ifndef VEOMNI_RUNTIME_KERNELS_CPU_MATMULCOMMON_H
#define VEOMNI_RUNTIME_KERNELS_CPU_MATMULCOMMON_H

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/base/Tensor.h"
#include "runtime/kernels/Kernel.h"

namespace veomni::runtime::cpu {

// matmul {transpose_lhs, transpose_rhs}: lhs [..., M, K] (or [..., K, M]),
// rhs [..., K, N] (or [..., N, K]) -> [..., M, N]; batch dims broadcast.
struct MatmulPlan {
  bool transpose_lhs = false, transpose_rhs = false;
  int64_t m = 0, n = 0, k = 0;
  std::vector<int64_t> lhs_batch, rhs_batch, batch;  // batch: the broadcast of the two
};
absl::StatusOr<MatmulPlan> PlanMatmul(const KernelAttrs& attrs,
                                      absl::Span<const TensorView> inputs,
                                      absl::Span<const TensorView> outputs);

}  // namespace veomni::runtime::cpu

#endif  // VEOMNI_RUNTIME_KERNELS_CPU_MATMULCOMMON_H
