// What every CPU kernel needs before it computes: operand checks with messages
// that name the kernel and the numbers, attribute access, and broadcasting.

#ifndef VEOMNI_RUNTIME_KERNELS_CPU_KERNELSUPPORT_H
#define VEOMNI_RUNTIME_KERNELS_CPU_KERNELSUPPORT_H

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "runtime/base/FloatBits.h"
#include "runtime/base/Status.h"
#include "runtime/base/Tensor.h"
#include "runtime/kernels/Kernel.h"

namespace veomni::runtime::cpu {

inline constexpr size_t kAnyNumberOfInputs = static_cast<size_t>(-1);

// Element i of an f32 or bf16 tensor as f32 (bf16 widens exactly), and the
// store that rounds to the tensor's type (nearest even).
inline float FloatAt(const TensorView& tensor, int64_t i) {
  return tensor.dtype == DType::kBF16 ? BFloat16BitsToFloat(tensor.As<uint16_t>()[i])
                                      : tensor.As<float>()[i];
}
inline void StoreFloatAt(const TensorView& tensor, int64_t i, float value) {
  if (tensor.dtype == DType::kBF16) {
    tensor.As<uint16_t>()[i] = FloatToBFloat16Bits(value);
  } else {
    tensor.As<float>()[i] = value;
  }
}

// InvalidArgument "<kernel>: expects N inputs, got M" (or "N to K inputs",
// "at least N inputs" when max_inputs is kAnyNumberOfInputs).
absl::Status CheckArity(absl::string_view kernel, absl::Span<const TensorView> inputs,
                        size_t min_inputs, size_t max_inputs,
                        absl::Span<const TensorView> outputs, size_t num_outputs);

// InvalidArgument "<kernel>: <role> has dtype i64, expected f32".
absl::Status CheckDType(absl::string_view kernel, absl::string_view role,
                        const TensorView& tensor, DType expected);
// InvalidArgument "<kernel>: <role> has shape [2, 3], expected [3, 2]".
absl::Status CheckShape(absl::string_view kernel, absl::string_view role,
                        const TensorView& tensor, absl::Span<const int64_t> expected);
absl::Status CheckRank(absl::string_view kernel, absl::string_view role,
                       const TensorView& tensor, size_t expected_rank);
// Unimplemented "<kernel>: dtype bf16 is not implemented on the CPU".
absl::Status UnimplementedDType(absl::string_view kernel, DType dtype);
// OK if `dtype` is one of `supported`, else UnimplementedDType.
absl::Status CheckSupportedDType(absl::string_view kernel, DType dtype,
                                 std::initializer_list<DType> supported);

// Attribute access whose errors are prefixed with the kernel's name.
absl::StatusOr<int64_t> RequiredInt(absl::string_view kernel, const KernelAttrs& attrs,
                                    absl::string_view name);
absl::StatusOr<double> RequiredFloat(absl::string_view kernel, const KernelAttrs& attrs,
                                     absl::string_view name);
absl::StatusOr<std::vector<int64_t>> RequiredInts(absl::string_view kernel,
                                                  const KernelAttrs& attrs,
                                                  absl::string_view name);
// `fallback` when absent; an error when set to another kind.
absl::StatusOr<int64_t> OptionalInt(absl::string_view kernel, const KernelAttrs& attrs,
                                    absl::string_view name, int64_t fallback);
absl::StatusOr<double> OptionalFloat(absl::string_view kernel, const KernelAttrs& attrs,
                                     absl::string_view name, double fallback);
// An int attribute that must be 0 or 1.
absl::StatusOr<bool> OptionalFlag(absl::string_view kernel, const KernelAttrs& attrs,
                                  absl::string_view name, bool fallback);

// `axis` in [-rank, rank) made non-negative, or InvalidArgument.
absl::StatusOr<int64_t> NormalizeAxis(absl::string_view kernel, int64_t axis, size_t rank);

// Product of the dims in [begin, end).
int64_t DimProduct(absl::Span<const int64_t> shape, size_t begin, size_t end);
std::vector<int64_t> ContiguousStrides(absl::Span<const int64_t> shape);

// The numpy broadcast of `shapes` (right-aligned, 1 stretches), or
// InvalidArgument "<kernel>: shapes [2, 3] and [4] do not broadcast".
absl::StatusOr<std::vector<int64_t>> BroadcastShapes(
    absl::string_view kernel, std::initializer_list<absl::Span<const int64_t>> shapes);
bool IsBroadcastableTo(absl::Span<const int64_t> shape, absl::Span<const int64_t> target);
// Strides of a contiguous tensor of `shape` read as if broadcast to `target`:
// one per target dim, 0 where `shape` repeats. Requires IsBroadcastableTo.
std::vector<int64_t> BroadcastStrides(absl::Span<const int64_t> shape,
                                      absl::Span<const int64_t> target);

// Visits every index of `shape` in row-major order and tracks one linear
// offset per operand from that operand's strides (0 repeats a dimension).
class StridedIndexWalker {
 public:
  StridedIndexWalker(absl::Span<const int64_t> shape,
                     std::vector<std::vector<int64_t>> operand_strides);
  int64_t Offset(size_t operand) const { return offsets_[operand]; }
  // Moves to the next index; past the last one the offsets wrap to zero.
  void Next();

 private:
  std::vector<int64_t> shape_;
  std::vector<int64_t> index_;
  std::vector<std::vector<int64_t>> strides_;
  std::vector<int64_t> offsets_;
};

}  // namespace veomni::runtime::cpu

#endif  // VEOMNI_RUNTIME_KERNELS_CPU_KERNELSUPPORT_H
