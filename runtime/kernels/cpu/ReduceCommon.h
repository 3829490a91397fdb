// The operand checks of the reductions (reduce_sum, reduce_mean,
// reduce_max), shared by the CPU and CUDA kernels so that both accept the
// same launches and say the same when they refuse one.

#ifndef VEOMNI_RUNTIME_KERNELS_CPU_REDUCECOMMON_H
#define VEOMNI_RUNTIME_KERNELS_CPU_REDUCECOMMON_H

#include <initializer_list>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "runtime/base/Tensor.h"
#include "runtime/kernels/Kernel.h"

namespace veomni::runtime::cpu {

// One input, one output of its dtype, a dtype in `supported`.
absl::Status CheckReductionOperands(absl::string_view kernel, absl::Span<const TensorView> inputs,
                                    absl::Span<const TensorView> outputs,
                                    std::initializer_list<DType> supported);

// Which dims of `in` the attributes reduce ({axes} sorted, distinct, in
// range; keep_dims), after checking `out` has the reduced shape.
absl::StatusOr<std::vector<bool>> ReducedDims(absl::string_view kernel, const KernelAttrs& attrs,
                                              const TensorView& in, const TensorView& out);

}  // namespace veomni::runtime::cpu

#endif  // VEOMNI_RUNTIME_KERNELS_CPU_REDUCECOMMON_H
