// reshape, transpose, slice, concat, broadcast_to, copy and fill against
// naive index loops, for several element widths.

#include <cmath>

#include "KernelTestUtil.h"

namespace veomni::runtime {
namespace {

using testing::F32;
using testing::I1;
using testing::I32;
using testing::I64;
using testing::OwnedTensor;
using testing::RunKernel;

std::vector<float> Iota(int64_t count) {
  std::vector<float> values(count);
  for (int64_t i = 0; i < count; ++i) values[i] = static_cast<float>(i);
  return values;
}

TEST(CpuShape, ReshapeCopiesBytes) {
  OwnedTensor x = I64({2, 3}, {1, 2, 3, 4, 5, 6});
  OwnedTensor y(DType::kI64, {3, 2});
  ASSERT_TRUE(RunKernel("reshape", {}, {&x}, {&y}).ok());
  EXPECT_EQ(y.Values<int64_t>(), x.Values<int64_t>());
  OwnedTensor wrong(DType::kI64, {4});
  EXPECT_EQ(RunKernel("reshape", {}, {&x}, {&wrong}).message(),
            "reshape: input [2, 3] has 6 elements, output [4] has 4");
  OwnedTensor wrong_dtype(DType::kF32, {6});
  EXPECT_EQ(RunKernel("reshape", {}, {&x}, {&wrong_dtype}).message(),
            "reshape: output has dtype f32, expected i64");
}

TEST(CpuShape, TransposeMatchesNaivePermutation) {
  std::vector<int64_t> shape = {2, 3, 4};
  OwnedTensor x = F32(shape, Iota(24));
  for (std::vector<int64_t> permutation : std::vector<std::vector<int64_t>>{
           {0, 1, 2}, {2, 1, 0}, {1, 0, 2}, {0, 2, 1}, {2, 0, 1}, {1, 2, 0}}) {
    std::vector<int64_t> out_shape;
    for (int64_t d : permutation) out_shape.push_back(shape[d]);
    OwnedTensor y(DType::kF32, out_shape);
    KernelAttrs attrs;
    attrs.SetInts("permutation", permutation);
    ASSERT_TRUE(RunKernel("transpose", attrs, {&x}, {&y}).ok());
    std::vector<float> expected;
    for (int64_t flat = 0; flat < 24; ++flat) {
      std::vector<int64_t> out_index = testing::Unravel(out_shape, flat);
      std::vector<int64_t> in_index(3);
      for (int d = 0; d < 3; ++d) in_index[permutation[d]] = out_index[d];
      expected.push_back(x.Values<float>()[testing::Ravel(shape, in_index)]);
    }
    EXPECT_EQ(y.Values<float>(), expected);
  }
  // 2-byte elements take the same path with a narrower word.
  OwnedTensor halves = testing::MakeTensor<uint16_t>(DType::kBF16, {2, 2}, {1, 2, 3, 4});
  OwnedTensor transposed(DType::kBF16, {2, 2});
  KernelAttrs swap;
  swap.SetInts("permutation", {1, 0});
  ASSERT_TRUE(RunKernel("transpose", swap, {&halves}, {&transposed}).ok());
  EXPECT_EQ(transposed.Values<uint16_t>(), (std::vector<uint16_t>{1, 3, 2, 4}));
  KernelAttrs bad;
  bad.SetInts("permutation", {0, 0, 1});
  OwnedTensor y(DType::kF32, shape);
  EXPECT_EQ(RunKernel("transpose", bad, {&x}, {&y}).message(),
            "transpose: permutation [0, 0, 1] is not a permutation of the 3 dims of [2, 3, 4]");
}

TEST(CpuShape, SliceWithStartsLimitsAndStrides) {
  std::vector<int64_t> shape = {4, 5};
  OwnedTensor x = F32(shape, Iota(20));
  KernelAttrs attrs;
  attrs.SetInts("start", {1, 0});
  attrs.SetInts("limit", {4, 5});
  attrs.SetInts("stride", {2, 3});
  OwnedTensor y(DType::kF32, {2, 2});
  ASSERT_TRUE(RunKernel("slice", attrs, {&x}, {&y}).ok());
  EXPECT_EQ(y.Values<float>(), (std::vector<float>{5, 8, 15, 18}));

  KernelAttrs unit_stride;
  unit_stride.SetInts("start", {2, 1});
  unit_stride.SetInts("limit", {3, 4});
  OwnedTensor z(DType::kF32, {1, 3});
  ASSERT_TRUE(RunKernel("slice", unit_stride, {&x}, {&z}).ok());
  EXPECT_EQ(z.Values<float>(), (std::vector<float>{11, 12, 13}));

  KernelAttrs out_of_bounds;
  out_of_bounds.SetInts("start", {0, 0});
  out_of_bounds.SetInts("limit", {4, 6});
  EXPECT_EQ(RunKernel("slice", out_of_bounds, {&x}, {&y}).message(),
            "slice: dim 1 of [4, 5] has start 0, limit 6, stride 1; expected 0 <= start <= "
            "limit <= 5 and stride >= 1");
}

TEST(CpuShape, ConcatAnyNumberOfInputsAlongEachAxis) {
  OwnedTensor a = F32({2, 1}, {1, 2});
  OwnedTensor b = F32({2, 2}, {3, 4, 5, 6});
  OwnedTensor c = F32({2, 0}, {});
  OwnedTensor d = F32({2, 1}, {7, 8});
  KernelAttrs last;
  last.SetInt("axis", -1);
  OwnedTensor out(DType::kF32, {2, 4});
  ASSERT_TRUE(RunKernel("concat", last, {&a, &b, &c, &d}, {&out}).ok());
  EXPECT_EQ(out.Values<float>(), (std::vector<float>{1, 3, 4, 7, 2, 5, 6, 8}));

  KernelAttrs first;
  first.SetInt("axis", 0);
  OwnedTensor rows(DType::kF32, {4, 1});
  ASSERT_TRUE(RunKernel("concat", first, {&a, &d}, {&rows}).ok());
  EXPECT_EQ(rows.Values<float>(), (std::vector<float>{1, 2, 7, 8}));

  OwnedTensor wrong(DType::kF32, {3, 2});
  EXPECT_EQ(RunKernel("concat", first, {&a, &wrong}, {&rows}).message(),
            "concat: input 1 has shape [3, 2], which differs from [2, 1] outside axis 0");
  OwnedTensor ints = I64({2, 1}, {1, 2});
  EXPECT_EQ(RunKernel("concat", first, {&a, &ints}, {&rows}).message(),
            "concat: input 1 has dtype i64, expected f32");
  EXPECT_EQ(RunKernel("concat", first, {}, {&rows}).message(),
            "concat: expects at least 1 inputs, got 0");
}

TEST(CpuShape, BroadcastToRepeatsSizeOneDims) {
  OwnedTensor x = I32({3, 1}, {1, 2, 3});
  OwnedTensor y(DType::kI32, {2, 3, 2});
  ASSERT_TRUE(RunKernel("broadcast_to", {}, {&x}, {&y}).ok());
  std::vector<int32_t> expected;
  for (int64_t flat = 0; flat < 12; ++flat) {
    expected.push_back(
        x.Values<int32_t>()[testing::BroadcastSource({3, 1}, testing::Unravel({2, 3, 2}, flat))]);
  }
  EXPECT_EQ(y.Values<int32_t>(), expected);
  OwnedTensor bad(DType::kI32, {2, 2});
  EXPECT_EQ(RunKernel("broadcast_to", {}, {&x}, {&bad}).message(),
            "broadcast_to: shape [3, 1] does not broadcast to [2, 2]");
  OwnedTensor flags = I1({1}, {1});
  OwnedTensor many(DType::kI1, {3});
  ASSERT_TRUE(RunKernel("broadcast_to", {}, {&flags}, {&many}).ok());
  EXPECT_EQ(many.Values<uint8_t>(), (std::vector<uint8_t>{1, 1, 1}));
}

TEST(CpuShape, CopyAndFill) {
  OwnedTensor x = F32({3}, {1.5f, -2.0f, 3.0f});
  OwnedTensor y(DType::kF32, {3});
  ASSERT_TRUE(RunKernel("copy", {}, {&x}, {&y}).ok());
  EXPECT_EQ(y.Values<float>(), x.Values<float>());
  OwnedTensor wrong(DType::kF32, {1, 3});
  EXPECT_EQ(RunKernel("copy", {}, {&x}, {&wrong}).code(), absl::StatusCode::kInvalidArgument);

  KernelAttrs value;
  value.SetFloat("value", -0.25);
  ASSERT_TRUE(RunKernel("fill", value, {}, {&y}).ok());
  EXPECT_EQ(y.Values<float>(), (std::vector<float>{-0.25f, -0.25f, -0.25f}));
  OwnedTensor ints(DType::kI64, {2});
  KernelAttrs ignore;
  ignore.SetFloat("value", -100);
  ASSERT_TRUE(RunKernel("fill", ignore, {}, {&ints}).ok());
  EXPECT_EQ(ints.Values<int64_t>(), (std::vector<int64_t>{-100, -100}));
  OwnedTensor int32s(DType::kI32, {2});
  ignore.SetInt("value", 7);  // an int attribute works too
  ASSERT_TRUE(RunKernel("fill", ignore, {}, {&int32s}).ok());
  EXPECT_EQ(int32s.Values<int32_t>(), (std::vector<int32_t>{7, 7}));
  EXPECT_EQ(RunKernel("fill", value, {}, {&ints}).message(),
            "fill: value -0.25 is not representable as an integer");
  OwnedTensor halves(DType::kF16, {2});
  EXPECT_EQ(RunKernel("fill", value, {}, {&halves}).code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(RunKernel("fill", {}, {}, {&y}).message(), "fill: attribute 'value' is not set");
}

}  // namespace
}  // namespace veomni::runtime
