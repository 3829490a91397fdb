// Operand checks of the MoE kernels, shared by the CPU kernels and the CUDA
// wrappers so both backends accept the same operands with the same messages.
// Nothing here reads tensor data except CheckExpertIdRange, which the CUDA
// kernels replace by a device-side data-error flag.

#ifndef VEOMNI_RUNTIME_KERNELS_CPU_MOECOMMON_H
#define VEOMNI_RUNTIME_KERNELS_CPU_MOECOMMON_H

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "runtime/base/Tensor.h"
#include "runtime/kernels/Kernel.h"

namespace veomni::runtime::cpu {

// InvalidArgument unless `experts` is i64 or i32.
absl::Status CheckExpertIdDType(absl::string_view kernel, const TensorView& experts);

// OutOfRange "<kernel>: expert id 9 at position 3 is outside [0, 8)"; the
// position is the flat index into experts [T, k]. Reads host memory.
absl::Status CheckExpertIdRange(absl::string_view kernel, const TensorView& experts,
                                int64_t num_experts);

// Validated top_k operands: x [..., count] f32 viewed as [rows, count],
// values [..., k] f32 and indices [..., k] i64.
struct TopKPlan {
  int64_t rows = 0;
  int64_t count = 0;
  int64_t k = 0;
};
absl::StatusOr<TopKPlan> PlanTopK(absl::string_view kernel, const KernelAttrs& attrs,
                                  absl::Span<const TensorView> inputs,
                                  absl::Span<const TensorView> outputs);

// Validated moe_gate operands: logits [T, E] f32, weights [T, top_k] f32,
// experts [T, top_k] i64.
struct MoeGatePlan {
  int64_t tokens = 0;
  int64_t experts = 0;
  int64_t top_k = 0;
  bool normalize = false;
};
absl::StatusOr<MoeGatePlan> PlanMoeGate(absl::string_view kernel, const KernelAttrs& attrs,
                                        absl::Span<const TensorView> inputs,
                                        absl::Span<const TensorView> outputs);

// Validated moe_gate_grad operands: logits [T, E] f32, experts [T, k]
// i64/i32, weights_grad [T, k] f32, logits_grad [T, E] f32. The expert ids
// are not range-checked.
struct MoeGateGradPlan {
  int64_t tokens = 0;
  int64_t experts = 0;
  int64_t slots = 0;  // k per token
  bool normalize = false;
};
absl::StatusOr<MoeGateGradPlan> PlanMoeGateGrad(absl::string_view kernel,
                                                const KernelAttrs& attrs,
                                                absl::Span<const TensorView> inputs,
                                                absl::Span<const TensorView> outputs);

// Validated moe_experts inputs x [T, H] f32, experts [T, k] i64/i32,
// weights [T, k] f32, gate_up [E, 2I, H] f32, down [E, H, I] f32. The expert
// ids are not range-checked.
struct MoeExpertsPlan {
  int64_t tokens = 0;
  int64_t hidden = 0;
  int64_t slots = 0;  // k per token
  int64_t experts = 0;
  int64_t intermediate = 0;
};
absl::StatusOr<MoeExpertsPlan> PlanMoeExperts(absl::string_view kernel,
                                              absl::Span<const TensorView> inputs);

// The routed rows' gate/up projections that moe_experts keeps and
// moe_experts_grad reads (vo-keep-moe-projections): [T*k, 2I] f32.
absl::Status CheckMoeProjected(absl::string_view kernel, const MoeExpertsPlan& plan,
                               const TensorView& projected);

// The moe_experts output y [T, H] f32.
absl::Status CheckMoeExpertsOutput(absl::string_view kernel, const MoeExpertsPlan& plan,
                                   absl::Span<const TensorView> outputs);

// moe_experts_grad's y_grad [T, H] (inputs[5]) and its outputs x_grad,
// weights_grad, gate_up_grad, down_grad, each f32 and shaped as its primal.
absl::Status CheckMoeExpertsGradOperands(absl::string_view kernel, const MoeExpertsPlan& plan,
                                         absl::Span<const TensorView> inputs,
                                         absl::Span<const TensorView> outputs);

}  // namespace veomni::runtime::cpu

#endif  // VEOMNI_RUNTIME_KERNELS_CPU_MOECOMMON_H
