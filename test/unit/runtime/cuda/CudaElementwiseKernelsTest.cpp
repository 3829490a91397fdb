// The CUDA elementwise, cast, shape and reduction kernels against their CPU
// twins on random operands: broadcasting, odd sizes (1, 7, 1000003), every
// dtype the CPU supports, NaNs, and the errors of bad operands.
//
// Tolerances. Where the GPU does what the CPU does in the same precision the
// results must be equal: integer math, data movement, cast (bit for bit),
// f32 add/sub/mul/div/maximum/minimum/cmp (one correctly rounded f32 op each)
// and reduce_max. f32 math functions run in f32 on the GPU (CUDA's precise
// functions are within 4 ulps; silu/gelu add a few roundings) where the CPU
// rounds a double result once, so they get rtol 1e-5 (~80 ulps) with atol
// 1e-6 for results near zero. f32 sums accumulate in double on both sides,
// in another order, so they agree to an ulp of the f32 result; softmax takes
// f32 exps (a few ulps each) and sums them in double, so it gets the math
// tolerance too.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "test/unit/runtime/cuda/CudaKernelTestUtil.h"

namespace veomni::runtime {
namespace {

using testing::AllClose;
using testing::F32;
using testing::GpuTest;
using testing::I1;
using testing::I32;
using testing::I64;
using testing::NumElementsOf;
using testing::OwnedTensor;
using testing::RandomF32;
using testing::RunCudaKernel;
using testing::RunKernel;
using testing::RunTwins;
using testing::TwinResult;

constexpr double kMathAtol = 1e-6;
constexpr double kMathRtol = 1e-5;

using Shape = std::vector<int64_t>;

// An output whose bytes start as garbage, so a kernel that skips an element
// shows up as a mismatch.
OwnedTensor StaleOutput(DType dtype, Shape shape) {
  OwnedTensor tensor(dtype, std::move(shape));
  std::memset(tensor.View().data, 0xab, static_cast<size_t>(tensor.View().Bytes()));
  return tensor;
}

template <typename Int>
OwnedTensor RandomInts(DType dtype, Shape shape, std::mt19937& rng, Int low, Int high) {
  std::uniform_int_distribution<Int> distribution(low, high);
  std::vector<Int> values(static_cast<size_t>(NumElementsOf(shape)));
  for (Int& value : values) value = distribution(rng);
  return testing::MakeTensor(dtype, std::move(shape), values);
}

OwnedTensor RandomBools(Shape shape, std::mt19937& rng) {
  std::vector<uint8_t> values(static_cast<size_t>(NumElementsOf(shape)));
  for (uint8_t& value : values) value = static_cast<uint8_t>(rng() & 1u);
  return I1(std::move(shape), values);
}

// Random operand of `dtype`: floats in [low, high], integers over their whole
// range (so that add/sub/mul wrap), i1 as 0/1.
OwnedTensor RandomOperand(DType dtype, Shape shape, std::mt19937& rng, float low = -2.0f,
                          float high = 2.0f) {
  switch (dtype) {
    case DType::kI64:
      return RandomInts<int64_t>(dtype, std::move(shape), rng,
                                 std::numeric_limits<int64_t>::min(),
                                 std::numeric_limits<int64_t>::max());
    case DType::kI32:
      return RandomInts<int32_t>(dtype, std::move(shape), rng,
                                 std::numeric_limits<int32_t>::min(),
                                 std::numeric_limits<int32_t>::max());
    case DType::kI1:
      return RandomBools(std::move(shape), rng);
    default:
      return RandomF32(std::move(shape), rng, low, high);
  }
}

// Every element of every output equal, bit for bit.
void ExpectIdentical(const TwinResult& result) {
  ASSERT_EQ(result.gpu.size(), result.cpu.size());
  for (size_t i = 0; i < result.cpu.size(); ++i) {
    const TensorView gpu = result.gpu[i].View();
    const TensorView cpu = result.cpu[i].View();
    ASSERT_EQ(gpu.Bytes(), cpu.Bytes());
    int64_t bytes = cpu.Bytes();
    const auto* g = static_cast<const uint8_t*>(gpu.data);
    const auto* c = static_cast<const uint8_t*>(cpu.data);
    int64_t first_difference = -1;
    for (int64_t b = 0; b < bytes && first_difference < 0; ++b) {
      if (g[b] != c[b]) first_difference = b;
    }
    EXPECT_EQ(first_difference, -1)
        << "output " << i << " differs from byte " << first_difference << " of " << bytes;
  }
}

// f32 outputs within atol + rtol * |cpu|; NaN matches NaN.
void ExpectClose(const TwinResult& result, double atol, double rtol) {
  ASSERT_EQ(result.gpu.size(), result.cpu.size());
  for (size_t i = 0; i < result.cpu.size(); ++i) {
    EXPECT_TRUE(AllClose(result.gpu[i].Values<float>(), result.cpu[i].Values<float>(), atol,
                         rtol))
        << "output " << i;
  }
}

// Runs both twins with one stale output of `dtype` and `shape`.
TwinResult RunOne(const std::string& name, const KernelAttrs& attrs,
                  const std::vector<const OwnedTensor*>& inputs, DType dtype, Shape shape) {
  OwnedTensor output = StaleOutput(dtype, std::move(shape));
  return RunTwins(name, attrs, inputs, {&output});
}

// The CPU's and the GPU's errors for the same bad operands are the same.
void ExpectSameError(const std::string& name, const KernelAttrs& attrs,
                     const std::vector<const OwnedTensor*>& inputs, OwnedTensor output) {
  OwnedTensor cpu_output = output;
  absl::Status cpu = RunKernel(name, attrs, inputs, {&cpu_output});
  absl::Status gpu = RunCudaKernel(name, attrs, inputs, {&output});
  EXPECT_TRUE(absl::IsInvalidArgument(cpu)) << cpu;
  EXPECT_EQ(gpu.code(), cpu.code()) << gpu;
  EXPECT_EQ(gpu.message(), cpu.message());
}

// Input shape pairs and the broadcast output shape of each.
struct BroadcastCase {
  Shape lhs, rhs, out;
};
const std::vector<BroadcastCase>& BroadcastCases() {
  static const std::vector<BroadcastCase> cases = {
      {{1}, {1}, {1}},
      {{7}, {7}, {7}},
      {{1000003}, {1000003}, {1000003}},
      {{}, {}, {}},
      {{2, 3, 4}, {}, {2, 3, 4}},
      {{}, {5}, {5}},
      {{3, 1, 5}, {4, 1}, {3, 4, 5}},
      {{4, 1, 6}, {1, 5, 1}, {4, 5, 6}},
      {{1000, 7}, {7}, {1000, 7}},
      {{1000, 1}, {1, 1003}, {1000, 1003}},
      // 8 dims that cannot merge: the most the CUDA kernels index.
      {{2, 1, 3, 1, 2, 1, 3, 1}, {1, 2, 1, 3, 1, 2, 1, 3}, {2, 2, 3, 3, 2, 2, 3, 3}},
      {{0, 3}, {1, 3}, {0, 3}},
  };
  return cases;
}

TEST_F(GpuTest, ArithmeticMatchesCpuExactly) {
  std::mt19937 rng(1);
  for (const char* name : {"add", "sub", "mul", "maximum", "minimum"}) {
    for (DType dtype : {DType::kF32, DType::kI64, DType::kI32}) {
      for (const BroadcastCase& shapes : BroadcastCases()) {
        SCOPED_TRACE(::testing::Message() << name << " " << DTypeName(dtype) << " "
                                        << FormatShape(shapes.lhs) << " "
                                        << FormatShape(shapes.rhs));
        OwnedTensor lhs = RandomOperand(dtype, shapes.lhs, rng);
        OwnedTensor rhs = RandomOperand(dtype, shapes.rhs, rng);
        ExpectIdentical(RunOne(name, {}, {&lhs, &rhs}, dtype, shapes.out));
      }
    }
  }
}

TEST_F(GpuTest, DivMatchesCpu) {
  std::mt19937 rng(2);
  for (const BroadcastCase& shapes : BroadcastCases()) {
    SCOPED_TRACE(FormatShape(shapes.out));
    OwnedTensor lhs = RandomF32(shapes.lhs, rng, -4.0f, 4.0f);
    OwnedTensor rhs = RandomF32(shapes.rhs, rng, 0.5f, 3.0f);
    ExpectIdentical(RunOne("div", {}, {&lhs, &rhs}, DType::kF32, shapes.out));
  }
  // Integers truncate toward zero; min / -1 wraps; no zero divisors here.
  int64_t min64 = std::numeric_limits<int64_t>::min();
  OwnedTensor lhs64 = I64({8}, {7, -7, 7, -7, min64, min64, 0, 123456789012});
  OwnedTensor rhs64 = I64({8}, {2, 2, -2, -2, -1, 3, -5, -1000});
  ExpectIdentical(RunOne("div", {}, {&lhs64, &rhs64}, DType::kI64, {8}));
  int32_t min32 = std::numeric_limits<int32_t>::min();
  OwnedTensor lhs32 = I32({2, 3}, {7, -7, min32, min32, 100, -100});
  OwnedTensor rhs32 = I32({3}, {-1, 3, -7});
  ExpectIdentical(RunOne("div", {}, {&lhs32, &rhs32}, DType::kI32, {2, 3}));
  OwnedTensor big_lhs = RandomOperand(DType::kI32, {1000, 7}, rng);
  OwnedTensor big_rhs = RandomInts<int32_t>(DType::kI32, {7}, rng, 1, 1000);
  ExpectIdentical(RunOne("div", {}, {&big_lhs, &big_rhs}, DType::kI32, {1000, 7}));
}

TEST_F(GpuTest, IntegerDivisionByZeroFailsOnBoth) {
  OwnedTensor lhs = I64({3}, {1, 2, 3});
  OwnedTensor rhs = I64({3}, {1, 0, 1});
  OwnedTensor cpu_out(DType::kI64, {3}), gpu_out(DType::kI64, {3});
  EXPECT_TRUE(absl::IsInvalidArgument(RunKernel("div", {}, {&lhs, &rhs}, {&cpu_out})));
  // The GPU flags it on the device and reports it at synchronization.
  EXPECT_TRUE(absl::IsInvalidArgument(RunCudaKernel("div", {}, {&lhs, &rhs}, {&gpu_out})));
  // The flag is cleared once reported.
  OwnedTensor ones = I64({3}, {1, 1, 1});
  EXPECT_TRUE(RunCudaKernel("div", {}, {&lhs, &ones}, {&gpu_out}).ok());
}

TEST_F(GpuTest, PowMatchesCpu) {
  std::mt19937 rng(3);
  for (const BroadcastCase& shapes : BroadcastCases()) {
    SCOPED_TRACE(FormatShape(shapes.out));
    OwnedTensor base = RandomF32(shapes.lhs, rng, 0.1f, 4.0f);
    OwnedTensor exponent = RandomF32(shapes.rhs, rng, -3.0f, 3.0f);
    ExpectClose(RunOne("pow", {}, {&base, &exponent}, DType::kF32, shapes.out), kMathAtol,
                kMathRtol);
  }
  // Negative bases: integral exponents are defined, others are NaN.
  OwnedTensor base = F32({6}, {-2.0f, -2.0f, -3.0f, 0.0f, 0.0f, -1.5f});
  OwnedTensor exponent = F32({6}, {2.0f, 3.0f, 0.5f, -1.0f, 0.0f, -2.0f});
  ExpectClose(RunOne("pow", {}, {&base, &exponent}, DType::kF32, {6}), kMathAtol, kMathRtol);
}

TEST_F(GpuTest, NanPropagatesThroughMaximumMinimumAndArithmetic) {
  float nan = std::numeric_limits<float>::quiet_NaN();
  float inf = std::numeric_limits<float>::infinity();
  OwnedTensor lhs = F32({8}, {nan, 1.0f, nan, -0.0f, 0.0f, inf, -inf, 2.0f});
  OwnedTensor rhs = F32({8}, {1.0f, nan, nan, 0.0f, -0.0f, -inf, inf, 2.0f});
  for (const char* name : {"maximum", "minimum", "add", "sub", "mul", "div"}) {
    SCOPED_TRACE(name);
    // Exact, with NaN matching NaN (payloads may differ for add & co.).
    ExpectClose(RunOne(name, {}, {&lhs, &rhs}, DType::kF32, {8}), 0.0, 0.0);
  }
  // maximum/minimum return the CPU's quiet NaN and its signed zeros exactly.
  ExpectIdentical(RunOne("maximum", {}, {&lhs, &rhs}, DType::kF32, {8}));
  ExpectIdentical(RunOne("minimum", {}, {&lhs, &rhs}, DType::kF32, {8}));
}

// Values in [-2, 2] of `dtype`, so that comparisons often see equal operands.
OwnedTensor SmallValues(DType dtype, Shape shape, std::mt19937& rng) {
  OwnedTensor small = RandomInts<int32_t>(DType::kI32, shape, rng, -2, 2);
  std::vector<int32_t> values = small.Values<int32_t>();
  switch (dtype) {
    case DType::kF32: return F32(std::move(shape), std::vector<float>(values.begin(), values.end()));
    case DType::kI64: return I64(std::move(shape), std::vector<int64_t>(values.begin(), values.end()));
    default: return small;
  }
}

TEST_F(GpuTest, CompareMatchesCpu) {
  std::mt19937 rng(4);
  for (int64_t predicate = 0; predicate <= 5; ++predicate) {
    KernelAttrs attrs;
    attrs.SetInt("predicate", predicate);
    for (DType dtype : {DType::kF32, DType::kI64, DType::kI32}) {
      for (const BroadcastCase& shapes : BroadcastCases()) {
        SCOPED_TRACE(::testing::Message() << predicate << " " << DTypeName(dtype) << " "
                                          << FormatShape(shapes.out));
        OwnedTensor lhs = SmallValues(dtype, shapes.lhs, rng);
        OwnedTensor rhs = SmallValues(dtype, shapes.rhs, rng);
        ExpectIdentical(RunOne("cmp", attrs, {&lhs, &rhs}, DType::kI1, shapes.out));
      }
    }
  }
  // NaN compares unequal to everything, itself included.
  float nan = std::numeric_limits<float>::quiet_NaN();
  OwnedTensor lhs = F32({3}, {nan, nan, 1.0f});
  OwnedTensor rhs = F32({3}, {nan, 1.0f, nan});
  for (int64_t predicate = 0; predicate <= 5; ++predicate) {
    KernelAttrs attrs;
    attrs.SetInt("predicate", predicate);
    ExpectIdentical(RunOne("cmp", attrs, {&lhs, &rhs}, DType::kI1, {3}));
  }
}

TEST_F(GpuTest, SelectMatchesCpuForEveryWidth) {
  std::mt19937 rng(5);
  struct SelectCase {
    Shape cond, on_true, on_false, out;
  };
  std::vector<SelectCase> cases = {
      {{7}, {7}, {7}, {7}},
      {{1}, {1}, {1}, {1}},
      {{1000003}, {1000003}, {1000003}, {1000003}},
      {{}, {3, 4}, {4}, {3, 4}},
      {{3, 1}, {1, 4}, {}, {3, 4}},
      {{2, 1, 5}, {3, 1}, {1, 3, 5}, {2, 3, 5}},
  };
  for (DType dtype : {DType::kF32, DType::kI64, DType::kI32, DType::kI1, DType::kBF16}) {
    for (const SelectCase& shapes : cases) {
      SCOPED_TRACE(::testing::Message() << DTypeName(dtype) << " " << FormatShape(shapes.out));
      OwnedTensor cond = RandomBools(shapes.cond, rng);
      // bf16 travels as arbitrary 16-bit words: select never looks at them.
      OwnedTensor on_true =
          dtype == DType::kBF16
              ? RandomInts<uint16_t>(DType::kBF16, shapes.on_true, rng, 0, 0xffff)
              : RandomOperand(dtype, shapes.on_true, rng);
      OwnedTensor on_false =
          dtype == DType::kBF16
              ? RandomInts<uint16_t>(DType::kBF16, shapes.on_false, rng, 0, 0xffff)
              : RandomOperand(dtype, shapes.on_false, rng);
      ExpectIdentical(
          RunOne("select", {}, {&cond, &on_true, &on_false}, dtype, shapes.out));
    }
  }
}

TEST_F(GpuTest, NegMatchesCpu) {
  std::mt19937 rng(6);
  for (DType dtype : {DType::kF32, DType::kI64, DType::kI32}) {
    for (Shape shape : {Shape{1}, Shape{7}, Shape{1000003}, Shape{}, Shape{0, 4}}) {
      SCOPED_TRACE(::testing::Message() << DTypeName(dtype) << " " << FormatShape(shape));
      OwnedTensor x = RandomOperand(dtype, shape, rng);
      ExpectIdentical(RunOne("neg", {}, {&x}, dtype, shape));
    }
  }
  // The most negative integer wraps to itself.
  OwnedTensor extremes = I32({2}, {std::numeric_limits<int32_t>::min(), 5});
  ExpectIdentical(RunOne("neg", {}, {&extremes}, DType::kI32, {2}));
}

// Each unary f32 function with the range its inputs are drawn from.
struct UnaryCase {
  const char* name;
  float low, high;
  int64_t approximate;  // gelu's attribute; -1 leaves it unset
};

TEST_F(GpuTest, UnaryMathMatchesCpu) {
  std::mt19937 rng(7);
  std::vector<UnaryCase> cases = {
      {"exp", -20.0f, 20.0f, -1},  {"log", 1e-3f, 100.0f, -1},
      {"sqrt", 0.0f, 100.0f, -1},  {"rsqrt", 1e-3f, 100.0f, -1},
      {"reciprocal", 0.1f, 10.0f, -1}, {"tanh", -5.0f, 5.0f, -1},
      {"erf", -4.0f, 4.0f, -1},    {"cos", -10.0f, 10.0f, -1},
      {"sin", -10.0f, 10.0f, -1},  {"sigmoid", -20.0f, 20.0f, -1},
      {"silu", -20.0f, 20.0f, -1}, {"gelu", -8.0f, 8.0f, -1},
      {"gelu", -8.0f, 8.0f, 0},    {"gelu", -8.0f, 8.0f, 1},
  };
  for (const UnaryCase& unary : cases) {
    KernelAttrs attrs;
    if (unary.approximate >= 0) attrs.SetInt("approximate", unary.approximate);
    for (Shape shape : {Shape{1}, Shape{7}, Shape{1000003}, Shape{}, Shape{3, 0}, Shape{8, 9, 10}}) {
      SCOPED_TRACE(::testing::Message() << unary.name << " approximate=" << unary.approximate
                                      << " " << FormatShape(shape));
      OwnedTensor x = RandomF32(shape, rng, unary.low, unary.high);
      ExpectClose(RunOne(unary.name, attrs, {&x}, DType::kF32, shape), kMathAtol, kMathRtol);
    }
  }
}

TEST_F(GpuTest, UnaryMathAgreesOnSpecialValues) {
  float nan = std::numeric_limits<float>::quiet_NaN();
  float inf = std::numeric_limits<float>::infinity();
  OwnedTensor x =
      F32({9}, {nan, inf, -inf, 0.0f, -0.0f, -1.0f, 1e-30f, -100.0f, 100.0f});
  for (const char* name : {"exp", "log", "sqrt", "rsqrt", "reciprocal", "tanh", "erf", "cos",
                           "sin", "sigmoid", "silu", "gelu"}) {
    SCOPED_TRACE(name);
    ExpectClose(RunOne(name, {}, {&x}, DType::kF32, {9}), kMathAtol, kMathRtol);
  }
  KernelAttrs tanh_form;
  tanh_form.SetInt("approximate", 1);
  ExpectClose(RunOne("gelu", tanh_form, {&x}, DType::kF32, {9}), kMathAtol, kMathRtol);
  ExpectIdentical(RunOne("is_nan", {}, {&x}, DType::kI1, {9}));
}

TEST_F(GpuTest, IsNanMatchesCpu) {
  std::mt19937 rng(8);
  for (Shape shape : {Shape{1}, Shape{7}, Shape{1000003}}) {
    OwnedTensor x = RandomF32(shape, rng);
    std::vector<float> values = x.Values<float>();
    for (size_t i = 0; i < values.size(); i += 3) values[i] = std::nanf("");
    x.SetValues(values);
    ExpectIdentical(RunOne("is_nan", {}, {&x}, DType::kI1, shape));
  }
}

TEST_F(GpuTest, ElementwiseBadOperandsFailLikeCpu) {
  OwnedTensor lhs(DType::kF32, {2, 3});
  OwnedTensor rhs(DType::kF32, {4});
  ExpectSameError("add", {}, {&lhs, &rhs}, OwnedTensor(DType::kF32, {2, 3}));
  OwnedTensor matching(DType::kF32, {3});
  ExpectSameError("mul", {}, {&lhs, &matching}, OwnedTensor(DType::kF32, {3, 2}));
  ExpectSameError("exp", {}, {&lhs}, OwnedTensor(DType::kF32, {6}));
  ExpectSameError("select", {}, {&lhs, &lhs, &lhs}, OwnedTensor(DType::kF32, {2, 3}));
  KernelAttrs bad_predicate;
  bad_predicate.SetInt("predicate", 6);
  ExpectSameError("cmp", bad_predicate, {&lhs, &lhs}, OwnedTensor(DType::kI1, {2, 3}));
}

// Float bit patterns that exercise every rounding path of cast: uniformly
// random bits (NaN payloads, subnormals, huge values) and values around the
// bf16/f16 halfway points, the f16 subnormal range and the integer limits.
std::vector<float> CastFloats(int64_t count, std::mt19937& rng) {
  std::vector<float> values;
  const float specials[] = {0.0f, -0.0f, 1.0f, -1.5f, 2.5f, -2.5f, 65504.0f, 65519.0f,
                            65520.0f, 1e-8f, 3e-5f, 6.1e-5f, 2147483520.0f, 2147483648.0f,
                            -2147483648.0f, 9.2233715e18f, -9.2233720e18f, 1e30f,
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::denorm_min()};
  for (float special : specials) values.push_back(special);
  std::uniform_real_distribution<float> moderate(-70000.0f, 70000.0f);
  while (static_cast<int64_t>(values.size()) < count) {
    uint32_t bits = static_cast<uint32_t>(rng());
    float value;
    switch (rng() % 4) {
      case 0: std::memcpy(&value, &bits, sizeof(value)); break;
      case 1: value = moderate(rng); break;
      // Halfway between neighbouring bf16 values (low 16 bits 0x8000).
      case 2: bits = (bits & 0xffff0000u) | 0x8000u; std::memcpy(&value, &bits, sizeof(value)); break;
      // Small magnitudes, mostly f16 subnormals.
      default: value = moderate(rng) * 1e-9f; break;
    }
    values.push_back(value);
  }
  values.resize(static_cast<size_t>(count));
  return values;
}

OwnedTensor CastInput(DType dtype, Shape shape, std::mt19937& rng) {
  int64_t count = NumElementsOf(shape);
  switch (dtype) {
    case DType::kF32:
      return F32(std::move(shape), CastFloats(count, rng));
    case DType::kBF16:
    case DType::kF16:
      return RandomInts<uint16_t>(dtype, std::move(shape), rng, 0, 0xffff);
    default:
      return RandomOperand(dtype, std::move(shape), rng);
  }
}

TEST_F(GpuTest, CastMatchesCpuBitForBit) {
  std::mt19937 rng(9);
  const DType dtypes[] = {DType::kF32, DType::kBF16, DType::kF16,
                          DType::kI64, DType::kI32,  DType::kI1};
  for (DType from : dtypes) {
    for (DType to : dtypes) {
      for (Shape shape : {Shape{1}, Shape{7}, Shape{1000003}, Shape{}, Shape{0}, Shape{3, 5}}) {
        SCOPED_TRACE(::testing::Message() << DTypeName(from) << " -> " << DTypeName(to) << " "
                                        << FormatShape(shape));
        OwnedTensor x = CastInput(from, shape, rng);
        ExpectIdentical(RunOne("cast", {}, {&x}, to, shape));
      }
    }
  }
  // Integers near and past the f32/bf16 precision limits.
  OwnedTensor integers =
      I64({6}, {16777217, -16777219, (int64_t{1} << 40) + 1, std::numeric_limits<int64_t>::max(),
                std::numeric_limits<int64_t>::min(), 4294967297});
  for (DType to : dtypes) {
    SCOPED_TRACE(DTypeName(to));
    ExpectIdentical(RunOne("cast", {}, {&integers}, to, {6}));
  }
}

TEST_F(GpuTest, CastBadOperandsFailLikeCpu) {
  OwnedTensor x(DType::kF32, {2, 3});
  ExpectSameError("cast", {}, {&x}, OwnedTensor(DType::kBF16, {3, 2}));
}

TEST_F(GpuTest, ReshapeAndCopyMatchCpu) {
  std::mt19937 rng(10);
  for (Shape shape : {Shape{1}, Shape{7}, Shape{1000003}, Shape{}}) {
    OwnedTensor x = RandomOperand(DType::kI64, shape, rng);
    ExpectIdentical(RunOne("copy", {}, {&x}, DType::kI64, shape));
    ExpectIdentical(RunOne("reshape", {}, {&x}, DType::kI64, {NumElementsOf(shape), 1}));
  }
  OwnedTensor empty(DType::kF32, {0, 3});
  ExpectIdentical(RunOne("reshape", {}, {&empty}, DType::kF32, {3, 0}));
}

TEST_F(GpuTest, TransposeMatchesCpu) {
  std::mt19937 rng(11);
  struct TransposeCase {
    Shape shape, permutation;
  };
  std::vector<TransposeCase> cases = {
      {{7}, {0}},
      {{1000, 1003}, {1, 0}},
      {{2, 3, 4, 5}, {3, 1, 0, 2}},
      {{2, 3, 4, 5}, {0, 2, 1, 3}},
      // The innermost dim kept: copied in 16- and 8-byte words.
      {{2, 3, 4, 8}, {0, 2, 1, 3}},
      {{2, 3, 4, 6}, {0, 2, 1, 3}},
      {{1, 7, 1, 3}, {2, 3, 0, 1}},
      {{}, {}},
      {{2, 2, 2, 2, 2, 2, 2, 2}, {7, 6, 5, 4, 3, 2, 1, 0}},
  };
  for (DType dtype : {DType::kF32, DType::kI64, DType::kI1, DType::kBF16}) {
    for (const TransposeCase& test : cases) {
      SCOPED_TRACE(::testing::Message() << DTypeName(dtype) << " " << FormatShape(test.shape));
      OwnedTensor x = CastInput(dtype, test.shape, rng);
      Shape out_shape;
      for (int64_t d : test.permutation) out_shape.push_back(test.shape[d]);
      KernelAttrs attrs;
      attrs.SetInts("permutation", test.permutation);
      ExpectIdentical(RunOne("transpose", attrs, {&x}, dtype, out_shape));
    }
  }
}

TEST_F(GpuTest, SliceMatchesCpu) {
  std::mt19937 rng(12);
  struct SliceCase {
    Shape shape, start, limit, stride, out;
  };
  std::vector<SliceCase> cases = {
      {{7}, {2}, {7}, {}, {5}},
      {{7}, {1}, {7}, {3}, {2}},
      {{1000003}, {5}, {1000000}, {7}, {142857}},
      {{10, 12}, {1, 0}, {9, 12}, {2, 5}, {4, 3}},
      {{4, 5, 6}, {0, 2, 1}, {4, 5, 6}, {1, 1, 1}, {4, 3, 5}},
      {{4, 5, 6}, {3, 5, 0}, {3, 5, 6}, {1, 1, 1}, {0, 0, 6}},
      // Whole rows (wide words), and rows starting 8 bytes in.
      {{4, 5, 8}, {0, 2, 0}, {4, 5, 8}, {}, {4, 3, 8}},
      {{4, 5, 8}, {0, 0, 2}, {4, 5, 6}, {}, {4, 5, 4}},
  };
  for (DType dtype : {DType::kF32, DType::kI32, DType::kI1, DType::kF16}) {
    for (const SliceCase& test : cases) {
      SCOPED_TRACE(::testing::Message() << DTypeName(dtype) << " " << FormatShape(test.shape));
      OwnedTensor x = CastInput(dtype, test.shape, rng);
      KernelAttrs attrs;
      attrs.SetInts("start", test.start);
      attrs.SetInts("limit", test.limit);
      if (!test.stride.empty()) attrs.SetInts("stride", test.stride);
      ExpectIdentical(RunOne("slice", attrs, {&x}, dtype, test.out));
    }
  }
}

TEST_F(GpuTest, ConcatMatchesCpu) {
  std::mt19937 rng(13);
  for (DType dtype : {DType::kF32, DType::kI64, DType::kI1, DType::kBF16}) {
    for (int64_t axis : {0, 1, 2, -1}) {
      SCOPED_TRACE(::testing::Message() << DTypeName(dtype) << " axis " << axis);
      int64_t normalized = axis < 0 ? axis + 3 : axis;
      std::vector<OwnedTensor> inputs;
      Shape out_shape = {3, 4, 5};
      out_shape[normalized] = 0;
      for (int64_t width : {2, 0, 7, 1}) {
        Shape shape = {3, 4, 5};
        shape[normalized] = width;
        out_shape[normalized] += width;
        inputs.push_back(CastInput(dtype, shape, rng));
      }
      std::vector<const OwnedTensor*> pointers;
      for (const OwnedTensor& input : inputs) pointers.push_back(&input);
      KernelAttrs attrs;
      attrs.SetInt("axis", axis);
      ExpectIdentical(RunOne("concat", attrs, pointers, dtype, out_shape));
    }
  }
  // Large rows along the last axis, and a single input.
  OwnedTensor a = RandomOperand(DType::kF32, {3, 1000003}, rng);
  OwnedTensor b = RandomOperand(DType::kF32, {3, 1}, rng);
  KernelAttrs last;
  last.SetInt("axis", 1);
  ExpectIdentical(RunOne("concat", last, {&a, &b}, DType::kF32, {3, 1000004}));
  ExpectIdentical(RunOne("concat", last, {&b}, DType::kF32, {3, 1}));
}

TEST_F(GpuTest, BroadcastToMatchesCpu) {
  std::mt19937 rng(14);
  struct BroadcastToCase {
    Shape in, out;
  };
  std::vector<BroadcastToCase> cases = {
      {{}, {7}}, {{1}, {1000003}}, {{7}, {3, 7}}, {{3, 1}, {3, 1000}},
      {{1, 4, 1}, {2, 3, 4, 5}}, {{5}, {0, 5}}, {{2, 3}, {2, 3}},
  };
  for (DType dtype : {DType::kF32, DType::kI64, DType::kI1, DType::kBF16}) {
    for (const BroadcastToCase& test : cases) {
      SCOPED_TRACE(::testing::Message() << DTypeName(dtype) << " " << FormatShape(test.in) << " -> "
                                      << FormatShape(test.out));
      OwnedTensor x = CastInput(dtype, test.in, rng);
      ExpectIdentical(RunOne("broadcast_to", {}, {&x}, dtype, test.out));
    }
  }
}

TEST_F(GpuTest, FillMatchesCpu) {
  for (DType dtype : {DType::kF32, DType::kI64, DType::kI32}) {
    for (double value : {0.0, -3.0, 42.0}) {
      for (Shape shape : {Shape{1}, Shape{7}, Shape{1000003}, Shape{}, Shape{0}}) {
        SCOPED_TRACE(::testing::Message() << DTypeName(dtype) << " " << value << " "
                                        << FormatShape(shape));
        KernelAttrs attrs;
        attrs.SetFloat("value", value);
        ExpectIdentical(RunOne("fill", attrs, {}, dtype, shape));
      }
    }
  }
  KernelAttrs fraction;
  fraction.SetFloat("value", 0.1);
  ExpectIdentical(RunOne("fill", fraction, {}, DType::kF32, {5}));
  ExpectSameError("fill", fraction, {}, OwnedTensor(DType::kI64, {5}));
}

// The CUDA kernels index at most 8 dims once contiguous ones are merged; the
// CPU has no such limit, so the GPU refuses instead of computing garbage.
TEST_F(GpuTest, MoreThanEightStridedDimsAreUnimplemented) {
  Shape shape(9, 2);
  Shape reversed = {8, 7, 6, 5, 4, 3, 2, 1, 0};
  OwnedTensor x(DType::kF32, shape);
  OwnedTensor y(DType::kF32, shape);
  KernelAttrs attrs;
  attrs.SetInts("permutation", reversed);
  EXPECT_TRUE(RunKernel("transpose", attrs, {&x}, {&y}).ok());
  EXPECT_TRUE(absl::IsUnimplemented(RunCudaKernel("transpose", attrs, {&x}, {&y})));
  // Nine dims that merge into fewer are fine.
  attrs.SetInts("permutation", {0, 1, 2, 3, 4, 5, 6, 8, 7});
  ExpectIdentical(RunOne("transpose", attrs, {&x}, DType::kF32, shape));
}

TEST_F(GpuTest, ShapeBadOperandsFailLikeCpu) {
  OwnedTensor x(DType::kF32, {2, 3});
  KernelAttrs swap;
  swap.SetInts("permutation", {1, 0});
  ExpectSameError("transpose", swap, {&x}, OwnedTensor(DType::kF32, {2, 3}));
  ExpectSameError("broadcast_to", {}, {&x}, OwnedTensor(DType::kF32, {3, 3}));
  ExpectSameError("reshape", {}, {&x}, OwnedTensor(DType::kF32, {4}));
  KernelAttrs axis;
  axis.SetInt("axis", 0);
  OwnedTensor other(DType::kF32, {2, 4});
  ExpectSameError("concat", axis, {&x, &other}, OwnedTensor(DType::kF32, {4, 3}));
}

struct ReduceCase {
  Shape shape, axes;
};
const std::vector<ReduceCase>& ReduceCases() {
  static const std::vector<ReduceCase> cases = {
      {{7}, {0}},
      {{1}, {0}},
      // Few outputs over many elements: split into chunks and combined.
      {{1000003}, {0}},
      {{3, 200001}, {1}},
      {{3, 200004}, {1}},  // rows 16-byte aligned: float4 reads
      {{70001, 3}, {0}},
      {{1000, 7}, {1}},
      {{1000, 7}, {0}},
      {{7, 1000}, {0}},
      {{3000, 5}, {0}},
      {{4, 5, 6}, {0, 2}},
      {{4, 5, 6}, {1}},
      {{4, 5, 6}, {0, 1, 2}},
      {{4, 5, 6}, {}},
      {{2, 3, 4, 5}, {1, 3}},
      {{}, {}},
      {{3, 0}, {1}},
  };
  return cases;
}

// The output shape of reducing `shape` over `axes`.
Shape ReducedShape(const Shape& shape, const Shape& axes, bool keep_dims) {
  Shape out;
  for (size_t d = 0; d < shape.size(); ++d) {
    bool reduced = false;
    for (int64_t axis : axes) reduced = reduced || axis == static_cast<int64_t>(d);
    if (!reduced) out.push_back(shape[d]);
    else if (keep_dims) out.push_back(1);
  }
  return out;
}

TEST_F(GpuTest, ReductionsMatchCpu) {
  std::mt19937 rng(15);
  struct Reduction {
    const char* name;
    DType dtype;
  };
  std::vector<Reduction> reductions = {
      {"reduce_sum", DType::kF32}, {"reduce_sum", DType::kI64}, {"reduce_sum", DType::kI32},
      {"reduce_sum_squares", DType::kF32}, {"reduce_mean", DType::kF32}, {"reduce_max", DType::kF32}, {"reduce_max", DType::kI64},
      {"reduce_max", DType::kI32},
  };
  for (const Reduction& reduction : reductions) {
    for (const ReduceCase& test : ReduceCases()) {
      bool is_max = std::string(reduction.name) == "reduce_max";
      if (is_max && NumElementsOf(test.shape) == 0) continue;  // no maximum; an error
      for (bool keep_dims : {false, true}) {
        SCOPED_TRACE(::testing::Message() << reduction.name << " " << DTypeName(reduction.dtype)
                                        << " " << FormatShape(test.shape) << " axes "
                                        << FormatShape(test.axes) << " keep " << keep_dims);
        OwnedTensor x = RandomOperand(reduction.dtype, test.shape, rng);
        KernelAttrs attrs;
        attrs.SetInts("axes", test.axes);
        attrs.SetInt("keep_dims", keep_dims ? 1 : 0);
        TwinResult result = RunOne(reduction.name, attrs, {&x}, reduction.dtype,
                                   ReducedShape(test.shape, test.axes, keep_dims));
        if (reduction.dtype == DType::kF32 && !is_max) {
          // Double sums in another order: one f32 ulp at most.
          ExpectClose(result, 1e-6, 1e-6);
        } else {
          ExpectIdentical(result);
        }
      }
    }
  }
}

TEST_F(GpuTest, ReductionsPropagateNan) {
  float nan = std::numeric_limits<float>::quiet_NaN();
  float inf = std::numeric_limits<float>::infinity();
  OwnedTensor x = F32({4, 3}, {nan, 1.0f, 2.0f, -inf, -inf, -inf, 3.0f, inf, nan, 1.0f, 2.0f,
                               3.0f});
  for (const char* name : {"reduce_sum", "reduce_sum_squares", "reduce_mean", "reduce_max"}) {
    for (Shape axes : {Shape{0}, Shape{1}, Shape{0, 1}}) {
      SCOPED_TRACE(::testing::Message() << name << " " << FormatShape(axes));
      KernelAttrs attrs;
      attrs.SetInts("axes", axes);
      ExpectClose(RunOne(name, attrs, {&x}, DType::kF32, ReducedShape({4, 3}, axes, false)),
                  1e-6, 1e-6);
    }
  }
  // The NaN wins wherever it sits in a long row, across block threads and
  // (at 100000 elements) across the chunks of a split reduction, read as
  // float4s (100003: with a tail of 3 in the last chunk).
  for (int64_t length : {5000, 100000, 100003}) {
    std::vector<float> values(length, 1.0f);
    values[length * 7 / 9] = nan;
    OwnedTensor row = F32({1, length}, values);
    KernelAttrs last;
    last.SetInts("axes", {1});
    ExpectClose(RunOne("reduce_max", last, {&row}, DType::kF32, {1}), 0.0, 0.0);
    ExpectClose(RunOne("reduce_sum", last, {&row}, DType::kF32, {1}), 0.0, 0.0);
    ExpectClose(RunOne("reduce_sum_squares", last, {&row}, DType::kF32, {1}), 0.0, 0.0);
  }
}

TEST_F(GpuTest, SoftmaxMatchesCpu) {
  std::mt19937 rng(16);
  struct SoftmaxCase {
    Shape shape;
    int64_t axis;
  };
  std::vector<SoftmaxCase> cases = {
      {{7}, 0},         {{1}, 0},          {{1000003}, 0},  {{1000, 7}, 1},
      {{1000, 7}, 0},   {{4, 1000, 3}, 1}, {{4, 5, 6}, -1}, {{4, 5, 6}, 0},
      {{3, 0, 2}, 1},   {{8, 1003}, -1},
  };
  for (const char* name : {"softmax", "log_softmax"}) {
    for (const SoftmaxCase& test : cases) {
      SCOPED_TRACE(::testing::Message() << name << " " << FormatShape(test.shape) << " axis "
                                      << test.axis);
      OwnedTensor x = RandomF32(test.shape, rng, -10.0f, 10.0f);
      KernelAttrs attrs;
      attrs.SetInt("axis", test.axis);
      ExpectClose(RunOne(name, attrs, {&x}, DType::kF32, test.shape), kMathAtol, kMathRtol);
    }
  }
  // A NaN poisons its line; a line of -inf is NaN; +inf gives NaN too.
  float nan = std::numeric_limits<float>::quiet_NaN();
  float inf = std::numeric_limits<float>::infinity();
  OwnedTensor special = F32({4, 3}, {nan, 1.0f, 2.0f, -inf, -inf, -inf, inf, 0.0f, 1.0f, -inf,
                                     0.0f, 1.0f});
  for (const char* name : {"softmax", "log_softmax"}) {
    for (int64_t axis : {0, 1}) {
      SCOPED_TRACE(::testing::Message() << name << " axis " << axis);
      KernelAttrs attrs;
      attrs.SetInt("axis", axis);
      ExpectClose(RunOne(name, attrs, {&special}, DType::kF32, {4, 3}), kMathAtol, kMathRtol);
    }
  }
}

TEST_F(GpuTest, ReduceBadOperandsFailLikeCpu) {
  OwnedTensor x(DType::kF32, {2, 3});
  KernelAttrs axes;
  axes.SetInts("axes", {1});
  ExpectSameError("reduce_sum", axes, {&x}, OwnedTensor(DType::kF32, {3}));
  KernelAttrs unsorted;
  unsorted.SetInts("axes", {1, 0});
  ExpectSameError("reduce_max", unsorted, {&x}, OwnedTensor(DType::kF32, {}));
  OwnedTensor empty_rows(DType::kF32, {2, 0});
  ExpectSameError("reduce_max", axes, {&empty_rows}, OwnedTensor(DType::kF32, {2}));
  KernelAttrs axis;
  axis.SetInt("axis", 2);
  ExpectSameError("softmax", axis, {&x}, OwnedTensor(DType::kF32, {2, 3}));
}

}  // namespace
}  // namespace veomni::runtime
