// Reductions {axes: sorted non-negative dims, keep_dims: 0/1} and the
// numerically stable softmax / log_softmax {axis}. Float sums accumulate in
// double.

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/kernels/cpu/CpuKernels.h"
#include "runtime/kernels/cpu/KernelSupport.h"
#include "runtime/kernels/cpu/ReduceCommon.h"

namespace veomni::runtime::cpu {

absl::Status CheckReductionOperands(absl::string_view kernel, absl::Span<const TensorView> inputs,
                                    absl::Span<const TensorView> outputs,
                                    std::initializer_list<DType> supported) {
  VEOMNI_RETURN_IF_ERROR(CheckArity(kernel, inputs, 1, 1, outputs, 1));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "output", outputs[0], inputs[0].dtype));
  return CheckSupportedDType(kernel, inputs[0].dtype, supported);
}

absl::StatusOr<std::vector<bool>> ReducedDims(absl::string_view kernel, const KernelAttrs& attrs,
                                              const TensorView& in, const TensorView& out) {
  VEOMNI_ASSIGN_OR_RETURN(std::vector<int64_t> axes, RequiredInts(kernel, attrs, "axes"));
  VEOMNI_ASSIGN_OR_RETURN(bool keep_dims, OptionalFlag(kernel, attrs, "keep_dims", false));
  size_t rank = in.shape.size();
  std::vector<bool> reduced(rank, false);
  for (size_t i = 0; i < axes.size(); ++i) {
    bool in_range = axes[i] >= 0 && axes[i] < static_cast<int64_t>(rank);
    bool increasing = i == 0 || axes[i] > axes[i - 1];
    if (!in_range || !increasing) {
      return absl::InvalidArgumentError(
          absl::StrCat(kernel, ": axes [", absl::StrJoin(axes, ", "),
                       "] must be sorted, distinct and within rank ", rank));
    }
    reduced[axes[i]] = true;
  }
  std::vector<int64_t> expected;
  for (size_t d = 0; d < rank; ++d) {
    if (!reduced[d]) {
      expected.push_back(in.shape[d]);
    } else if (keep_dims) {
      expected.push_back(1);
    }
  }
  VEOMNI_RETURN_IF_ERROR(CheckShape(kernel, "output", out, expected));
  return reduced;
}

namespace {

struct ReductionPlan {
  // Per input dim, the stride of the matching output element (0 if reduced).
  std::vector<int64_t> output_strides;
  int64_t reduced_count = 1;  // input elements per output element
  int64_t output_count = 1;
};

absl::StatusOr<ReductionPlan> PlanReduction(absl::string_view kernel, const KernelAttrs& attrs,
                                            const TensorView& in, const TensorView& out) {
  VEOMNI_ASSIGN_OR_RETURN(std::vector<bool> reduced, ReducedDims(kernel, attrs, in, out));
  const size_t rank = in.shape.size();
  std::vector<int64_t> kept_shape;
  ReductionPlan plan;
  for (size_t d = 0; d < rank; ++d) {
    if (reduced[d]) {
      plan.reduced_count *= in.shape[d];
    } else {
      kept_shape.push_back(in.shape[d]);
    }
  }
  std::vector<int64_t> kept_strides = ContiguousStrides(kept_shape);
  size_t kept = 0;
  for (size_t d = 0; d < rank; ++d) {
    plan.output_strides.push_back(reduced[d] ? 0 : kept_strides[kept++]);
  }
  plan.output_count = DimProduct(kept_shape, 0, kept_shape.size());
  return plan;
}

// Folds every input element into its output's accumulator with `combine`.
template <typename In, typename Acc, typename Combine>
void Accumulate(const TensorView& in, const ReductionPlan& plan, std::vector<Acc>& accumulators,
                Combine combine) {
  const In* x = in.As<In>();
  StridedIndexWalker walker(in.shape, {plan.output_strides});
  int64_t count = in.NumElements();
  for (int64_t i = 0; i < count; ++i, walker.Next()) {
    combine(accumulators[walker.Offset(0)], x[i]);
  }
}

template <typename Int>
void SumIntegers(const TensorView& in, const TensorView& out, const ReductionPlan& plan) {
  // Unsigned accumulation wraps instead of overflowing.
  std::vector<uint64_t> sums(plan.output_count, 0);
  Accumulate<Int>(in, plan, sums, [](uint64_t& sum, Int x) { sum += static_cast<uint64_t>(x); });
  Int* y = out.As<Int>();
  for (int64_t i = 0; i < plan.output_count; ++i) {
    y[i] = static_cast<Int>(static_cast<std::make_unsigned_t<Int>>(sums[i]));
  }
}

template <typename T>
void MaxOf(const TensorView& in, const TensorView& out, const ReductionPlan& plan) {
  std::vector<T> maxima(plan.output_count, std::numeric_limits<T>::lowest());
  if constexpr (std::is_floating_point_v<T>) {
    std::fill(maxima.begin(), maxima.end(), -std::numeric_limits<T>::infinity());
  }
  Accumulate<T>(in, plan, maxima, [](T& max, T x) {
    // A NaN, once seen, stays (x > NaN is false), as in torch.amax.
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(x)) max = x;
    }
    if (x > max) max = x;
  });
  std::copy(maxima.begin(), maxima.end(), out.As<T>());
}

// Calls `row(x, y, count, stride)` for every 1-D line along `axis`.
template <typename Row>
absl::Status ForEachLineAlongAxis(absl::string_view kernel, const KernelAttrs& attrs,
                                  absl::Span<const TensorView> inputs,
                                  absl::Span<const TensorView> outputs, Row row) {
  VEOMNI_RETURN_IF_ERROR(CheckArity(kernel, inputs, 1, 1, outputs, 1));
  const TensorView& in = inputs[0];
  const TensorView& out = outputs[0];
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kernel, in.dtype, {DType::kF32}));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "output", out, in.dtype));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kernel, "output", out, in.shape));
  VEOMNI_ASSIGN_OR_RETURN(int64_t raw_axis, RequiredInt(kernel, attrs, "axis"));
  VEOMNI_ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(kernel, raw_axis, in.shape.size()));
  int64_t outer = DimProduct(in.shape, 0, axis);
  int64_t length = in.shape[axis];
  int64_t inner = DimProduct(in.shape, axis + 1, in.shape.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      int64_t base = o * length * inner + i;
      row(in.As<float>() + base, out.As<float>() + base, length, inner);
    }
  }
  return absl::OkStatus();
}

// Max of a strided line and log(sum(exp(x - max))), in double.
struct LineStatistics {
  double max;
  double log_sum_exp_shifted;
};

LineStatistics ComputeLineStatistics(const float* x, int64_t count, int64_t stride) {
  double max = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < count; ++j) {
    double value = x[j * stride];
    if (std::isnan(value) || value > max) max = value;
  }
  double sum = 0.0;
  for (int64_t j = 0; j < count; ++j) sum += std::exp(x[j * stride] - max);
  return {max, std::log(sum)};
}

}  // namespace

absl::Status ReduceSum(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                       absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "reduce_sum";
  VEOMNI_RETURN_IF_ERROR(CheckReductionOperands(kKernel, inputs, outputs,
                                                {DType::kF32, DType::kI64, DType::kI32}));
  VEOMNI_ASSIGN_OR_RETURN(ReductionPlan plan, PlanReduction(kKernel, attrs, inputs[0], outputs[0]));
  switch (inputs[0].dtype) {
    case DType::kI64: SumIntegers<int64_t>(inputs[0], outputs[0], plan); break;
    case DType::kI32: SumIntegers<int32_t>(inputs[0], outputs[0], plan); break;
    default: {
      std::vector<double> sums(plan.output_count, 0.0);
      Accumulate<float>(inputs[0], plan, sums, [](double& sum, float x) { sum += x; });
      float* y = outputs[0].As<float>();
      for (int64_t i = 0; i < plan.output_count; ++i) y[i] = static_cast<float>(sums[i]);
    }
  }
  return absl::OkStatus();
}

// Each square in double (exact for a float), summed in double.
absl::Status ReduceSumSquares(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                              absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "reduce_sum_squares";
  VEOMNI_RETURN_IF_ERROR(CheckReductionOperands(kKernel, inputs, outputs, {DType::kF32}));
  VEOMNI_ASSIGN_OR_RETURN(ReductionPlan plan, PlanReduction(kKernel, attrs, inputs[0], outputs[0]));
  std::vector<double> sums(plan.output_count, 0.0);
  Accumulate<float>(inputs[0], plan, sums, [](double& sum, float x) {
    double value = x;
    sum += value * value;
  });
  float* y = outputs[0].As<float>();
  for (int64_t i = 0; i < plan.output_count; ++i) y[i] = static_cast<float>(sums[i]);
  return absl::OkStatus();
}

// A mean over zero elements is NaN (0 / 0), as in PyTorch.
absl::Status ReduceMean(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                        absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "reduce_mean";
  VEOMNI_RETURN_IF_ERROR(CheckReductionOperands(kKernel, inputs, outputs, {DType::kF32}));
  VEOMNI_ASSIGN_OR_RETURN(ReductionPlan plan, PlanReduction(kKernel, attrs, inputs[0], outputs[0]));
  std::vector<double> sums(plan.output_count, 0.0);
  Accumulate<float>(inputs[0], plan, sums, [](double& sum, float x) { sum += x; });
  float* y = outputs[0].As<float>();
  for (int64_t i = 0; i < plan.output_count; ++i) {
    y[i] = static_cast<float>(sums[i] / static_cast<double>(plan.reduced_count));
  }
  return absl::OkStatus();
}

absl::Status ReduceMax(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                       absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "reduce_max";
  VEOMNI_RETURN_IF_ERROR(CheckReductionOperands(kKernel, inputs, outputs,
                                                {DType::kF32, DType::kI64, DType::kI32}));
  VEOMNI_ASSIGN_OR_RETURN(ReductionPlan plan, PlanReduction(kKernel, attrs, inputs[0], outputs[0]));
  if (plan.reduced_count == 0 && plan.output_count > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        kKernel, ": reducing input of shape ", FormatShape(inputs[0].shape),
        " over an empty axis has no maximum"));
  }
  switch (inputs[0].dtype) {
    case DType::kI64: MaxOf<int64_t>(inputs[0], outputs[0], plan); break;
    case DType::kI32: MaxOf<int32_t>(inputs[0], outputs[0], plan); break;
    default: MaxOf<float>(inputs[0], outputs[0], plan);
  }
  return absl::OkStatus();
}

absl::Status Softmax(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                     absl::Span<const TensorView> outputs) {
  return ForEachLineAlongAxis(
      "softmax", attrs, inputs, outputs,
      [](const float* x, float* y, int64_t count, int64_t stride) {
        LineStatistics stats = ComputeLineStatistics(x, count, stride);
        double shift = stats.max + stats.log_sum_exp_shifted;
        for (int64_t j = 0; j < count; ++j) {
          y[j * stride] = static_cast<float>(std::exp(x[j * stride] - shift));
        }
      });
}

absl::Status LogSoftmax(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                        absl::Span<const TensorView> outputs) {
  return ForEachLineAlongAxis(
      "log_softmax", attrs, inputs, outputs,
      [](const float* x, float* y, int64_t count, int64_t stride) {
        LineStatistics stats = ComputeLineStatistics(x, count, stride);
        for (int64_t j = 0; j < count; ++j) {
          y[j * stride] =
              static_cast<float>((x[j * stride] - stats.max) - stats.log_sum_exp_shifted);
        }
      });
}

}  // namespace veomni::runtime::cpu
