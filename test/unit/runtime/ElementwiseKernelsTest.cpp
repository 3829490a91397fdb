// Broadcasting binary ops, cmp, select, unary math and cast against naive
// loops and hand-computed values.

#include <cmath>
#include <functional>
#include <limits>

#include "KernelTestUtil.h"

namespace veomni::runtime {
namespace {

using testing::F32;
using testing::I1;
using testing::I32;
using testing::I64;
using testing::OwnedTensor;
using testing::RunKernel;

// out[i] = op(lhs[src], rhs[src]) with the numpy source index of each side.
template <typename T, typename Out = T, typename Op>
std::vector<Out> NaiveBroadcastBinary(const OwnedTensor& lhs, const OwnedTensor& rhs,
                                      const std::vector<int64_t>& out_shape, Op op) {
  std::vector<Out> result;
  for (int64_t i = 0; i < testing::NumElementsOf(out_shape); ++i) {
    std::vector<int64_t> index = testing::Unravel(out_shape, i);
    result.push_back(op(lhs.Data<T>()[testing::BroadcastSource(lhs.shape(), index)],
                        rhs.Data<T>()[testing::BroadcastSource(rhs.shape(), index)]));
  }
  return result;
}

TEST(CpuElementwise, FloatBinaryOpsBroadcastLikeNumpy) {
  std::mt19937 rng(1);
  OwnedTensor lhs = testing::RandomF32({2, 1, 4}, rng, 0.5f, 2.0f);
  OwnedTensor rhs = testing::RandomF32({3, 1}, rng, -1.5f, 1.5f);
  std::vector<int64_t> out_shape = {2, 3, 4};
  struct Case {
    const char* name;
    std::function<float(float, float)> op;
  };
  std::vector<Case> cases = {
      {"add", [](float a, float b) { return a + b; }},
      {"sub", [](float a, float b) { return a - b; }},
      {"mul", [](float a, float b) { return a * b; }},
      {"div", [](float a, float b) { return a / b; }},
      {"pow", [](float a, float b) { return static_cast<float>(std::pow(double(a), double(b))); }},
      {"maximum", [](float a, float b) { return std::max(a, b); }},
      {"minimum", [](float a, float b) { return std::min(a, b); }},
  };
  for (const Case& c : cases) {
    OwnedTensor out(DType::kF32, out_shape);
    ASSERT_TRUE(RunKernel(c.name, {}, {&lhs, &rhs}, {&out}).ok()) << c.name;
    EXPECT_TRUE(testing::AllClose(out.Values<float>(),
                                  NaiveBroadcastBinary<float>(lhs, rhs, out_shape, c.op), 0, 0))
        << c.name;
  }
}

TEST(CpuElementwise, ScalarOperandBroadcasts) {
  OwnedTensor lhs = F32({2, 2}, {1, 2, 3, 4});
  OwnedTensor rhs = F32({}, {10});
  OwnedTensor out(DType::kF32, {2, 2});
  ASSERT_TRUE(RunKernel("mul", {}, {&lhs, &rhs}, {&out}).ok());
  EXPECT_EQ(out.Values<float>(), (std::vector<float>{10, 20, 30, 40}));
}

TEST(CpuElementwise, MaximumAndMinimumPropagateNan) {
  float nan = std::numeric_limits<float>::quiet_NaN();
  OwnedTensor lhs = F32({3}, {nan, 1.0f, 2.0f});
  OwnedTensor rhs = F32({3}, {0.0f, nan, -1.0f});
  OwnedTensor out(DType::kF32, {3});
  ASSERT_TRUE(RunKernel("maximum", {}, {&lhs, &rhs}, {&out}).ok());
  EXPECT_TRUE(std::isnan(out.Values<float>()[0]));
  EXPECT_TRUE(std::isnan(out.Values<float>()[1]));
  EXPECT_EQ(out.Values<float>()[2], 2.0f);
  ASSERT_TRUE(RunKernel("minimum", {}, {&lhs, &rhs}, {&out}).ok());
  EXPECT_TRUE(std::isnan(out.Values<float>()[1]));
  EXPECT_EQ(out.Values<float>()[2], -1.0f);
}

TEST(CpuElementwise, IntegerBinaryOpsBroadcastAndTruncate) {
  OwnedTensor lhs = I64({2, 3}, {7, -7, 9, 0, 100, -1});
  OwnedTensor rhs = I64({3}, {2, 2, -4});
  OwnedTensor out(DType::kI64, {2, 3});
  ASSERT_TRUE(RunKernel("div", {}, {&lhs, &rhs}, {&out}).ok());
  EXPECT_EQ(out.Values<int64_t>(), (std::vector<int64_t>{3, -3, -2, 0, 50, 0}));
  ASSERT_TRUE(RunKernel("sub", {}, {&lhs, &rhs}, {&out}).ok());
  EXPECT_EQ(out.Values<int64_t>(), (std::vector<int64_t>{5, -9, 13, -2, 98, 3}));
  ASSERT_TRUE(RunKernel("maximum", {}, {&lhs, &rhs}, {&out}).ok());
  EXPECT_EQ(out.Values<int64_t>(), (std::vector<int64_t>{7, 2, 9, 2, 100, -1}));
  ASSERT_TRUE(RunKernel("minimum", {}, {&lhs, &rhs}, {&out}).ok());
  EXPECT_EQ(out.Values<int64_t>(), (std::vector<int64_t>{2, -7, -4, 0, 2, -4}));

  OwnedTensor a32 = I32({2, 1}, {std::numeric_limits<int32_t>::max(), -3});
  OwnedTensor b32 = I32({1, 2}, {1, 5});
  OwnedTensor out32(DType::kI32, {2, 2});
  ASSERT_TRUE(RunKernel("add", {}, {&a32, &b32}, {&out32}).ok());
  EXPECT_EQ(out32.Values<int32_t>(),
            (std::vector<int32_t>{std::numeric_limits<int32_t>::min(),  // wraps
                                  std::numeric_limits<int32_t>::min() + 4, -2, 2}));
  ASSERT_TRUE(RunKernel("mul", {}, {&a32, &b32}, {&out32}).ok());
  EXPECT_EQ(out32.Values<int32_t>()[2], -3);
  EXPECT_EQ(out32.Values<int32_t>()[3], -15);
}

TEST(CpuElementwise, IntegerMinDividedByMinusOneWraps) {
  OwnedTensor lhs = I64({1}, {std::numeric_limits<int64_t>::min()});
  OwnedTensor rhs = I64({1}, {-1});
  OwnedTensor out(DType::kI64, {1});
  ASSERT_TRUE(RunKernel("div", {}, {&lhs, &rhs}, {&out}).ok());
  EXPECT_EQ(out.Values<int64_t>()[0], std::numeric_limits<int64_t>::min());
}

TEST(CpuElementwise, IntegerDivisionByZeroIsInvalidArgument) {
  OwnedTensor lhs = I32({2}, {4, 5});
  OwnedTensor rhs = I32({2}, {1, 0});
  OwnedTensor out(DType::kI32, {2});
  absl::Status status = RunKernel("div", {}, {&lhs, &rhs}, {&out});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("div: integer division by zero"), std::string::npos)
      << status;
}

TEST(CpuElementwise, RejectsBadShapesAndDTypes) {
  OwnedTensor a = F32({2, 3}, {1, 2, 3, 4, 5, 6});
  OwnedTensor b = F32({4}, {1, 2, 3, 4});
  OwnedTensor out(DType::kF32, {2, 3});
  absl::Status status = RunKernel("add", {}, {&a, &b}, {&out});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "add: shapes [2, 3] and [4] do not broadcast");

  OwnedTensor c = F32({3}, {1, 2, 3});
  OwnedTensor wrong_out(DType::kF32, {3, 2});
  status = RunKernel("add", {}, {&a, &c}, {&wrong_out});
  EXPECT_EQ(status.message(), "add: output has shape [3, 2], expected [2, 3]");

  OwnedTensor i = I64({3}, {1, 2, 3});
  status = RunKernel("add", {}, {&c, &i}, {&out});
  EXPECT_EQ(status.message(), "add: rhs has dtype i64, expected f32");

  OwnedTensor half(DType::kBF16, {3});
  OwnedTensor half_out(DType::kBF16, {3});
  status = RunKernel("mul", {}, {&half, &half}, {&half_out});
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(status.message(), "mul: dtype bf16 is not implemented on the CPU");

  OwnedTensor i_out(DType::kI64, {3});
  status = RunKernel("pow", {}, {&i, &i}, {&i_out});
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);

  status = RunKernel("add", {}, {&a}, {&out});
  EXPECT_EQ(status.message(), "add: expects 2 inputs, got 1");
}

TEST(CpuElementwise, CompareAllPredicatesWithBroadcasting) {
  float nan = std::numeric_limits<float>::quiet_NaN();
  OwnedTensor lhs = F32({2, 3}, {1, 2, 3, nan, 5, 6});
  OwnedTensor rhs = F32({3}, {2, 2, 2});
  std::vector<std::function<bool(float, float)>> predicates = {
      [](float a, float b) { return a == b; }, [](float a, float b) { return a != b; },
      [](float a, float b) { return a < b; },  [](float a, float b) { return a <= b; },
      [](float a, float b) { return a > b; },  [](float a, float b) { return a >= b; }};
  for (int p = 0; p < 6; ++p) {
    KernelAttrs attrs;
    attrs.SetInt("predicate", p);
    OwnedTensor out(DType::kI1, {2, 3});
    ASSERT_TRUE(RunKernel("cmp", attrs, {&lhs, &rhs}, {&out}).ok());
    std::vector<uint8_t> expected = NaiveBroadcastBinary<float, uint8_t>(
        lhs, rhs, {2, 3}, [&](float a, float b) { return predicates[p](a, b) ? 1 : 0; });
    EXPECT_EQ(out.Values<uint8_t>(), expected) << "predicate " << p;
  }
  OwnedTensor ints = I32({3}, {1, 2, 3});
  OwnedTensor two = I32({1}, {2});
  OwnedTensor out(DType::kI1, {3});
  KernelAttrs ge;
  ge.SetInt("predicate", 5);
  ASSERT_TRUE(RunKernel("cmp", ge, {&ints, &two}, {&out}).ok());
  EXPECT_EQ(out.Values<uint8_t>(), (std::vector<uint8_t>{0, 1, 1}));
}

TEST(CpuElementwise, CompareRejectsMissingOrBadPredicate) {
  OwnedTensor a = F32({1}, {1});
  OwnedTensor out(DType::kI1, {1});
  absl::Status status = RunKernel("cmp", {}, {&a, &a}, {&out});
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "cmp: attribute 'predicate' is not set");
  KernelAttrs attrs;
  attrs.SetInt("predicate", 6);
  status = RunKernel("cmp", attrs, {&a, &a}, {&out});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  OwnedTensor f_out(DType::kF32, {1});
  attrs.SetInt("predicate", 0);
  EXPECT_EQ(RunKernel("cmp", attrs, {&a, &a}, {&f_out}).message(),
            "cmp: output has dtype f32, expected i1");
}

TEST(CpuElementwise, SelectBroadcastsAllThreeOperands) {
  OwnedTensor cond = I1({2, 1}, {1, 0});
  OwnedTensor on_true = F32({3}, {1, 2, 3});
  OwnedTensor on_false = F32({2, 3}, {-1, -2, -3, -4, -5, -6});
  OwnedTensor out(DType::kF32, {2, 3});
  ASSERT_TRUE(RunKernel("select", {}, {&cond, &on_true, &on_false}, {&out}).ok());
  EXPECT_EQ(out.Values<float>(), (std::vector<float>{1, 2, 3, -4, -5, -6}));

  OwnedTensor mask = I1({4}, {0, 1, 1, 0});
  OwnedTensor ids = I64({4}, {10, 11, 12, 13});
  OwnedTensor ignore = I64({}, {-100});
  OwnedTensor ids_out(DType::kI64, {4});
  ASSERT_TRUE(RunKernel("select", {}, {&mask, &ids, &ignore}, {&ids_out}).ok());
  EXPECT_EQ(ids_out.Values<int64_t>(), (std::vector<int64_t>{-100, 11, 12, -100}));

  OwnedTensor float_cond = F32({4}, {0, 1, 1, 0});
  EXPECT_EQ(RunKernel("select", {}, {&float_cond, &ids, &ignore}, {&ids_out}).message(),
            "select: cond has dtype f32, expected i1");
}

TEST(CpuElementwise, UnaryMathMatchesStdInDouble) {
  std::mt19937 rng(2);
  OwnedTensor x = testing::RandomF32({3, 5}, rng, -3.0f, 3.0f);
  OwnedTensor positive = testing::RandomF32({3, 5}, rng, 0.1f, 4.0f);
  auto sigmoid = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  struct Case {
    const char* name;
    const OwnedTensor* input;
    std::function<double(double)> reference;
  };
  std::vector<Case> cases = {
      {"exp", &x, [](double v) { return std::exp(v); }},
      {"log", &positive, [](double v) { return std::log(v); }},
      {"sqrt", &positive, [](double v) { return std::sqrt(v); }},
      {"rsqrt", &positive, [](double v) { return 1.0 / std::sqrt(v); }},
      {"reciprocal", &x, [](double v) { return 1.0 / v; }},
      {"tanh", &x, [](double v) { return std::tanh(v); }},
      {"erf", &x, [](double v) { return std::erf(v); }},
      {"cos", &x, [](double v) { return std::cos(v); }},
      {"sin", &x, [](double v) { return std::sin(v); }},
      {"sigmoid", &x, sigmoid},
      {"silu", &x, [&](double v) { return v * sigmoid(v); }},
      {"gelu", &x, [](double v) { return v * 0.5 * std::erfc(-v / std::sqrt(2.0)); }},
      {"neg", &x, [](double v) { return -v; }},
  };
  for (const Case& c : cases) {
    OwnedTensor out(DType::kF32, {3, 5});
    ASSERT_TRUE(RunKernel(c.name, {}, {c.input}, {&out}).ok()) << c.name;
    std::vector<double> expected;
    for (float v : c.input->Values<float>()) expected.push_back(c.reference(v));
    EXPECT_TRUE(testing::AllClose(out.Values<float>(), expected, 1e-7, 1e-6)) << c.name;
  }
}

TEST(CpuElementwise, GeluTanhFormAndExtremeSigmoid) {
  OwnedTensor x = F32({4}, {-1000.0f, -1.0f, 0.5f, 1000.0f});
  OwnedTensor out(DType::kF32, {4});
  KernelAttrs tanh_form;
  tanh_form.SetInt("approximate", 1);
  ASSERT_TRUE(RunKernel("gelu", tanh_form, {&x}, {&out}).ok());
  std::vector<double> expected;
  for (double v : {-1000.0, -1.0, 0.5, 1000.0}) {
    double inner = std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v);
    expected.push_back(0.5 * v * (1.0 + std::tanh(inner)));
  }
  EXPECT_TRUE(testing::AllClose(out.Values<float>(), expected, 1e-7, 1e-6));

  ASSERT_TRUE(RunKernel("sigmoid", {}, {&x}, {&out}).ok());
  EXPECT_EQ(out.Values<float>()[0], 0.0f);
  EXPECT_EQ(out.Values<float>()[3], 1.0f);
  ASSERT_TRUE(RunKernel("silu", {}, {&x}, {&out}).ok());
  EXPECT_EQ(out.Values<float>()[0], 0.0f);
  EXPECT_EQ(out.Values<float>()[3], 1000.0f);

  KernelAttrs bad;
  bad.SetInt("approximate", 2);
  EXPECT_EQ(RunKernel("gelu", bad, {&x}, {&out}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(CpuElementwise, NegOfIntegersAndIsNan) {
  OwnedTensor ints = I32({3}, {5, -2, std::numeric_limits<int32_t>::min()});
  OwnedTensor negated(DType::kI32, {3});
  ASSERT_TRUE(RunKernel("neg", {}, {&ints}, {&negated}).ok());
  EXPECT_EQ(negated.Values<int32_t>(),
            (std::vector<int32_t>{-5, 2, std::numeric_limits<int32_t>::min()}));

  OwnedTensor x = F32({3}, {1.0f, std::nanf(""), std::numeric_limits<float>::infinity()});
  OwnedTensor is_nan(DType::kI1, {3});
  ASSERT_TRUE(RunKernel("is_nan", {}, {&x}, {&is_nan}).ok());
  EXPECT_EQ(is_nan.Values<uint8_t>(), (std::vector<uint8_t>{0, 1, 0}));

  OwnedTensor ids = I64({3}, {1, 2, 3});
  OwnedTensor out(DType::kI64, {3});
  EXPECT_EQ(RunKernel("exp", {}, {&ids}, {&out}).message(),
            "exp: dtype i64 is not implemented on the CPU");
}

TEST(CpuElementwise, CastBetweenAllDTypes) {
  // f32 -> bf16 rounds to nearest even; -> f16 likewise.
  OwnedTensor x = F32({4}, {1.0f, 3.14159274f, -2.5f, 65520.0f});
  OwnedTensor bf16(DType::kBF16, {4});
  ASSERT_TRUE(RunKernel("cast", {}, {&x}, {&bf16}).ok());
  EXPECT_EQ(bf16.Values<uint16_t>(), (std::vector<uint16_t>{0x3f80, 0x4049, 0xc020, 0x4780}));
  OwnedTensor f16(DType::kF16, {4});
  ASSERT_TRUE(RunKernel("cast", {}, {&x}, {&f16}).ok());
  EXPECT_EQ(f16.Values<uint16_t>(), (std::vector<uint16_t>{0x3c00, 0x4248, 0xc100, 0x7c00}));
  OwnedTensor back(DType::kF32, {4});
  ASSERT_TRUE(RunKernel("cast", {}, {&bf16}, {&back}).ok());
  EXPECT_EQ(back.Values<float>(), (std::vector<float>{1.0f, 3.140625f, -2.5f, 65536.0f}));

  // f32 -> ints truncates toward zero, saturates, and sends NaN to 0.
  float nan = std::numeric_limits<float>::quiet_NaN();
  OwnedTensor reals = F32({5}, {2.7f, -2.7f, 1e20f, -1e20f, nan});
  OwnedTensor as_i64(DType::kI64, {5});
  ASSERT_TRUE(RunKernel("cast", {}, {&reals}, {&as_i64}).ok());
  EXPECT_EQ(as_i64.Values<int64_t>(),
            (std::vector<int64_t>{2, -2, std::numeric_limits<int64_t>::max(),
                                  std::numeric_limits<int64_t>::min(), 0}));
  OwnedTensor as_i32(DType::kI32, {5});
  ASSERT_TRUE(RunKernel("cast", {}, {&reals}, {&as_i32}).ok());
  EXPECT_EQ(as_i32.Values<int32_t>(),
            (std::vector<int32_t>{2, -2, std::numeric_limits<int32_t>::max(),
                                  std::numeric_limits<int32_t>::min(), 0}));
  OwnedTensor as_i1(DType::kI1, {5});
  ASSERT_TRUE(RunKernel("cast", {}, {&reals}, {&as_i1}).ok());
  EXPECT_EQ(as_i1.Values<uint8_t>(), (std::vector<uint8_t>{1, 1, 1, 1, 1}));

  // i64 -> i32 wraps; i64 -> f32 rounds; ints -> i1 tests != 0; i1 -> f32.
  OwnedTensor big = I64({3}, {(int64_t{1} << 32) + 5, (int64_t{1} << 24) + 1, 0});
  OwnedTensor wrapped(DType::kI32, {3});
  ASSERT_TRUE(RunKernel("cast", {}, {&big}, {&wrapped}).ok());
  EXPECT_EQ(wrapped.Values<int32_t>(), (std::vector<int32_t>{5, (1 << 24) + 1, 0}));
  OwnedTensor rounded(DType::kF32, {3});
  ASSERT_TRUE(RunKernel("cast", {}, {&big}, {&rounded}).ok());
  EXPECT_EQ(rounded.Values<float>()[1], 16777216.0f);
  OwnedTensor flags(DType::kI1, {3});
  ASSERT_TRUE(RunKernel("cast", {}, {&big}, {&flags}).ok());
  EXPECT_EQ(flags.Values<uint8_t>(), (std::vector<uint8_t>{1, 1, 0}));
  OwnedTensor flag_floats(DType::kF32, {3});
  ASSERT_TRUE(RunKernel("cast", {}, {&flags}, {&flag_floats}).ok());
  EXPECT_EQ(flag_floats.Values<float>(), (std::vector<float>{1, 1, 0}));

  // f16 -> i32 via its exact f32 value.
  OwnedTensor as_int(DType::kI32, {4});
  ASSERT_TRUE(RunKernel("cast", {}, {&f16}, {&as_int}).ok());
  EXPECT_EQ(as_int.Values<int32_t>(),
            (std::vector<int32_t>{1, 3, -2, std::numeric_limits<int32_t>::max()}));

  OwnedTensor wrong_shape(DType::kF32, {5});
  EXPECT_EQ(RunKernel("cast", {}, {&x}, {&wrong_shape}).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace veomni::runtime
