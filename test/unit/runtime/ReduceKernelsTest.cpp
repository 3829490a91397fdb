// reduce_sum / reduce_sum_squares / reduce_mean / reduce_max over arbitrary
// axis sets, and
// softmax / log_softmax, against naive loops.

#include <algorithm>
#include <cmath>
#include <limits>

#include "KernelTestUtil.h"

namespace veomni::runtime {
namespace {

using testing::F32;
using testing::I32;
using testing::I64;
using testing::OwnedTensor;
using testing::RunKernel;

KernelAttrs ReduceAttrs(std::vector<int64_t> axes, bool keep_dims) {
  KernelAttrs attrs;
  attrs.SetInts("axes", std::move(axes));
  attrs.SetInt("keep_dims", keep_dims ? 1 : 0);
  return attrs;
}

// Groups input elements by their index with the reduced axes zeroed.
std::vector<std::vector<double>> GroupsOf(const std::vector<float>& values,
                                          const std::vector<int64_t>& shape,
                                          const std::vector<int64_t>& axes) {
  std::vector<int64_t> kept_shape = shape;
  for (int64_t axis : axes) kept_shape[axis] = 1;
  std::vector<std::vector<double>> groups(testing::NumElementsOf(kept_shape));
  for (int64_t flat = 0; flat < static_cast<int64_t>(values.size()); ++flat) {
    std::vector<int64_t> index = testing::Unravel(shape, flat);
    for (int64_t axis : axes) index[axis] = 0;
    groups[testing::Ravel(kept_shape, index)].push_back(values[flat]);
  }
  return groups;
}

TEST(CpuReduce, SumMeanMaxOverAxisSets) {
  std::mt19937 rng(5);
  std::vector<int64_t> shape = {2, 3, 4};
  OwnedTensor x = testing::RandomF32(shape, rng);
  for (std::vector<int64_t> axes :
       std::vector<std::vector<int64_t>>{{0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1, 2}, {}}) {
    for (bool keep_dims : {false, true}) {
      std::vector<int64_t> out_shape;
      for (int64_t d = 0; d < 3; ++d) {
        bool reduced = std::find(axes.begin(), axes.end(), d) != axes.end();
        if (!reduced) out_shape.push_back(shape[d]);
        if (reduced && keep_dims) out_shape.push_back(1);
      }
      std::vector<std::vector<double>> groups = GroupsOf(x.Values<float>(), shape, axes);
      std::vector<double> sums, squares, means, maxima;
      for (const std::vector<double>& group : groups) {
        double sum = 0, square_sum = 0, max = -INFINITY;
        for (double v : group) {
          sum += v;
          square_sum += v * v;
          max = std::max(max, v);
        }
        sums.push_back(sum);
        squares.push_back(square_sum);
        means.push_back(sum / group.size());
        maxima.push_back(max);
      }
      KernelAttrs attrs = ReduceAttrs(axes, keep_dims);
      OwnedTensor out(DType::kF32, out_shape);
      ASSERT_TRUE(RunKernel("reduce_sum", attrs, {&x}, {&out}).ok());
      EXPECT_TRUE(testing::AllClose(out.Values<float>(), sums, 1e-6, 1e-6));
      ASSERT_TRUE(RunKernel("reduce_sum_squares", attrs, {&x}, {&out}).ok());
      EXPECT_TRUE(testing::AllClose(out.Values<float>(), squares, 1e-6, 1e-6));
      ASSERT_TRUE(RunKernel("reduce_mean", attrs, {&x}, {&out}).ok());
      EXPECT_TRUE(testing::AllClose(out.Values<float>(), means, 1e-6, 1e-6));
      ASSERT_TRUE(RunKernel("reduce_max", attrs, {&x}, {&out}).ok());
      EXPECT_TRUE(testing::AllClose(out.Values<float>(), maxima, 0, 0));
    }
  }
}

TEST(CpuReduce, IntegerSumAndMax) {
  OwnedTensor x = I64({2, 3}, {1, -5, 3, 4, 5, -6});
  OwnedTensor out(DType::kI64, {3});
  ASSERT_TRUE(RunKernel("reduce_sum", ReduceAttrs({0}, false), {&x}, {&out}).ok());
  EXPECT_EQ(out.Values<int64_t>(), (std::vector<int64_t>{5, 0, -3}));
  ASSERT_TRUE(RunKernel("reduce_max", ReduceAttrs({0}, false), {&x}, {&out}).ok());
  EXPECT_EQ(out.Values<int64_t>(), (std::vector<int64_t>{4, 5, 3}));
  OwnedTensor y = I32({2, 2}, {-7, -8, 2, 1});
  OwnedTensor row_max(DType::kI32, {2, 1});
  ASSERT_TRUE(RunKernel("reduce_max", ReduceAttrs({1}, true), {&y}, {&row_max}).ok());
  EXPECT_EQ(row_max.Values<int32_t>(), (std::vector<int32_t>{-7, 2}));
  OwnedTensor means(DType::kI64, {3});
  EXPECT_EQ(RunKernel("reduce_mean", ReduceAttrs({0}, false), {&x}, {&means}).code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(RunKernel("reduce_sum_squares", ReduceAttrs({0}, false), {&x}, {&means}).code(),
            absl::StatusCode::kUnimplemented);
}

TEST(CpuReduce, MaxPropagatesNanAndEmptyMeanIsNan) {
  OwnedTensor x = F32({2, 2}, {1.0f, std::nanf(""), 3.0f, 2.0f});
  OwnedTensor out(DType::kF32, {2});
  ASSERT_TRUE(RunKernel("reduce_max", ReduceAttrs({1}, false), {&x}, {&out}).ok());
  EXPECT_TRUE(std::isnan(out.Values<float>()[0]));
  EXPECT_EQ(out.Values<float>()[1], 3.0f);

  OwnedTensor empty(DType::kF32, {2, 0});
  OwnedTensor mean(DType::kF32, {2});
  ASSERT_TRUE(RunKernel("reduce_mean", ReduceAttrs({1}, false), {&empty}, {&mean}).ok());
  EXPECT_TRUE(std::isnan(mean.Values<float>()[0]));
  ASSERT_TRUE(RunKernel("reduce_sum", ReduceAttrs({1}, false), {&empty}, {&mean}).ok());
  EXPECT_EQ(mean.Values<float>()[0], 0.0f);
  EXPECT_EQ(RunKernel("reduce_max", ReduceAttrs({1}, false), {&empty}, {&mean}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CpuReduce, RejectsBadAxesAndShapes) {
  OwnedTensor x(DType::kF32, {2, 3});
  OwnedTensor out(DType::kF32, {2});
  EXPECT_EQ(RunKernel("reduce_sum", ReduceAttrs({1, 0}, false), {&x}, {&out}).message(),
            "reduce_sum: axes [1, 0] must be sorted, distinct and within rank 2");
  EXPECT_EQ(RunKernel("reduce_sum", ReduceAttrs({2}, false), {&x}, {&out}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunKernel("reduce_sum", ReduceAttrs({0}, false), {&x}, {&out}).message(),
            "reduce_sum: output has shape [2], expected [3]");
  EXPECT_EQ(RunKernel("reduce_sum", {}, {&x}, {&out}).message(),
            "reduce_sum: attribute 'axes' is not set");
}

std::vector<double> NaiveSoftmax(const std::vector<float>& x, const std::vector<int64_t>& shape,
                                 int64_t axis, bool log) {
  std::vector<double> result(x.size());
  for (int64_t flat = 0; flat < static_cast<int64_t>(x.size()); ++flat) {
    std::vector<int64_t> index = testing::Unravel(shape, flat);
    double denominator = 0;
    for (int64_t j = 0; j < shape[axis]; ++j) {
      std::vector<int64_t> other = index;
      other[axis] = j;
      denominator += std::exp(double(x[testing::Ravel(shape, other)]));
    }
    result[flat] = log ? x[flat] - std::log(denominator) : std::exp(double(x[flat])) / denominator;
  }
  return result;
}

TEST(CpuReduce, SoftmaxAndLogSoftmaxAlongEveryAxis) {
  std::mt19937 rng(6);
  std::vector<int64_t> shape = {2, 3, 4};
  OwnedTensor x = testing::RandomF32(shape, rng, -4.0f, 4.0f);
  for (int64_t axis : {0, 1, 2, -1}) {
    KernelAttrs attrs;
    attrs.SetInt("axis", axis);
    int64_t positive = axis < 0 ? axis + 3 : axis;
    OwnedTensor out(DType::kF32, shape);
    ASSERT_TRUE(RunKernel("softmax", attrs, {&x}, {&out}).ok());
    EXPECT_TRUE(testing::AllClose(out.Values<float>(),
                                  NaiveSoftmax(x.Values<float>(), shape, positive, false), 1e-7,
                                  1e-6));
    ASSERT_TRUE(RunKernel("log_softmax", attrs, {&x}, {&out}).ok());
    EXPECT_TRUE(testing::AllClose(out.Values<float>(),
                                  NaiveSoftmax(x.Values<float>(), shape, positive, true), 1e-6,
                                  1e-6));
  }
}

TEST(CpuReduce, SoftmaxIsStableForHugeLogits) {
  OwnedTensor x = F32({3}, {1000.0f, 1000.0f, -1000.0f});
  OwnedTensor out(DType::kF32, {3});
  KernelAttrs attrs;
  attrs.SetInt("axis", 0);
  ASSERT_TRUE(RunKernel("softmax", attrs, {&x}, {&out}).ok());
  EXPECT_TRUE(testing::AllClose(out.Values<float>(), std::vector<double>{0.5, 0.5, 0.0}, 0, 0));
  ASSERT_TRUE(RunKernel("log_softmax", attrs, {&x}, {&out}).ok());
  EXPECT_TRUE(testing::AllClose(out.Values<float>(),
                                std::vector<double>{-std::log(2.0), -std::log(2.0), -2000.0 - std::log(2.0)},
                                1e-6, 1e-6));
  attrs.SetInt("axis", 1);
  EXPECT_EQ(RunKernel("softmax", attrs, {&x}, {&out}).message(),
            "softmax: axis 1 is out of range for rank 1");
  EXPECT_EQ(RunKernel("softmax", {}, {&x}, {&out}).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace veomni::runtime
