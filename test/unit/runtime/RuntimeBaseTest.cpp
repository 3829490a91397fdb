// Tensor views, dtypes, f32 <-> bf16/f16 bits, kernel attributes and the CPU
// kernel registry.

#include <cmath>
#include <limits>
#include <set>

#include "gtest/gtest.h"
#include "runtime/base/FloatBits.h"
#include "runtime/base/Tensor.h"
#include "runtime/kernels/Kernel.h"

namespace veomni::runtime {
namespace {

TEST(RuntimeTensor, DTypeBytesAndNames) {
  EXPECT_EQ(DTypeBytes(DType::kF32), 4);
  EXPECT_EQ(DTypeBytes(DType::kBF16), 2);
  EXPECT_EQ(DTypeBytes(DType::kF16), 2);
  EXPECT_EQ(DTypeBytes(DType::kI64), 8);
  EXPECT_EQ(DTypeBytes(DType::kI32), 4);
  EXPECT_EQ(DTypeBytes(DType::kI1), 1);
  EXPECT_EQ(DTypeName(DType::kBF16), "bf16");
  EXPECT_EQ(DTypeName(DType::kI1), "i1");
  EXPECT_EQ(DTypeName(static_cast<DType>(42)), "unknown");
  EXPECT_EQ(DTypeBytes(static_cast<DType>(42)), 0);
}

TEST(RuntimeTensor, ElementsAndBytesIncludingScalarsAndEmpty) {
  TensorView matrix{nullptr, DType::kI64, {2, 3}};
  EXPECT_EQ(matrix.NumElements(), 6);
  EXPECT_EQ(matrix.Bytes(), 48);
  TensorView scalar{nullptr, DType::kF32, {}};
  EXPECT_EQ(scalar.NumElements(), 1);
  EXPECT_EQ(scalar.Bytes(), 4);
  TensorView empty{nullptr, DType::kF32, {4, 0}};
  EXPECT_EQ(empty.NumElements(), 0);
}

TEST(RuntimeTensor, CheckedBytesRejectsWhatACorruptArtifactCouldHold) {
  EXPECT_EQ(*CheckedBytes(DType::kBF16, {3, 5}), 30);
  EXPECT_EQ(*CheckedBytes(DType::kI64, {}), 8);
  EXPECT_EQ(*CheckedBytes(DType::kF32, {0, int64_t{1} << 62}), 0);
  EXPECT_EQ(*CheckedBytes(DType::kI1, {int64_t{1} << 24, int64_t{1} << 24}), int64_t{1} << 48);
  EXPECT_FALSE(CheckedBytes(DType::kF32, {4, -1}).ok());
  EXPECT_FALSE(CheckedBytes(static_cast<DType>(9), {4}).ok());
  // 2^33 * 2^33 wraps to 0 in int64; the check must not.
  EXPECT_FALSE(CheckedBytes(DType::kF32, {int64_t{1} << 33, int64_t{1} << 33}).ok());
  EXPECT_FALSE(CheckedBytes(DType::kI1, {(int64_t{1} << 48) + 1}).ok());
}

TEST(RuntimeTensor, AsReinterpretsData) {
  float values[2] = {1.5f, -2.0f};
  TensorView view{values, DType::kF32, {2}};
  EXPECT_EQ(view.As<float>()[1], -2.0f);
}

TEST(RuntimeTensor, FormatShape) {
  EXPECT_EQ(FormatShape({2, 3, 4}), "[2, 3, 4]");
  EXPECT_EQ(FormatShape({}), "[]");
}

TEST(RuntimeFloatBits, BFloat16RoundsToNearestEven) {
  EXPECT_EQ(FloatToBFloat16Bits(1.0f), 0x3f80);
  // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties go to even (1.0).
  EXPECT_EQ(FloatToBFloat16Bits(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  // 1 + 3 * 2^-8 is halfway between 1.0078125 (odd) and 1.015625: rounds up.
  EXPECT_EQ(FloatToBFloat16Bits(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(FloatToBFloat16Bits(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3f81);
  EXPECT_EQ(FloatToBFloat16Bits(-2.0f), 0xc000);
  EXPECT_EQ(FloatToBFloat16Bits(std::numeric_limits<float>::max()), 0x7f80);  // -> inf
  EXPECT_TRUE(std::isnan(BFloat16BitsToFloat(
      FloatToBFloat16Bits(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(BFloat16BitsToFloat(0x4049), 3.140625f);
}

TEST(RuntimeFloatBits, HalfRoundTripsAndRounds) {
  EXPECT_EQ(FloatToHalfBits(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalfBits(-2.5f), 0xc100);
  EXPECT_EQ(FloatToHalfBits(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalfBits(65519.0f), 0x7bff);
  EXPECT_EQ(FloatToHalfBits(65520.0f), 0x7c00);  // halfway to 2^16: rounds to inf
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -25)), 0x0000);  // tie -> even (0)
  EXPECT_EQ(FloatToHalfBits(std::ldexp(3.0f, -25)), 0x0002);  // tie -> even (2)
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  // 1 + 2^-11 ties between 1.0 and 1 + 2^-10: to even.
  EXPECT_EQ(FloatToHalfBits(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(FloatToHalfBits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(HalfBitsToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfBitsToFloat(0x7bff), 65504.0f);
  EXPECT_TRUE(std::isinf(HalfBitsToFloat(0xfc00)));
  EXPECT_TRUE(std::isnan(HalfBitsToFloat(FloatToHalfBits(std::nanf("")))));
  // Every finite half survives a round trip through f32.
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    if ((bits & 0x7c00) == 0x7c00) continue;
    ASSERT_EQ(FloatToHalfBits(HalfBitsToFloat(static_cast<uint16_t>(bits))), bits) << bits;
  }
}

TEST(RuntimeKernelAttrs, GetSetAndErrors) {
  KernelAttrs attrs;
  attrs.SetInt("axis", -1);
  attrs.SetFloat("epsilon", 1e-6);
  attrs.SetInts("axes", {0, 2});
  EXPECT_EQ(*attrs.GetInt("axis"), -1);
  EXPECT_DOUBLE_EQ(*attrs.GetFloat("epsilon"), 1e-6);
  EXPECT_EQ(*attrs.GetInts("axes"), (std::vector<int64_t>{0, 2}));
  EXPECT_DOUBLE_EQ(*attrs.GetFloat("axis"), -1.0);  // ints widen to float
  EXPECT_EQ(attrs.GetIntOr("axis", 7), -1);
  EXPECT_EQ(attrs.GetIntOr("missing", 7), 7);

  absl::StatusOr<int64_t> missing = attrs.GetInt("causal");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("'causal'"), absl::string_view::npos);
  absl::StatusOr<int64_t> wrong_kind = attrs.GetInt("epsilon");
  EXPECT_EQ(wrong_kind.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(attrs.GetInts("axis").status().code(), absl::StatusCode::kInvalidArgument);

  attrs.SetFloat("axis", 0.5);  // replaces the int
  EXPECT_FALSE(attrs.GetInt("axis").ok());
}

TEST(CpuRegistry, EveryNameResolvesAndNamesAreUnique) {
  std::vector<std::string> names = CpuKernelNames();
  EXPECT_GE(names.size(), 50u);
  std::set<std::string> unique(names.begin(), names.end());
  EXPECT_EQ(unique.size(), names.size());
  for (const std::string& name : names) {
    const KernelFn* kernel = LookupCpuKernel(name);
    ASSERT_NE(kernel, nullptr) << name;
    EXPECT_NE(*kernel, nullptr) << name;
  }
}

TEST(CpuRegistry, HasEveryKernelTheCompilerEmits) {
  for (const char* name :
       {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "cmp", "select", "neg", "exp",
        "log", "sqrt", "rsqrt", "reciprocal", "tanh", "erf", "cos", "sin", "sigmoid", "silu",
        "gelu", "is_nan", "cast", "matmul", "reduce_sum", "reduce_mean", "reduce_max",
        "softmax", "log_softmax", "reshape", "transpose", "slice", "concat", "broadcast_to",
        "embedding", "rms_norm", "rope", "swiglu", "attention", "cross_entropy",
        "rms_norm_grad", "rope_grad", "swiglu_grad", "attention_grad", "cross_entropy_grad",
        "embedding_grad", "adamw", "fill", "copy"}) {
    EXPECT_NE(LookupCpuKernel(name), nullptr) << name;
  }
}

TEST(CpuRegistry, UnknownNameIsNull) {
  EXPECT_EQ(LookupCpuKernel("flash_attention_v9"), nullptr);
  EXPECT_EQ(LookupCpuKernel(""), nullptr);
}

}  // namespace
}  // namespace veomni::runtime
