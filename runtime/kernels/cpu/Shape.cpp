// Data movement for any dtype: reshape, transpose, slice, concat,
// broadcast_to, copy, and fill. Elements move as whole machine words of
// their width, so no kernel here looks at values (except fill).

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/kernels/cpu/CpuKernels.h"
#include "runtime/kernels/cpu/KernelSupport.h"
#include "runtime/kernels/cpu/ShapeCommon.h"

namespace veomni::runtime::cpu {
namespace {

template <typename Word>
void GatherWords(const TensorView& in, int64_t base, std::vector<int64_t> in_strides,
                 const TensorView& out) {
  const Word* x = in.As<Word>() + base;
  Word* y = out.As<Word>();
  StridedIndexWalker walker(out.shape, {std::move(in_strides)});
  int64_t count = out.NumElements();
  for (int64_t i = 0; i < count; ++i, walker.Next()) y[i] = x[walker.Offset(0)];
}

// out[index] = in[base + sum(index * in_strides)] over every output index.
absl::Status GatherStrided(absl::string_view kernel, const TensorView& in, int64_t base,
                           std::vector<int64_t> in_strides, const TensorView& out) {
  switch (DTypeBytes(in.dtype)) {
    case 1: GatherWords<uint8_t>(in, base, std::move(in_strides), out); break;
    case 2: GatherWords<uint16_t>(in, base, std::move(in_strides), out); break;
    case 4: GatherWords<uint32_t>(in, base, std::move(in_strides), out); break;
    case 8: GatherWords<uint64_t>(in, base, std::move(in_strides), out); break;
    default: return UnimplementedDType(kernel, in.dtype);
  }
  return absl::OkStatus();
}

absl::Status CheckOneToOne(absl::string_view kernel, absl::Span<const TensorView> inputs,
                           absl::Span<const TensorView> outputs) {
  VEOMNI_RETURN_IF_ERROR(CheckArity(kernel, inputs, 1, 1, outputs, 1));
  return CheckDType(kernel, "output", outputs[0], inputs[0].dtype);
}

template <typename T>
void FillWith(const TensorView& out, T value) {
  T* y = out.As<T>();
  for (int64_t i = 0; i < out.NumElements(); ++i) y[i] = value;
}

}  // namespace

// reshape: the output view has the new shape; bytes are copied as they are.
absl::Status Reshape(const KernelAttrs&, absl::Span<const TensorView> inputs,
                     absl::Span<const TensorView> outputs) {
  VEOMNI_RETURN_IF_ERROR(CheckReshape(inputs, outputs));
  // memmove: an executor that reshapes in place passes the same buffer twice.
  if (inputs[0].Bytes() > 0) std::memmove(outputs[0].data, inputs[0].data, inputs[0].Bytes());
  return absl::OkStatus();
}

// transpose {permutation}: result dim i is input dim permutation[i].
absl::Status Transpose(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                       absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "transpose";
  VEOMNI_ASSIGN_OR_RETURN(StridedRead read, PlanTranspose(attrs, inputs, outputs));
  return GatherStrided(kKernel, inputs[0], read.base, std::move(read.strides), outputs[0]);
}

// slice {start, limit, stride}: per dim, elements start, start+stride, ...
// below limit; 0 <= start <= limit <= dim and stride >= 1. stride defaults
// to all ones.
absl::Status Slice(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                   absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "slice";
  VEOMNI_ASSIGN_OR_RETURN(StridedRead read, PlanSlice(attrs, inputs, outputs));
  return GatherStrided(kKernel, inputs[0], read.base, std::move(read.strides), outputs[0]);
}

// concat {axis}: one or more inputs of one dtype and rank, equal except at axis.
absl::Status Concat(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                    absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "concat";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 1, kAnyNumberOfInputs, outputs, 1));
  const TensorView& first = inputs[0];
  const TensorView& out = outputs[0];
  size_t rank = first.shape.size();
  VEOMNI_ASSIGN_OR_RETURN(int64_t raw_axis, RequiredInt(kKernel, attrs, "axis"));
  VEOMNI_ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(kKernel, raw_axis, rank));
  std::vector<int64_t> expected = first.shape;
  expected[axis] = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorView& in = inputs[i];
    std::string role = absl::StrCat("input ", i);
    VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, role, in, first.dtype));
    bool compatible = in.shape.size() == rank;
    for (size_t d = 0; compatible && d < rank; ++d) {
      compatible = static_cast<int64_t>(d) == axis || in.shape[d] == first.shape[d];
    }
    if (!compatible) {
      return absl::InvalidArgumentError(absl::StrCat(
          kKernel, ": ", role, " has shape ", FormatShape(in.shape), ", which differs from ",
          FormatShape(first.shape), " outside axis ", axis));
    }
    expected[axis] += in.shape[axis];
  }
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", out, first.dtype));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", out, expected));
  // Each input contributes one contiguous block per index of the outer dims.
  int64_t element_bytes = DTypeBytes(first.dtype);
  int64_t outer = DimProduct(first.shape, 0, axis);
  int64_t inner_bytes = DimProduct(first.shape, axis + 1, rank) * element_bytes;
  char* destination = static_cast<char*>(out.data);
  for (int64_t o = 0; o < outer; ++o) {
    for (const TensorView& in : inputs) {
      int64_t block = in.shape[axis] * inner_bytes;
      if (block == 0) continue;
      std::memcpy(destination, static_cast<const char*>(in.data) + o * block, block);
      destination += block;
    }
  }
  return absl::OkStatus();
}

// broadcast_to: the output view's shape is the target (numpy rules).
absl::Status BroadcastTo(const KernelAttrs&, absl::Span<const TensorView> inputs,
                         absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "broadcast_to";
  VEOMNI_RETURN_IF_ERROR(CheckOneToOne(kKernel, inputs, outputs));
  const TensorView& in = inputs[0];
  const TensorView& out = outputs[0];
  if (!IsBroadcastableTo(in.shape, out.shape)) {
    return absl::InvalidArgumentError(absl::StrCat(kKernel, ": shape ", FormatShape(in.shape),
                                                   " does not broadcast to ",
                                                   FormatShape(out.shape)));
  }
  return GatherStrided(kKernel, in, 0, BroadcastStrides(in.shape, out.shape), out);
}

// copy: y = x, same dtype and shape.
absl::Status Copy(const KernelAttrs&, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "copy";
  VEOMNI_RETURN_IF_ERROR(CheckOneToOne(kKernel, inputs, outputs));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", outputs[0], inputs[0].shape));
  if (inputs[0].Bytes() > 0) std::memmove(outputs[0].data, inputs[0].data, inputs[0].Bytes());
  return absl::OkStatus();
}

// fill {value}: no inputs; f32 gets the value rounded to float, i64/i32 get
// it only if it is an integer in range.
absl::Status Fill(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "fill";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 0, 0, outputs, 1));
  const TensorView& out = outputs[0];
  VEOMNI_RETURN_IF_ERROR(
      CheckSupportedDType(kKernel, out.dtype, {DType::kF32, DType::kI64, DType::kI32}));
  VEOMNI_ASSIGN_OR_RETURN(double value, RequiredFloat(kKernel, attrs, "value"));
  switch (out.dtype) {
    case DType::kI64: {
      VEOMNI_ASSIGN_OR_RETURN(int64_t integer, IntegralFillValue<int64_t>(kKernel, value));
      FillWith<int64_t>(out, integer);
      break;
    }
    case DType::kI32: {
      VEOMNI_ASSIGN_OR_RETURN(int32_t integer, IntegralFillValue<int32_t>(kKernel, value));
      FillWith<int32_t>(out, integer);
      break;
    }
    default:
      FillWith<float>(out, static_cast<float>(value));
  }
  return absl::OkStatus();
}

absl::StatusOr<StridedRead> PlanTranspose(const KernelAttrs& attrs,
                                          absl::Span<const TensorView> inputs,
                                          absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "transpose";
  VEOMNI_RETURN_IF_ERROR(CheckOneToOne(kKernel, inputs, outputs));
  const TensorView& in = inputs[0];
  VEOMNI_ASSIGN_OR_RETURN(std::vector<int64_t> permutation,
                          RequiredInts(kKernel, attrs, "permutation"));
  size_t rank = in.shape.size();
  std::vector<bool> seen(rank, false);
  bool valid = permutation.size() == rank;
  for (int64_t dim : permutation) {
    if (!valid) break;
    valid = dim >= 0 && dim < static_cast<int64_t>(rank) && !seen[dim];
    if (valid) seen[dim] = true;
  }
  if (!valid) {
    return absl::InvalidArgumentError(
        absl::StrCat(kKernel, ": permutation [", absl::StrJoin(permutation, ", "),
                     "] is not a permutation of the ", rank, " dims of ", FormatShape(in.shape)));
  }
  std::vector<int64_t> in_strides = ContiguousStrides(in.shape);
  std::vector<int64_t> expected, gathered_strides;
  for (int64_t dim : permutation) {
    expected.push_back(in.shape[dim]);
    gathered_strides.push_back(in_strides[dim]);
  }
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", outputs[0], expected));
  return StridedRead{0, std::move(gathered_strides)};
}

absl::StatusOr<StridedRead> PlanSlice(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                                      absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "slice";
  VEOMNI_RETURN_IF_ERROR(CheckOneToOne(kKernel, inputs, outputs));
  const TensorView& in = inputs[0];
  size_t rank = in.shape.size();
  VEOMNI_ASSIGN_OR_RETURN(std::vector<int64_t> start, RequiredInts(kKernel, attrs, "start"));
  VEOMNI_ASSIGN_OR_RETURN(std::vector<int64_t> limit, RequiredInts(kKernel, attrs, "limit"));
  std::vector<int64_t> stride(rank, 1);
  if (attrs.Has("stride")) {
    VEOMNI_ASSIGN_OR_RETURN(stride, RequiredInts(kKernel, attrs, "stride"));
  }
  if (start.size() != rank || limit.size() != rank || stride.size() != rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        kKernel, ": start, limit and stride have ", start.size(), ", ", limit.size(), " and ",
        stride.size(), " entries, expected one per dim of ", FormatShape(in.shape)));
  }
  std::vector<int64_t> in_strides = ContiguousStrides(in.shape);
  std::vector<int64_t> expected, gathered_strides;
  int64_t base = 0;
  for (size_t d = 0; d < rank; ++d) {
    if (start[d] < 0 || start[d] > limit[d] || limit[d] > in.shape[d] || stride[d] < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          kKernel, ": dim ", d, " of ", FormatShape(in.shape), " has start ", start[d],
          ", limit ", limit[d], ", stride ", stride[d],
          "; expected 0 <= start <= limit <= ", in.shape[d], " and stride >= 1"));
    }
    expected.push_back((limit[d] - start[d] + stride[d] - 1) / stride[d]);
    gathered_strides.push_back(in_strides[d] * stride[d]);
    base += start[d] * in_strides[d];
  }
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", outputs[0], expected));
  return StridedRead{base, std::move(gathered_strides)};
}

absl::Status CheckReshape(absl::Span<const TensorView> inputs,
                          absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "reshape";
  VEOMNI_RETURN_IF_ERROR(CheckOneToOne(kKernel, inputs, outputs));
  if (inputs[0].NumElements() != outputs[0].NumElements()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kKernel, ": input ", FormatShape(inputs[0].shape), " has ",
                     inputs[0].NumElements(), " elements, output ",
                     FormatShape(outputs[0].shape), " has ", outputs[0].NumElements()));
  }
  return absl::OkStatus();
}

}  // namespace veomni::runtime::cpu
