//===- VoRaise.cpp - raise exporter patterns into fused vo ops ------------===//
//
// Exporters decompose RMSNorm, SiLU, RoPE, attention and the loss into
// primitives. Each pattern below matches one such decomposition exactly,
// including the values of the constants it absorbs, and replaces it with the
// fused op; anything that deviates is left alone.
//
//===----------------------------------------------------------------------===//

#include "dialects/vo/VoOps.h"
#include "passes/Passes.h"

#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace veomni {
#define GEN_PASS_DEF_VORAISE
#include "passes/Passes.h.inc"
} // namespace veomni

using namespace mlir;
using namespace veomni::vo;

namespace {

/// The value of a splat floating-point constant, looking through
/// broadcast_to and reshape.
std::optional<double> getSplatFloat(Value value) {
  while (Operation *op = value.getDefiningOp()) {
    if (isa<BroadcastToOp, ReshapeOp>(op)) {
      value = op->getOperand(0);
      continue;
    }
    auto constant = dyn_cast<ConstantOp>(op);
    if (!constant)
      return std::nullopt;
    auto splat = dyn_cast<SplatElementsAttr>(constant.getValue());
    if (!splat || !isa<FloatType>(splat.getElementType()))
      return std::nullopt;
    return splat.getSplatValue<APFloat>().convertToDouble();
  }
  return std::nullopt;
}

bool isSplatFloat(Value value, double expected) {
  std::optional<double> actual = getSplatFloat(value);
  return actual && *actual == expected;
}

/// Matches `op` as a commutative binary op with one operand satisfying
/// `pred`; returns that operand first.
template <typename OpTy, typename Pred>
std::optional<std::pair<Value, Value>> matchEitherOperand(Value value,
                                                          Pred pred) {
  auto op = value.getDefiningOp<OpTy>();
  if (!op)
    return std::nullopt;
  if (pred(op.getLhs()))
    return std::make_pair(op.getLhs(), op.getRhs());
  if (pred(op.getRhs()))
    return std::make_pair(op.getRhs(), op.getLhs());
  return std::nullopt;
}

int64_t lastAxis(Value value) {
  return cast<RankedTensorType>(value.getType()).getRank() - 1;
}

/// x * x or pow(x, 2) -> x.
Value matchSquare(Value value) {
  if (auto pow = value.getDefiningOp<PowOp>())
    return isSplatFloat(pow.getRhs(), 2.0) ? pow.getLhs() : Value();
  if (auto mul = value.getDefiningOp<MulOp>())
    return mul.getLhs() == mul.getRhs() ? mul.getLhs() : Value();
  return {};
}

/// rsqrt(mean(x^2, last axis) + eps), or 1/sqrt(...), for the given x.
/// Returns eps.
std::optional<double> matchInverseRms(Value value, Value x) {
  Value sum;
  if (auto rsqrt = value.getDefiningOp<RsqrtOp>()) {
    sum = rsqrt.getInput();
  } else if (auto reciprocal = value.getDefiningOp<ReciprocalOp>()) {
    auto sqrt = reciprocal.getInput().getDefiningOp<SqrtOp>();
    if (!sqrt)
      return std::nullopt;
    sum = sqrt.getInput();
  } else if (auto div = value.getDefiningOp<DivOp>()) {
    auto sqrt = div.getRhs().getDefiningOp<SqrtOp>();
    if (!isSplatFloat(div.getLhs(), 1.0) || !sqrt)
      return std::nullopt;
    sum = sqrt.getInput();
  } else {
    return std::nullopt;
  }
  std::optional<double> eps;
  auto meanAndEps = matchEitherOperand<AddOp>(
      sum, [](Value v) { return v.getDefiningOp<ReduceMeanOp>() != nullptr; });
  if (!meanAndEps || !(eps = getSplatFloat(meanAndEps->second)))
    return std::nullopt;
  auto mean = meanAndEps->first.getDefiningOp<ReduceMeanOp>();
  if (!mean.getKeepDims() || mean.getAxes().size() != 1 ||
      mean.getAxes()[0] != lastAxis(x) || matchSquare(mean.getInput()) != x)
    return std::nullopt;
  return eps;
}

/// weight * (x * rsqrt(mean(x^2) + eps)) -> vo.rms_norm(x, weight).
struct RaiseRmsNorm : OpRewritePattern<MulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MulOp root,
                                PatternRewriter &rewriter) const override {
    for (auto [weight, normalized] :
         {std::pair(root.getLhs(), root.getRhs()),
          std::pair(root.getRhs(), root.getLhs())}) {
      auto weightType = cast<RankedTensorType>(weight.getType());
      auto mul = normalized.getDefiningOp<MulOp>();
      if (weightType.getRank() != 1 || !mul)
        continue;
      for (auto [x, inverse] : {std::pair(mul.getLhs(), mul.getRhs()),
                                std::pair(mul.getRhs(), mul.getLhs())}) {
        std::optional<double> eps = matchInverseRms(inverse, x);
        if (!eps || x.getType() != root.getType())
          continue;
        rewriter.replaceOpWithNewOp<RmsNormOp>(root, x, weight,
                                               rewriter.getF64FloatAttr(*eps));
        return success();
      }
    }
    return rewriter.notifyMatchFailure(root, "not weight * x * rsqrt(...)");
  }
};

/// x * sigmoid(x) -> vo.silu(x).
struct RaiseSilu : OpRewritePattern<MulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MulOp root,
                                PatternRewriter &rewriter) const override {
    for (auto [x, gate] : {std::pair(root.getLhs(), root.getRhs()),
                           std::pair(root.getRhs(), root.getLhs())}) {
      auto sigmoid = gate.getDefiningOp<SigmoidOp>();
      if (sigmoid && sigmoid.getInput() == x) {
        rewriter.replaceOpWithNewOp<SiluOp>(root, x);
        return success();
      }
    }
    return rewriter.notifyMatchFailure(root, "not x * sigmoid(x)");
  }
};

/// silu(gate) * up -> vo.swiglu(gate, up), when the shapes agree.
struct RaiseSwiglu : OpRewritePattern<MulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MulOp root,
                                PatternRewriter &rewriter) const override {
    for (auto [activated, up] : {std::pair(root.getLhs(), root.getRhs()),
                                 std::pair(root.getRhs(), root.getLhs())}) {
      auto silu = activated.getDefiningOp<SiluOp>();
      if (silu && silu.getType() == up.getType() &&
          up.getType() == root.getType()) {
        rewriter.replaceOpWithNewOp<SwigluOp>(root, silu.getInput(), up);
        return success();
      }
    }
    return rewriter.notifyMatchFailure(root, "not silu(gate) * up");
  }
};

struct VoRaisePass : veomni::impl::VoRaiseBase<VoRaisePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RaiseRmsNorm, RaiseSilu, RaiseSwiglu>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
