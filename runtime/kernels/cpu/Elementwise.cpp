// Elementwise kernels: broadcasting binary ops (numpy rules), compare, select
// and unary math. Float math runs in double and rounds once to f32; integer
// arithmetic wraps around like two's complement hardware (no signed overflow
// UB), as PyTorch's does.

#include <cmath>
#include <limits>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "runtime/kernels/cpu/CpuKernels.h"
#include "runtime/kernels/cpu/KernelSupport.h"

namespace veomni::runtime::cpu {
namespace {

// Calls `fn(a, b)` per output element with broadcasting; the output must be
// the broadcast shape of the two inputs.
template <typename In, typename Out, typename Fn>
void ApplyBinary(const TensorView& lhs, const TensorView& rhs, const TensorView& out, Fn fn) {
  const In* a = lhs.As<In>();
  const In* b = rhs.As<In>();
  Out* result = out.As<Out>();
  int64_t count = out.NumElements();
  if (lhs.shape == out.shape && rhs.shape == out.shape) {
    for (int64_t i = 0; i < count; ++i) result[i] = fn(a[i], b[i]);
    return;
  }
  StridedIndexWalker walker(out.shape, {BroadcastStrides(lhs.shape, out.shape),
                                        BroadcastStrides(rhs.shape, out.shape)});
  for (int64_t i = 0; i < count; ++i, walker.Next()) {
    result[i] = fn(a[walker.Offset(0)], b[walker.Offset(1)]);
  }
}

// Arity, equal input dtypes, output dtype and the broadcast output shape.
absl::Status CheckBinaryOperands(absl::string_view kernel, absl::Span<const TensorView> inputs,
                                 absl::Span<const TensorView> outputs, DType output_dtype) {
  VEOMNI_RETURN_IF_ERROR(CheckArity(kernel, inputs, 2, 2, outputs, 1));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "rhs", inputs[1], inputs[0].dtype));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "output", outputs[0], output_dtype));
  VEOMNI_ASSIGN_OR_RETURN(std::vector<int64_t> shape,
                          BroadcastShapes(kernel, {inputs[0].shape, inputs[1].shape}));
  return CheckShape(kernel, "output", outputs[0], shape);
}

enum class BinaryOp { kAdd, kSub, kMul, kDiv, kPow, kMaximum, kMinimum };

void RunFloatBinary(BinaryOp op, const TensorView& lhs, const TensorView& rhs,
                    const TensorView& out) {
  // Like torch.maximum/minimum, a NaN on either side wins.
  auto nan_or = [](float a, float b, float otherwise) {
    return (std::isnan(a) || std::isnan(b)) ? std::numeric_limits<float>::quiet_NaN()
                                            : otherwise;
  };
  switch (op) {
    case BinaryOp::kAdd:
      return ApplyBinary<float, float>(lhs, rhs, out, [](float a, float b) { return a + b; });
    case BinaryOp::kSub:
      return ApplyBinary<float, float>(lhs, rhs, out, [](float a, float b) { return a - b; });
    case BinaryOp::kMul:
      return ApplyBinary<float, float>(lhs, rhs, out, [](float a, float b) { return a * b; });
    case BinaryOp::kDiv:
      return ApplyBinary<float, float>(lhs, rhs, out, [](float a, float b) { return a / b; });
    case BinaryOp::kPow:
      return ApplyBinary<float, float>(lhs, rhs, out, [](float a, float b) {
        return static_cast<float>(std::pow(static_cast<double>(a), static_cast<double>(b)));
      });
    case BinaryOp::kMaximum:
      return ApplyBinary<float, float>(lhs, rhs, out, [&](float a, float b) {
        return nan_or(a, b, a < b ? b : a);
      });
    case BinaryOp::kMinimum:
      return ApplyBinary<float, float>(lhs, rhs, out, [&](float a, float b) {
        return nan_or(a, b, b < a ? b : a);
      });
  }
}

template <typename T>
T WrappingAdd(T a, T b) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
}
template <typename T>
T WrappingSub(T a, T b) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(a) - static_cast<U>(b));
}
template <typename T>
T WrappingMul(T a, T b) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
}
// Truncates toward zero; min / -1 wraps to min instead of trapping.
template <typename T>
T TruncatingDiv(T a, T b) {
  if (b == -1) return WrappingSub<T>(0, a);
  return a / b;
}

template <typename T>
absl::Status RunIntegerBinary(absl::string_view kernel, BinaryOp op, const TensorView& lhs,
                              const TensorView& rhs, const TensorView& out) {
  switch (op) {
    case BinaryOp::kAdd:
      ApplyBinary<T, T>(lhs, rhs, out, WrappingAdd<T>);
      return absl::OkStatus();
    case BinaryOp::kSub:
      ApplyBinary<T, T>(lhs, rhs, out, WrappingSub<T>);
      return absl::OkStatus();
    case BinaryOp::kMul:
      ApplyBinary<T, T>(lhs, rhs, out, WrappingMul<T>);
      return absl::OkStatus();
    case BinaryOp::kDiv: {
      // Every divisor element is used unless the output is empty, so checking
      // them all up front is exact and keeps the loop free of error paths.
      if (out.NumElements() > 0) {
        const T* divisor = rhs.As<T>();
        for (int64_t i = 0; i < rhs.NumElements(); ++i) {
          if (divisor[i] == 0) {
            return absl::InvalidArgumentError(absl::StrCat(
                kernel, ": integer division by zero (divisor element ", i, ")"));
          }
        }
      }
      ApplyBinary<T, T>(lhs, rhs, out, TruncatingDiv<T>);
      return absl::OkStatus();
    }
    case BinaryOp::kMaximum:
      ApplyBinary<T, T>(lhs, rhs, out, [](T a, T b) { return a < b ? b : a; });
      return absl::OkStatus();
    case BinaryOp::kMinimum:
      ApplyBinary<T, T>(lhs, rhs, out, [](T a, T b) { return b < a ? b : a; });
      return absl::OkStatus();
    case BinaryOp::kPow:
      break;
  }
  return UnimplementedDType(kernel, lhs.dtype);
}

absl::Status RunBinary(absl::string_view kernel, BinaryOp op,
                       absl::Span<const TensorView> inputs,
                       absl::Span<const TensorView> outputs) {
  VEOMNI_RETURN_IF_ERROR(CheckArity(kernel, inputs, 2, 2, outputs, 1));
  VEOMNI_RETURN_IF_ERROR(CheckBinaryOperands(kernel, inputs, outputs, inputs[0].dtype));
  const TensorView& lhs = inputs[0];
  switch (lhs.dtype) {
    case DType::kF32:
      RunFloatBinary(op, lhs, inputs[1], outputs[0]);
      return absl::OkStatus();
    case DType::kI64:
      return RunIntegerBinary<int64_t>(kernel, op, lhs, inputs[1], outputs[0]);
    case DType::kI32:
      return RunIntegerBinary<int32_t>(kernel, op, lhs, inputs[1], outputs[0]);
    default:
      return UnimplementedDType(kernel, lhs.dtype);
  }
}

// cmp predicates, in the order the compiler numbers them.
enum Predicate : int64_t { kEq = 0, kNe, kLt, kLe, kGt, kGe };

template <typename T>
void RunCompare(Predicate predicate, const TensorView& lhs, const TensorView& rhs,
                const TensorView& out) {
  auto apply = [&](auto compare) {
    ApplyBinary<T, uint8_t>(lhs, rhs, out,
                            [&](T a, T b) { return static_cast<uint8_t>(compare(a, b)); });
  };
  switch (predicate) {
    case kEq: return apply([](T a, T b) { return a == b; });
    case kNe: return apply([](T a, T b) { return a != b; });
    case kLt: return apply([](T a, T b) { return a < b; });
    case kLe: return apply([](T a, T b) { return a <= b; });
    case kGt: return apply([](T a, T b) { return a > b; });
    case kGe: return apply([](T a, T b) { return a >= b; });
  }
}

// Moves whole elements as `Word`s: select never looks at their values.
template <typename Word>
void RunSelect(const TensorView& cond, const TensorView& on_true, const TensorView& on_false,
               const TensorView& out) {
  const uint8_t* c = cond.As<uint8_t>();
  const Word* t = on_true.As<Word>();
  const Word* f = on_false.As<Word>();
  Word* result = out.As<Word>();
  StridedIndexWalker walker(out.shape, {BroadcastStrides(cond.shape, out.shape),
                                        BroadcastStrides(on_true.shape, out.shape),
                                        BroadcastStrides(on_false.shape, out.shape)});
  int64_t count = out.NumElements();
  for (int64_t i = 0; i < count; ++i, walker.Next()) {
    result[i] = c[walker.Offset(0)] != 0 ? t[walker.Offset(1)] : f[walker.Offset(2)];
  }
}

// Checks a unary f32 -> `output_dtype` kernel of matching shapes.
absl::Status CheckUnaryOperands(absl::string_view kernel, absl::Span<const TensorView> inputs,
                                absl::Span<const TensorView> outputs, DType output_dtype) {
  VEOMNI_RETURN_IF_ERROR(CheckArity(kernel, inputs, 1, 1, outputs, 1));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "output", outputs[0], output_dtype));
  return CheckShape(kernel, "output", outputs[0], inputs[0].shape);
}

template <typename Fn>
absl::Status RunFloatUnary(absl::string_view kernel, absl::Span<const TensorView> inputs,
                           absl::Span<const TensorView> outputs, Fn fn) {
  if (!inputs.empty() && inputs[0].dtype != DType::kF32) {
    return UnimplementedDType(kernel, inputs[0].dtype);
  }
  VEOMNI_RETURN_IF_ERROR(CheckUnaryOperands(kernel, inputs, outputs, DType::kF32));
  const float* x = inputs[0].As<float>();
  float* y = outputs[0].As<float>();
  int64_t count = inputs[0].NumElements();
  for (int64_t i = 0; i < count; ++i) {
    y[i] = static_cast<float>(fn(static_cast<double>(x[i])));
  }
  return absl::OkStatus();
}

double SigmoidOf(double x) { return 1.0 / (1.0 + std::exp(-x)); }

template <typename T>
void NegateAll(const TensorView& in, const TensorView& out) {
  const T* x = in.As<T>();
  T* y = out.As<T>();
  for (int64_t i = 0; i < in.NumElements(); ++i) {
    if constexpr (std::is_integral_v<T>) {
      y[i] = WrappingSub<T>(0, x[i]);
    } else {
      y[i] = -x[i];
    }
  }
}

}  // namespace

absl::Status Add(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunBinary("add", BinaryOp::kAdd, inputs, outputs);
}

absl::Status Sub(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunBinary("sub", BinaryOp::kSub, inputs, outputs);
}

absl::Status Mul(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunBinary("mul", BinaryOp::kMul, inputs, outputs);
}

absl::Status Div(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunBinary("div", BinaryOp::kDiv, inputs, outputs);
}

absl::Status Pow(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunBinary("pow", BinaryOp::kPow, inputs, outputs);
}

absl::Status Maximum(const KernelAttrs&, absl::Span<const TensorView> inputs,
                     absl::Span<const TensorView> outputs) {
  return RunBinary("maximum", BinaryOp::kMaximum, inputs, outputs);
}

absl::Status Minimum(const KernelAttrs&, absl::Span<const TensorView> inputs,
                     absl::Span<const TensorView> outputs) {
  return RunBinary("minimum", BinaryOp::kMinimum, inputs, outputs);
}

// cmp {predicate}: lhs, rhs of one dtype (f32, i64, i32) -> i1, broadcasting.
absl::Status Compare(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                     absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "cmp";
  VEOMNI_RETURN_IF_ERROR(CheckBinaryOperands(kKernel, inputs, outputs, DType::kI1));
  VEOMNI_ASSIGN_OR_RETURN(int64_t predicate, RequiredInt(kKernel, attrs, "predicate"));
  if (predicate < kEq || predicate > kGe) {
    return absl::InvalidArgumentError(absl::StrCat(
        kKernel, ": predicate ", predicate, " is not one of 0 (eq) to 5 (ge)"));
  }
  const TensorView& lhs = inputs[0];
  switch (lhs.dtype) {
    case DType::kF32:
      RunCompare<float>(static_cast<Predicate>(predicate), lhs, inputs[1], outputs[0]);
      return absl::OkStatus();
    case DType::kI64:
      RunCompare<int64_t>(static_cast<Predicate>(predicate), lhs, inputs[1], outputs[0]);
      return absl::OkStatus();
    case DType::kI32:
      RunCompare<int32_t>(static_cast<Predicate>(predicate), lhs, inputs[1], outputs[0]);
      return absl::OkStatus();
    default:
      return UnimplementedDType(kKernel, lhs.dtype);
  }
}

// select(cond i1, on_true, on_false): all three broadcast; any branch dtype.
absl::Status Select(const KernelAttrs&, absl::Span<const TensorView> inputs,
                    absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "select";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 3, 3, outputs, 1));
  const TensorView& cond = inputs[0];
  const TensorView& on_true = inputs[1];
  const TensorView& on_false = inputs[2];
  const TensorView& out = outputs[0];
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "cond", cond, DType::kI1));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "on_false", on_false, on_true.dtype));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", out, on_true.dtype));
  VEOMNI_ASSIGN_OR_RETURN(
      std::vector<int64_t> shape,
      BroadcastShapes(kKernel, {cond.shape, on_true.shape, on_false.shape}));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", out, shape));
  switch (DTypeBytes(out.dtype)) {
    case 1: RunSelect<uint8_t>(cond, on_true, on_false, out); break;
    case 2: RunSelect<uint16_t>(cond, on_true, on_false, out); break;
    case 4: RunSelect<uint32_t>(cond, on_true, on_false, out); break;
    case 8: RunSelect<uint64_t>(cond, on_true, on_false, out); break;
    default: return UnimplementedDType(kKernel, out.dtype);
  }
  return absl::OkStatus();
}

absl::Status Neg(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "neg";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 1, 1, outputs, 1));
  VEOMNI_RETURN_IF_ERROR(CheckUnaryOperands(kKernel, inputs, outputs, inputs[0].dtype));
  switch (inputs[0].dtype) {
    case DType::kF32: NegateAll<float>(inputs[0], outputs[0]); break;
    case DType::kI64: NegateAll<int64_t>(inputs[0], outputs[0]); break;
    case DType::kI32: NegateAll<int32_t>(inputs[0], outputs[0]); break;
    default: return UnimplementedDType(kKernel, inputs[0].dtype);
  }
  return absl::OkStatus();
}

absl::Status Exp(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunFloatUnary("exp", inputs, outputs, [](double x) { return std::exp(x); });
}

absl::Status Log(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunFloatUnary("log", inputs, outputs, [](double x) { return std::log(x); });
}

absl::Status Sqrt(const KernelAttrs&, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  return RunFloatUnary("sqrt", inputs, outputs, [](double x) { return std::sqrt(x); });
}

absl::Status Rsqrt(const KernelAttrs&, absl::Span<const TensorView> inputs,
                   absl::Span<const TensorView> outputs) {
  return RunFloatUnary("rsqrt", inputs, outputs,
                       [](double x) { return 1.0 / std::sqrt(x); });
}

absl::Status Reciprocal(const KernelAttrs&, absl::Span<const TensorView> inputs,
                        absl::Span<const TensorView> outputs) {
  return RunFloatUnary("reciprocal", inputs, outputs, [](double x) { return 1.0 / x; });
}

absl::Status Tanh(const KernelAttrs&, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  return RunFloatUnary("tanh", inputs, outputs, [](double x) { return std::tanh(x); });
}

absl::Status Erf(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunFloatUnary("erf", inputs, outputs, [](double x) { return std::erf(x); });
}

absl::Status Cos(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunFloatUnary("cos", inputs, outputs, [](double x) { return std::cos(x); });
}

absl::Status Sin(const KernelAttrs&, absl::Span<const TensorView> inputs,
                 absl::Span<const TensorView> outputs) {
  return RunFloatUnary("sin", inputs, outputs, [](double x) { return std::sin(x); });
}

absl::Status Sigmoid(const KernelAttrs&, absl::Span<const TensorView> inputs,
                     absl::Span<const TensorView> outputs) {
  return RunFloatUnary("sigmoid", inputs, outputs, SigmoidOf);
}

absl::Status Silu(const KernelAttrs&, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  return RunFloatUnary("silu", inputs, outputs, [](double x) { return x * SigmoidOf(x); });
}

// gelu {approximate: 0 = x * Phi(x) with erf, 1 = PyTorch's tanh form}.
absl::Status Gelu(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "gelu";
  VEOMNI_ASSIGN_OR_RETURN(bool tanh_form, OptionalFlag(kKernel, attrs, "approximate", false));
  if (tanh_form) {
    return RunFloatUnary(kKernel, inputs, outputs, [](double x) {
      const double kSqrt2OverPi = 0.7978845608028654;
      return 0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x)));
    });
  }
  return RunFloatUnary(kKernel, inputs, outputs, [](double x) {
    const double kInvSqrt2 = 0.7071067811865476;
    return 0.5 * x * (1.0 + std::erf(x * kInvSqrt2));
  });
}

absl::Status IsNan(const KernelAttrs&, absl::Span<const TensorView> inputs,
                   absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "is_nan";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 1, 1, outputs, 1));
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kKernel, inputs[0].dtype, {DType::kF32}));
  VEOMNI_RETURN_IF_ERROR(CheckUnaryOperands(kKernel, inputs, outputs, DType::kI1));
  const float* x = inputs[0].As<float>();
  uint8_t* y = outputs[0].As<uint8_t>();
  for (int64_t i = 0; i < inputs[0].NumElements(); ++i) y[i] = std::isnan(x[i]) ? 1 : 0;
  return absl::OkStatus();
}

}  // namespace veomni::runtime::cpu
