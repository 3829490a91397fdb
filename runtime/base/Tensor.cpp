#include "runtime/base/Tensor.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace veomni::runtime {

int64_t DTypeBytes(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kF16: return 2;
    case DType::kI64: return 8;
    case DType::kI32: return 4;
    case DType::kI1: return 1;
  }
  return 0;
}

absl::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "f32";
    case DType::kBF16: return "bf16";
    case DType::kF16: return "f16";
    case DType::kI64: return "i64";
    case DType::kI32: return "i32";
    case DType::kI1: return "i1";
  }
  return "unknown";
}

int64_t TensorView::NumElements() const {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

int64_t TensorView::Bytes() const { return NumElements() * DTypeBytes(dtype); }

absl::StatusOr<int64_t> CheckedBytes(DType dtype, absl::Span<const int64_t> shape) {
  constexpr int64_t kLimit = int64_t{1} << 48;
  int64_t bytes = DTypeBytes(dtype);
  if (bytes == 0) {
    return absl::DataLossError(absl::StrCat("unknown dtype ", static_cast<int>(dtype)));
  }
  for (int64_t dim : shape) {
    if (dim < 0) return absl::DataLossError(absl::StrCat("negative dim ", dim));
    if (dim != 0 && bytes > kLimit / dim) {
      return absl::DataLossError(absl::StrCat("a ", FormatShape(shape), " ", DTypeName(dtype),
                                              " tensor is larger than 2^48 bytes"));
    }
    bytes *= dim;
  }
  return bytes;
}

std::string FormatShape(absl::Span<const int64_t> shape) {
  return "[" + absl::StrJoin(shape, ", ") + "]";
}

}  // namespace veomni::runtime
