#include "runtime/kernels/cpu/KernelSupport.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace veomni::runtime::cpu {
namespace {

absl::Status PrefixWithKernel(absl::string_view kernel, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(kernel, ": ", status.message()));
}

}  // namespace

absl::Status CheckArity(absl::string_view kernel, absl::Span<const TensorView> inputs,
                        size_t min_inputs, size_t max_inputs,
                        absl::Span<const TensorView> outputs, size_t num_outputs) {
  if (inputs.size() < min_inputs || inputs.size() > max_inputs) {
    std::string expected =
        min_inputs == max_inputs        ? absl::StrCat(min_inputs)
        : max_inputs == kAnyNumberOfInputs ? absl::StrCat("at least ", min_inputs)
                                        : absl::StrCat(min_inputs, " to ", max_inputs);
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": expects ", expected,
                                                   " inputs, got ", inputs.size()));
  }
  if (outputs.size() != num_outputs) {
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": expects ", num_outputs,
                                                   " outputs, got ", outputs.size()));
  }
  return absl::OkStatus();
}

absl::Status CheckDType(absl::string_view kernel, absl::string_view role,
                        const TensorView& tensor, DType expected) {
  if (tensor.dtype == expected) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(kernel, ": ", role, " has dtype ",
                                                 DTypeName(tensor.dtype), ", expected ",
                                                 DTypeName(expected)));
}

absl::Status CheckShape(absl::string_view kernel, absl::string_view role,
                        const TensorView& tensor, absl::Span<const int64_t> expected) {
  if (absl::Span<const int64_t>(tensor.shape) == expected) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(kernel, ": ", role, " has shape ",
                                                 FormatShape(tensor.shape), ", expected ",
                                                 FormatShape(expected)));
}

absl::Status CheckRank(absl::string_view kernel, absl::string_view role,
                       const TensorView& tensor, size_t expected_rank) {
  if (tensor.shape.size() == expected_rank) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(kernel, ": ", role, " has rank ",
                                                 tensor.shape.size(), " (shape ",
                                                 FormatShape(tensor.shape), "), expected ",
                                                 expected_rank));
}

absl::Status UnimplementedDType(absl::string_view kernel, DType dtype) {
  return absl::UnimplementedError(
      absl::StrCat(kernel, ": dtype ", DTypeName(dtype), " is not implemented on the CPU"));
}

absl::Status CheckSupportedDType(absl::string_view kernel, DType dtype,
                                 std::initializer_list<DType> supported) {
  if (std::find(supported.begin(), supported.end(), dtype) != supported.end()) {
    return absl::OkStatus();
  }
  return UnimplementedDType(kernel, dtype);
}

absl::StatusOr<int64_t> RequiredInt(absl::string_view kernel, const KernelAttrs& attrs,
                                    absl::string_view name) {
  absl::StatusOr<int64_t> value = attrs.GetInt(name);
  if (!value.ok()) return PrefixWithKernel(kernel, value.status());
  return value;
}

absl::StatusOr<double> RequiredFloat(absl::string_view kernel, const KernelAttrs& attrs,
                                     absl::string_view name) {
  absl::StatusOr<double> value = attrs.GetFloat(name);
  if (!value.ok()) return PrefixWithKernel(kernel, value.status());
  return value;
}

absl::StatusOr<std::vector<int64_t>> RequiredInts(absl::string_view kernel,
                                                  const KernelAttrs& attrs,
                                                  absl::string_view name) {
  absl::StatusOr<std::vector<int64_t>> values = attrs.GetInts(name);
  if (!values.ok()) return PrefixWithKernel(kernel, values.status());
  return values;
}

absl::StatusOr<int64_t> OptionalInt(absl::string_view kernel, const KernelAttrs& attrs,
                                    absl::string_view name, int64_t fallback) {
  if (!attrs.Has(name)) return fallback;
  return RequiredInt(kernel, attrs, name);
}

absl::StatusOr<double> OptionalFloat(absl::string_view kernel, const KernelAttrs& attrs,
                                     absl::string_view name, double fallback) {
  if (!attrs.Has(name)) return fallback;
  return RequiredFloat(kernel, attrs, name);
}

absl::StatusOr<bool> OptionalFlag(absl::string_view kernel, const KernelAttrs& attrs,
                                  absl::string_view name, bool fallback) {
  VEOMNI_ASSIGN_OR_RETURN(int64_t value, OptionalInt(kernel, attrs, name, fallback ? 1 : 0));
  if (value != 0 && value != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": attribute '", name, "' is ", value, ", expected 0 or 1"));
  }
  return value == 1;
}

absl::StatusOr<int64_t> NormalizeAxis(absl::string_view kernel, int64_t axis, size_t rank) {
  int64_t signed_rank = static_cast<int64_t>(rank);
  if (axis < -signed_rank || axis >= signed_rank) {
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": axis ", axis,
                                                   " is out of range for rank ", rank));
  }
  return axis < 0 ? axis + signed_rank : axis;
}

int64_t DimProduct(absl::Span<const int64_t> shape, size_t begin, size_t end) {
  int64_t product = 1;
  for (size_t d = begin; d < end; ++d) product *= shape[d];
  return product;
}

std::vector<int64_t> ContiguousStrides(absl::Span<const int64_t> shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t stride = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    strides[d] = stride;
    stride *= shape[d];
  }
  return strides;
}

absl::StatusOr<std::vector<int64_t>> BroadcastShapes(
    absl::string_view kernel, std::initializer_list<absl::Span<const int64_t>> shapes) {
  size_t rank = 0;
  for (absl::Span<const int64_t> shape : shapes) rank = std::max(rank, shape.size());
  std::vector<int64_t> result(rank, 1);
  for (absl::Span<const int64_t> shape : shapes) {
    size_t skip = rank - shape.size();
    for (size_t d = 0; d < shape.size(); ++d) {
      int64_t& dim = result[skip + d];
      if (shape[d] == dim || shape[d] == 1) continue;
      if (dim == 1) {
        dim = shape[d];
        continue;
      }
      std::vector<std::string> formatted;
      for (absl::Span<const int64_t> each : shapes) formatted.push_back(FormatShape(each));
      return absl::InvalidArgumentError(absl::StrCat(
          kernel, ": shapes ", absl::StrJoin(formatted, " and "), " do not broadcast"));
    }
  }
  return result;
}

bool IsBroadcastableTo(absl::Span<const int64_t> shape, absl::Span<const int64_t> target) {
  if (shape.size() > target.size()) return false;
  size_t skip = target.size() - shape.size();
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] != 1 && shape[d] != target[skip + d]) return false;
  }
  return true;
}

std::vector<int64_t> BroadcastStrides(absl::Span<const int64_t> shape,
                                      absl::Span<const int64_t> target) {
  std::vector<int64_t> own = ContiguousStrides(shape);
  std::vector<int64_t> strides(target.size(), 0);
  size_t skip = target.size() - shape.size();
  for (size_t d = 0; d < shape.size(); ++d) {
    strides[skip + d] = shape[d] == 1 ? 0 : own[d];
  }
  return strides;
}

StridedIndexWalker::StridedIndexWalker(absl::Span<const int64_t> shape,
                                       std::vector<std::vector<int64_t>> operand_strides)
    : shape_(shape.begin(), shape.end()),
      index_(shape.size(), 0),
      strides_(std::move(operand_strides)),
      offsets_(strides_.size(), 0) {}

void StridedIndexWalker::Next() {
  for (size_t d = shape_.size(); d-- > 0;) {
    ++index_[d];
    if (index_[d] < shape_[d]) {
      for (size_t op = 0; op < strides_.size(); ++op) offsets_[op] += strides_[op][d];
      return;
    }
    // This dimension wraps: undo its contribution and carry into the next one.
    for (size_t op = 0; op < strides_.size(); ++op) {
      offsets_[op] -= strides_[op][d] * (shape_[d] - 1);
    }
    index_[d] = 0;
  }
}

}  // namespace veomni::runtime::cpu
