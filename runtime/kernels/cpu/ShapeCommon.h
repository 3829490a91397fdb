// The operand checks of transpose and slice, shared by the CPU and CUDA
// kernels: each is a strided read of its input, planned here.

#ifndef VEOMNI_RUNTIME_KERNELS_CPU_SHAPECOMMON_H
#define VEOMNI_RUNTIME_KERNELS_CPU_SHAPECOMMON_H

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/base/Tensor.h"
#include "runtime/kernels/Kernel.h"

namespace veomni::runtime::cpu {

// Output element i (row-major over the output's shape) is input element
// base + sum_d index_d * strides[d].
struct StridedRead {
  int64_t base = 0;
  std::vector<int64_t> strides;  // in elements, one per output dim
};

// transpose {permutation}: result dim i is input dim permutation[i].
absl::StatusOr<StridedRead> PlanTranspose(const KernelAttrs& attrs,
                                          absl::Span<const TensorView> inputs,
                                          absl::Span<const TensorView> outputs);
// slice {start, limit, stride}: per dim, elements start, start+stride, ...
// below limit; 0 <= start <= limit <= dim and stride >= 1 (default 1).
absl::StatusOr<StridedRead> PlanSlice(const KernelAttrs& attrs,
                                      absl::Span<const TensorView> inputs,
                                      absl::Span<const TensorView> outputs);

// reshape: one input and one output of the same dtype and element count.
absl::Status CheckReshape(absl::Span<const TensorView> inputs,
                          absl::Span<const TensorView> outputs);

// fill's value as an integer of type Int, if it is one and fits.
template <typename Int>
absl::StatusOr<Int> IntegralFillValue(absl::string_view kernel, double value) {
  bool integral = std::isfinite(value) && std::trunc(value) == value;
  // Both bounds are powers of two, hence exact in double.
  double lower = static_cast<double>(std::numeric_limits<Int>::min());
  if (!integral || value < lower || value >= -lower) {
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": value ", value, " is not representable as an integer"));
  }
  return static_cast<Int>(value);
}

}  // namespace veomni::runtime::cpu

#endif  // VEOMNI_RUNTIME_KERNELS_CPU_SHAPECOMMON_H
