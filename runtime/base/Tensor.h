// Tensors as the runtime sees them: typed, shaped views of memory that the
// executor owns (one arena per device). Kernels never allocate their operands.

#ifndef VEOMNI_RUNTIME_BASE_TENSOR_H
#define VEOMNI_RUNTIME_BASE_TENSOR_H

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace veomni::runtime {

// The values are part of the artifact format; do not renumber.
enum class DType : uint8_t {
  kF32 = 0,
  kBF16 = 1,
  kF16 = 2,
  kI64 = 3,
  kI32 = 4,
  kI1 = 5,  // stored as one uint8_t per element, 0 or 1
};

// Bytes per element; 0 for a value outside the enum (a corrupt artifact).
int64_t DTypeBytes(DType dtype);
// "f32", "bf16", "f16", "i64", "i32", "i1"; "unknown" outside the enum.
absl::string_view DTypeName(DType dtype);

// A non-owning, row-major, contiguous tensor.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // empty for a scalar

  int64_t NumElements() const;
  int64_t Bytes() const;
  template <typename T>
  T* As() const {
    return static_cast<T*>(data);
  }
};

// Bytes of a tensor whose shape comes from an artifact: fails on a negative
// dim, an unknown dtype, or a size past 2^48 bytes (a corrupt shape, not a
// model), instead of letting the product wrap around.
absl::StatusOr<int64_t> CheckedBytes(DType dtype, absl::Span<const int64_t> shape);

// "[2, 3, 4]"; "[]" for a scalar.
std::string FormatShape(absl::Span<const int64_t> shape);

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_BASE_TENSOR_H
