//===- VoGradients.cpp - the gradient rule of each vo op ------------------===//
//
// DifferentiableOpInterface::emitGradients for every differentiable op. Each
// rule receives the gradient of the op's result and fills `grads` (one slot
// per operand, already sized and null) for the operands marked `needed`.
// Broadcast operands get their gradient summed back to their own shape.
//
//===----------------------------------------------------------------------===//

#include "dialects/vo/VoOps.h"

#include "mlir/IR/Builders.h"

#include <cmath>

using namespace mlir;
using namespace veomni::vo;

namespace {

RankedTensorType typeOf(Value value) {
  return cast<RankedTensorType>(value.getType());
}

/// A constant of `type` with every element `value`.
Value splat(OpBuilder &b, Location loc, RankedTensorType type, double value) {
  Type element = type.getElementType();
  Attribute scalar = isa<FloatType>(element)
                         ? Attribute(b.getFloatAttr(element, value))
                         : Attribute(b.getIntegerAttr(element, (int64_t)value));
  return ConstantOp::create(b, loc, SplatElementsAttr::get(type, scalar));
}

/// A rank-0 constant of `like`'s element type.
Value scalar(OpBuilder &b, Location loc, Value like, double value) {
  return splat(b, loc, RankedTensorType::get({}, typeOf(like).getElementType()),
               value);
}

/// Sums `grad` over the dims that broadcasting added or stretched, so it has
/// the shape of the operand it belongs to.
Value sumToShape(OpBuilder &b, Location loc, Value grad,
                 RankedTensorType target) {
  RankedTensorType type = typeOf(grad);
  if (type.getShape() == target.getShape())
    return grad;
  int64_t extra = type.getRank() - target.getRank();
  SmallVector<int64_t> axes;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (d < extra || (target.getDimSize(d - extra) == 1 &&
                      type.getDimSize(d) != 1))
      axes.push_back(d);
  Value summed = axes.empty() ? grad
                              : Value(ReduceSumOp::create(b, loc, grad, axes,
                                                          /*keep_dims=*/false));
  return ReshapeOp::create(b, loc, summed, target.getShape());
}

/// Broadcasts a reduction's gradient back over the reduced axes.
Value expandReduced(OpBuilder &b, Location loc, Value grad,
                    RankedTensorType input, ArrayRef<int64_t> axes,
                    bool keepDims) {
  SmallVector<int64_t> kept(input.getShape());
  for (int64_t axis : axes)
    kept[axis] = 1;
  if (!keepDims)
    grad = ReshapeOp::create(b, loc, grad, kept);
  return BroadcastToOp::create(b, loc, grad, input.getShape());
}

Value mul(OpBuilder &b, Location loc, Value x, Value y) {
  return MulOp::create(b, loc, x, y);
}
Value sub(OpBuilder &b, Location loc, Value x, Value y) {
  return SubOp::create(b, loc, x, y);
}
Value add(OpBuilder &b, Location loc, Value x, Value y) {
  return AddOp::create(b, loc, x, y);
}

/// grads[i] = sumToShape(value) when needed.
void setBroadcastGrad(OpBuilder &b, Location loc, Operation *op,
                      ArrayRef<bool> needed, SmallVectorImpl<Value> &grads,
                      unsigned index, function_ref<Value()> compute) {
  if (!needed[index])
    return;
  grads[index] =
      sumToShape(b, loc, compute(), typeOf(op->getOperand(index)));
}

} // namespace

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

LogicalResult AddOp::emitGradients(OpBuilder &b, Value dy,
                                   ArrayRef<bool> needed,
                                   SmallVectorImpl<Value> &grads) {
  setBroadcastGrad(b, getLoc(), *this, needed, grads, 0, [&] { return dy; });
  setBroadcastGrad(b, getLoc(), *this, needed, grads, 1, [&] { return dy; });
  return success();
}

LogicalResult SubOp::emitGradients(OpBuilder &b, Value dy,
                                   ArrayRef<bool> needed,
                                   SmallVectorImpl<Value> &grads) {
  Location loc = getLoc();
  setBroadcastGrad(b, loc, *this, needed, grads, 0, [&] { return dy; });
  setBroadcastGrad(b, loc, *this, needed, grads, 1,
                   [&] { return Value(NegOp::create(b, loc, dy)); });
  return success();
}

LogicalResult MulOp::emitGradients(OpBuilder &b, Value dy,
                                   ArrayRef<bool> needed,
                                   SmallVectorImpl<Value> &grads) {
  Location loc = getLoc();
  setBroadcastGrad(b, loc, *this, needed, grads, 0,
                   [&] { return mul(b, loc, dy, getRhs()); });
  setBroadcastGrad(b, loc, *this, needed, grads, 1,
                   [&] { return mul(b, loc, dy, getLhs()); });
  return success();
}

LogicalResult DivOp::emitGradients(OpBuilder &b, Value dy,
                                   ArrayRef<bool> needed,
                                   SmallVectorImpl<Value> &grads) {
  Location loc = getLoc();
  // d(l/r)/dl = 1/r; d(l/r)/dr = -(l/r)/r.
  setBroadcastGrad(b, loc, *this, needed, grads, 0,
                   [&] { return Value(DivOp::create(b, loc, dy, getRhs())); });
  setBroadcastGrad(b, loc, *this, needed, grads, 1, [&] {
    Value quotient = DivOp::create(b, loc, getResult(), getRhs());
    return Value(NegOp::create(b, loc, mul(b, loc, dy, quotient)));
  });
  return success();
}

LogicalResult PowOp::emitGradients(OpBuilder &b, Value dy,
                                   ArrayRef<bool> needed,
                                   SmallVectorImpl<Value> &grads) {
  Location loc = getLoc();
  // d(x^e)/dx = e * x^(e-1); d(x^e)/de = x^e * ln x.
  setBroadcastGrad(b, loc, *this, needed, grads, 0, [&] {
    Value exponent = sub(b, loc, getRhs(), scalar(b, loc, getRhs(), 1.0));
    Value power = PowOp::create(b, loc, getLhs(), exponent);
    return mul(b, loc, dy, mul(b, loc, getRhs(), power));
  });
  setBroadcastGrad(b, loc, *this, needed, grads, 1, [&] {
    Value log = LogOp::create(b, loc, getLhs());
    return mul(b, loc, dy, mul(b, loc, getResult(), log));
  });
  return success();
}

/// Maximum and minimum route the gradient to the operand that won; ties go
/// to the left operand.
static LogicalResult emitSelectingGradients(Operation *op, OpBuilder &b,
                                            Value dy, ArrayRef<bool> needed,
                                            SmallVectorImpl<Value> &grads,
                                            CmpPredicate lhsWins) {
  Location loc = op->getLoc();
  Value lhs = op->getOperand(0), rhs = op->getOperand(1);
  Value wins = CmpOp::create(b, loc, lhsWins, lhs, rhs);
  Value zero = scalar(b, loc, dy, 0.0);
  setBroadcastGrad(b, loc, op, needed, grads, 0, [&] {
    return Value(SelectOp::create(b, loc, wins, dy, zero));
  });
  setBroadcastGrad(b, loc, op, needed, grads, 1, [&] {
    return Value(SelectOp::create(b, loc, wins, zero, dy));
  });
  return success();
}

LogicalResult MaximumOp::emitGradients(OpBuilder &b, Value dy,
                                       ArrayRef<bool> needed,
                                       SmallVectorImpl<Value> &grads) {
  return emitSelectingGradients(*this, b, dy, needed, grads, CmpPredicate::ge);
}

LogicalResult MinimumOp::emitGradients(OpBuilder &b, Value dy,
                                       ArrayRef<bool> needed,
                                       SmallVectorImpl<Value> &grads) {
  return emitSelectingGradients(*this, b, dy, needed, grads, CmpPredicate::le);
}

LogicalResult SelectOp::emitGradients(OpBuilder &b, Value dy,
                                      ArrayRef<bool> needed,
                                      SmallVectorImpl<Value> &grads) {
  Location loc = getLoc();
  Value zero = scalar(b, loc, dy, 0.0);
  setBroadcastGrad(b, loc, *this, needed, grads, 1, [&] {
    return Value(SelectOp::create(b, loc, getCond(), dy, zero));
  });
  setBroadcastGrad(b, loc, *this, needed, grads, 2, [&] {
    return Value(SelectOp::create(b, loc, getCond(), zero, dy));
  });
  return success();
}

/// Rules of the form dx = dy * f(x, y).
#define VO_UNARY_GRADIENT(OP, BODY)                                            \
  LogicalResult OP::emitGradients(OpBuilder &b, Value dy,                      \
                                  ArrayRef<bool> needed,                       \
                                  SmallVectorImpl<Value> &grads) {             \
    if (!needed[0])                                                            \
      return success();                                                        \
    Location loc = getLoc();                                                   \
    Value x = getInput(), y = getResult();                                     \
    (void)x;                                                                   \
    (void)y;                                                                   \
    auto c = [&](double v) { return scalar(b, loc, dy, v); };                  \
    (void)c;                                                                   \
    grads[0] = BODY;                                                           \
    return success();                                                          \
  }

VO_UNARY_GRADIENT(NegOp, Value(NegOp::create(b, loc, dy)))
VO_UNARY_GRADIENT(ExpOp, mul(b, loc, dy, y))
VO_UNARY_GRADIENT(LogOp, Value(DivOp::create(b, loc, dy, x)))
// d sqrt(x) = 1 / (2 sqrt(x)).
VO_UNARY_GRADIENT(SqrtOp,
                  Value(DivOp::create(b, loc, dy, mul(b, loc, y, c(2.0)))))
// d x^-1/2 = -1/2 x^-3/2 = -1/2 y^3.
VO_UNARY_GRADIENT(RsqrtOp,
                  mul(b, loc, dy,
                      mul(b, loc, c(-0.5), mul(b, loc, y, mul(b, loc, y, y)))))
// d 1/x = -1/x^2 = -y^2.
VO_UNARY_GRADIENT(ReciprocalOp,
                  Value(NegOp::create(b, loc, mul(b, loc, dy, mul(b, loc, y, y)))))
VO_UNARY_GRADIENT(TanhOp,
                  mul(b, loc, dy, sub(b, loc, c(1.0), mul(b, loc, y, y))))
// d erf(x) = 2/sqrt(pi) e^(-x^2).
VO_UNARY_GRADIENT(
    ErfOp,
    mul(b, loc, dy,
        mul(b, loc, c(2.0 / std::sqrt(M_PI)),
            Value(ExpOp::create(
                b, loc, Value(NegOp::create(b, loc, mul(b, loc, x, x))))))))
VO_UNARY_GRADIENT(CosOp, Value(NegOp::create(
                             b, loc, mul(b, loc, dy, Value(SinOp::create(b, loc, x))))))
VO_UNARY_GRADIENT(SinOp, mul(b, loc, dy, Value(CosOp::create(b, loc, x))))
VO_UNARY_GRADIENT(SigmoidOp,
                  mul(b, loc, dy, mul(b, loc, y, sub(b, loc, c(1.0), y))))
#undef VO_UNARY_GRADIENT

// silu'(x) = s (1 + x (1 - s)), s = sigmoid(x).
LogicalResult SiluOp::emitGradients(OpBuilder &b, Value dy,
                                    ArrayRef<bool> needed,
                                    SmallVectorImpl<Value> &grads) {
  if (!needed[0])
    return success();
  Location loc = getLoc();
  Value x = getInput();
  Value s = SigmoidOp::create(b, loc, x);
  Value one = scalar(b, loc, dy, 1.0);
  Value inner = add(b, loc, one, mul(b, loc, x, sub(b, loc, one, s)));
  grads[0] = mul(b, loc, dy, mul(b, loc, s, inner));
  return success();
}

LogicalResult GeluOp::emitGradients(OpBuilder &b, Value dy,
                                    ArrayRef<bool> needed,
                                    SmallVectorImpl<Value> &grads) {
  if (!needed[0])
    return success();
  Location loc = getLoc();
  Value x = getInput();
  auto c = [&](double v) { return scalar(b, loc, dy, v); };
  Value derivative;
  if (getApproximate() == GeluApproximation::none) {
    // Phi(x) + x phi(x), Phi the normal CDF, phi its density.
    Value cdf = mul(b, loc, c(0.5),
                    add(b, loc, c(1.0),
                        Value(ErfOp::create(b, loc,
                                            mul(b, loc, x, c(M_SQRT1_2))))));
    Value density = mul(
        b, loc, c(1.0 / std::sqrt(2.0 * M_PI)),
        Value(ExpOp::create(b, loc, mul(b, loc, c(-0.5), mul(b, loc, x, x)))));
    derivative = add(b, loc, cdf, mul(b, loc, x, density));
  } else {
    // 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 a x^2), t = tanh(k (x + a x^3)).
    double k = std::sqrt(2.0 / M_PI), a = 0.044715;
    Value x2 = mul(b, loc, x, x);
    Value inner = mul(b, loc, c(k), add(b, loc, x, mul(b, loc, c(a), mul(b, loc, x2, x))));
    Value t = TanhOp::create(b, loc, inner);
    Value left = mul(b, loc, c(0.5), add(b, loc, c(1.0), t));
    Value slope = mul(b, loc, c(k), add(b, loc, c(1.0), mul(b, loc, c(3 * a), x2)));
    Value right = mul(b, loc, mul(b, loc, c(0.5), x),
                      mul(b, loc, sub(b, loc, c(1.0), mul(b, loc, t, t)), slope));
    derivative = add(b, loc, left, right);
  }
  grads[0] = mul(b, loc, dy, derivative);
  return success();
}

LogicalResult CastOp::emitGradients(OpBuilder &b, Value dy,
                                    ArrayRef<bool> needed,
                                    SmallVectorImpl<Value> &grads) {
  if (needed[0])
    grads[0] = CastOp::create(b, getLoc(), dy,
                              typeOf(getInput()).getElementType());
  return success();
}

//===----------------------------------------------------------------------===//
// Contractions and reductions
//===----------------------------------------------------------------------===//

LogicalResult MatmulOp::emitGradients(OpBuilder &b, Value dy,
                                      ArrayRef<bool> needed,
                                      SmallVectorImpl<Value> &grads) {
  Location loc = getLoc();
  if (getF32Result())
    return emitOpError("with f32_result has no gradient rule (vo-bf16-matmuls runs "
                       "after autodiff)");
  Value lhs = getLhs(), rhs = getRhs();
  bool tl = getTransposeLhs(), tr = getTransposeRhs();
  // Weight gradients of batched activations against a 2-D weight are one
  // GEMM over the flattened batch, not a batch of GEMMs summed afterwards.
  auto flattenBatch = [&](Value v) -> Value {
    RankedTensorType t = typeOf(v);
    if (t.getRank() <= 2)
      return v;
    int64_t rows = t.getNumElements() / t.getShape().back();
    return ReshapeOp::create(b, loc, v,
                             ArrayRef<int64_t>{rows, t.getShape().back()});
  };
  if (needed[0]) {
    // dA = dC op(B)^T, stored transposed when A is.
    Value grad = tl ? Value(MatmulOp::create(b, loc, rhs, dy, tr, true))
                    : Value(MatmulOp::create(b, loc, dy, rhs, false, !tr));
    grads[0] = sumToShape(b, loc, grad, typeOf(lhs));
  }
  if (needed[1]) {
    // dB = op(A)^T dC, stored transposed when B is.
    Value a = lhs, d = dy;
    if (typeOf(rhs).getRank() == 2 && !tl) {
      a = flattenBatch(lhs);
      d = flattenBatch(dy);
    }
    Value grad = tr ? Value(MatmulOp::create(b, loc, d, a, true, tl))
                    : Value(MatmulOp::create(b, loc, a, d, !tl, false));
    grads[1] = sumToShape(b, loc, grad, typeOf(rhs));
  }
  return success();
}

LogicalResult ReduceSumOp::emitGradients(OpBuilder &b, Value dy,
                                         ArrayRef<bool> needed,
                                         SmallVectorImpl<Value> &grads) {
  if (needed[0])
    grads[0] = expandReduced(b, getLoc(), dy, typeOf(getInput()), getAxes(),
                             getKeepDims());
  return success();
}

// d/dx sum(x^2) = 2 x, times the broadcast dy.
LogicalResult ReduceSumSquaresOp::emitGradients(OpBuilder &b, Value dy,
                                                ArrayRef<bool> needed,
                                                SmallVectorImpl<Value> &grads) {
  if (!needed[0])
    return success();
  Location loc = getLoc();
  RankedTensorType input = typeOf(getInput());
  Value expanded = expandReduced(b, loc, dy, input, getAxes(), getKeepDims());
  grads[0] = mul(b, loc, expanded, mul(b, loc, getInput(), scalar(b, loc, dy, 2.0)));
  return success();
}

LogicalResult ReduceMeanOp::emitGradients(OpBuilder &b, Value dy,
                                          ArrayRef<bool> needed,
                                          SmallVectorImpl<Value> &grads) {
  if (!needed[0])
    return success();
  Location loc = getLoc();
  RankedTensorType input = typeOf(getInput());
  int64_t count = 1;
  for (int64_t axis : getAxes())
    count *= input.getDimSize(axis);
  Value scaled = mul(b, loc, dy, scalar(b, loc, dy, 1.0 / count));
  grads[0] = expandReduced(b, loc, scaled, input, getAxes(), getKeepDims());
  return success();
}

// The gradient is shared by all elements equal to the maximum (as
// torch.amax does).
LogicalResult ReduceMaxOp::emitGradients(OpBuilder &b, Value dy,
                                         ArrayRef<bool> needed,
                                         SmallVectorImpl<Value> &grads) {
  if (!needed[0])
    return success();
  Location loc = getLoc();
  RankedTensorType input = typeOf(getInput());
  Value max = expandReduced(b, loc, getResult(), input, getAxes(),
                            getKeepDims());
  Value isMax = CmpOp::create(b, loc, CmpPredicate::eq, getInput(), max);
  Value zero = scalar(b, loc, dy, 0.0), one = scalar(b, loc, dy, 1.0);
  Value hits = SelectOp::create(b, loc, isMax, one, zero);
  Value count = ReduceSumOp::create(b, loc, hits, getAxes(), true);
  Value share = DivOp::create(
      b, loc, expandReduced(b, loc, dy, input, getAxes(), getKeepDims()),
      count);
  grads[0] = SelectOp::create(b, loc, isMax, share, zero);
  return success();
}

// dx = y (dy - sum(dy y)).
LogicalResult SoftmaxOp::emitGradients(OpBuilder &b, Value dy,
                                       ArrayRef<bool> needed,
                                       SmallVectorImpl<Value> &grads) {
  if (!needed[0])
    return success();
  Location loc = getLoc();
  Value y = getResult();
  Value dot = ReduceSumOp::create(b, loc, mul(b, loc, dy, y),
                                  ArrayRef<int64_t>{getAxis()}, true);
  grads[0] = mul(b, loc, y, sub(b, loc, dy, dot));
  return success();
}

// dx = dy - exp(y) sum(dy).
LogicalResult LogSoftmaxOp::emitGradients(OpBuilder &b, Value dy,
                                          ArrayRef<bool> needed,
                                          SmallVectorImpl<Value> &grads) {
  if (!needed[0])
    return success();
  Location loc = getLoc();
  Value total = ReduceSumOp::create(b, loc, dy, ArrayRef<int64_t>{getAxis()},
                                    true);
  Value probs = ExpOp::create(b, loc, getResult());
  grads[0] = sub(b, loc, dy, mul(b, loc, probs, total));
  return success();
}

//===----------------------------------------------------------------------===//
// Shape manipulation
//===----------------------------------------------------------------------===//

LogicalResult ReshapeOp::emitGradients(OpBuilder &b, Value dy,
                                       ArrayRef<bool> needed,
                                       SmallVectorImpl<Value> &grads) {
  if (needed[0])
    grads[0] = ReshapeOp::create(b, getLoc(), dy,
                                 typeOf(getInput()).getShape());
  return success();
}

LogicalResult TransposeOp::emitGradients(OpBuilder &b, Value dy,
                                         ArrayRef<bool> needed,
                                         SmallVectorImpl<Value> &grads) {
  if (!needed[0])
    return success();
  ArrayRef<int64_t> perm = getPermutation();
  SmallVector<int64_t> inverse(perm.size());
  for (auto [i, p] : llvm::enumerate(perm))
    inverse[p] = i;
  grads[0] = TransposeOp::create(b, getLoc(), dy, inverse);
  return success();
}

LogicalResult BroadcastToOp::emitGradients(OpBuilder &b, Value dy,
                                           ArrayRef<bool> needed,
                                           SmallVectorImpl<Value> &grads) {
  if (needed[0])
    grads[0] = sumToShape(b, getLoc(), dy, typeOf(getInput()));
  return success();
}

// The gradient is dy placed back into zeros: concat with zero blocks along
// each sliced dim.
LogicalResult SliceOp::emitGradients(OpBuilder &b, Value dy,
                                     ArrayRef<bool> needed,
                                     SmallVectorImpl<Value> &grads) {
  if (!needed[0])
    return success();
  if (llvm::any_of(getStride(), [](int64_t s) { return s != 1; }))
    return emitOpError("gradient of a strided slice is not supported");
  Location loc = getLoc();
  RankedTensorType input = typeOf(getInput());
  Value grad = dy;
  for (int64_t d = 0; d < input.getRank(); ++d) {
    int64_t before = getStart()[d];
    int64_t after = input.getDimSize(d) - getLimit()[d];
    if (before == 0 && after == 0)
      continue;
    SmallVector<Value> parts;
    auto zeros = [&](int64_t width) {
      SmallVector<int64_t> shape(typeOf(grad).getShape());
      shape[d] = width;
      return splat(b, loc, RankedTensorType::get(shape, input.getElementType()),
                   0.0);
    };
    if (before)
      parts.push_back(zeros(before));
    parts.push_back(grad);
    if (after)
      parts.push_back(zeros(after));
    grad = ConcatOp::create(b, loc, parts, d);
  }
  grads[0] = grad;
  return success();
}

LogicalResult ConcatOp::emitGradients(OpBuilder &b, Value dy,
                                      ArrayRef<bool> needed,
                                      SmallVectorImpl<Value> &grads) {
  Location loc = getLoc();
  int64_t axis = getAxis(), offset = 0;
  RankedTensorType out = typeOf(dy);
  for (auto [i, input] : llvm::enumerate(getInputs())) {
    int64_t width = typeOf(input).getDimSize(axis);
    if (needed[i]) {
      SmallVector<int64_t> start(out.getRank(), 0), limit(out.getShape()),
          stride(out.getRank(), 1);
      start[axis] = offset;
      limit[axis] = offset + width;
      grads[i] = SliceOp::create(b, loc, dy, start, limit, stride);
    }
    offset += width;
  }
  return success();
}

// The inverse exchange: split what was concatenated, concatenate what was
// split.
LogicalResult AllToAllOp::emitGradients(OpBuilder &b, Value dy,
                                        ArrayRef<bool> needed,
                                        SmallVectorImpl<Value> &grads) {
  if (needed[0])
    grads[0] = AllToAllOp::create(b, getLoc(), dy, getMeshAxes(),
                                  getGroupSize(), getConcatDim(), getSplitDim());
  return success();
}

//===----------------------------------------------------------------------===//
// Model ops
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::emitGradients(OpBuilder &b, Value dy,
                                         ArrayRef<bool> needed,
                                         SmallVectorImpl<Value> &grads) {
  if (needed[0])
    grads[0] = EmbeddingGradOp::create(b, getLoc(), getIds(), dy,
                                       typeOf(getTable()).getDimSize(0));
  return success();
}

LogicalResult RmsNormOp::emitGradients(OpBuilder &b, Value dy,
                                       ArrayRef<bool> needed,
                                       SmallVectorImpl<Value> &grads) {
  if (!needed[0] && !needed[1])
    return success();
  auto grad = RmsNormGradOp::create(b, getLoc(), getInput(), getWeight(), dy,
                                    getEpsilonAttr());
  if (needed[0])
    grads[0] = grad.getInputGrad();
  if (needed[1])
    grads[1] = grad.getWeightGrad();
  return success();
}

LogicalResult RopeOp::emitGradients(OpBuilder &b, Value dy,
                                    ArrayRef<bool> needed,
                                    SmallVectorImpl<Value> &grads) {
  if (needed[1] || needed[2])
    return emitOpError("gradient w.r.t. the cos/sin tables is not supported; "
                       "they must not depend on parameters");
  if (needed[0])
    grads[0] = RopeGradOp::create(b, getLoc(), dy, getCos(), getSin());
  return success();
}

LogicalResult SwigluOp::emitGradients(OpBuilder &b, Value dy,
                                      ArrayRef<bool> needed,
                                      SmallVectorImpl<Value> &grads) {
  auto grad = SwigluGradOp::create(b, getLoc(), getGate(), getUp(), dy);
  grads[0] = needed[0] ? grad.getGateGrad() : Value();
  grads[1] = needed[1] ? grad.getUpGrad() : Value();
  return success();
}

LogicalResult AttentionOp::emitGradients(OpBuilder &b, Value dy,
                                         ArrayRef<bool> needed,
                                         SmallVectorImpl<Value> &grads) {
  auto grad = AttentionGradOp::create(b, getLoc(), getQuery(), getKey(),
                                      getValue(), dy, getCuSeqlens(),
                                      getScaleAttr(), getCausalAttr());
  for (unsigned i = 0; i < 3; ++i)
    grads[i] = needed[i] ? grad->getResult(i) : Value();
  return success();
}

LogicalResult CrossEntropyOp::emitGradients(OpBuilder &b, Value dy,
                                            ArrayRef<bool> needed,
                                            SmallVectorImpl<Value> &grads) {
  if (needed[0])
    grads[0] = CrossEntropyGradOp::create(b, getLoc(), getLogits(),
                                          getLabels(), dy, getIgnoreIndex(),
                                          getReduction());
  return success();
}

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

// The selection (experts) has no gradient; the weights do, through the
// selected probabilities.
LogicalResult MoeGateOp::emitGradients(OpBuilder &b, Value dy,
                                       ArrayRef<bool> needed,
                                       SmallVectorImpl<Value> &grads) {
  if (needed[0])
    grads[0] = MoeGateGradOp::create(b, getLoc(), getLogits(), getExperts(), dy,
                                     getNormalize());
  return success();
}

LogicalResult MoeExpertsOp::emitGradients(OpBuilder &b, Value dy,
                                          ArrayRef<bool> needed,
                                          SmallVectorImpl<Value> &grads) {
  auto grad = MoeExpertsGradOp::create(b, getLoc(), getInput(), getExperts(),
                                       getWeights(), getGateUp(), getDown(), dy,
                                       /*projected=*/Value(), getMeshAxesAttr(),
                                       getGroupSizeAttr());
  // Operands: input, experts (none), weights, gate_up, down.
  grads[0] = needed[0] ? grad.getInputGrad() : Value();
  grads[2] = needed[2] ? grad.getWeightsGrad() : Value();
  grads[3] = needed[3] ? grad.getGateUpGrad() : Value();
  grads[4] = needed[4] ? grad.getDownGrad() : Value();
  return success();
}
