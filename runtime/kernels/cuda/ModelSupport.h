// Host-side planning that Model.cpp and ModelGrad.cpp share: the launchers'
// operand descriptions built from the CPU kernels' checked plans.

#ifndef VEOMNI_RUNTIME_KERNELS_CUDA_MODELSUPPORT_H
#define VEOMNI_RUNTIME_KERNELS_CUDA_MODELSUPPORT_H

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/base/Tensor.h"
#include "runtime/kernels/cpu/ModelCommon.h"
#include "runtime/kernels/cuda/ModelLaunch.h"

namespace veomni::runtime::cuda {

// An i64 or i32 tensor (the caller checked the dtype) as the launchers read it.
DeviceIndices DeviceIndicesOf(const TensorView& tensor);

// Checks that `x` (named `role` in messages, as the CPU kernels do) has an
// even last dim and that cos and sin broadcast to it, and describes the
// broadcast; Unimplemented past kMaxRopeRank dims.
absl::StatusOr<RopeBroadcast> PlanRopeBroadcast(absl::string_view kernel, absl::string_view role,
                                                const TensorView& x, const TensorView& cos,
                                                const TensorView& sin);

// `geometry` (from cpu::PlanAttentionShapes) for the launchers; `cu_seqlens`
// is null when there is none.
AttentionShape DeviceAttentionShape(const cpu::AttentionGeometry& geometry,
                                    const TensorView* cu_seqlens);

}  // namespace veomni::runtime::cuda

#endif  // VEOMNI_RUNTIME_KERNELS_CUDA_MODELSUPPORT_H
