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

bool isSplatInteger(Value value, int64_t expected) {
  auto constant = value.getDefiningOp<ConstantOp>();
  auto splat = constant ? dyn_cast<SplatElementsAttr>(constant.getValue())
                        : SplatElementsAttr();
  return splat && splat.getElementType().isInteger() &&
         splat.getSplatValue<APInt>().getSExtValue() == expected;
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
        auto xType = cast<RankedTensorType>(x.getType());
        // vo.rms_norm's weight is one value per element of the last dim.
        if (!eps || x.getType() != root.getType() ||
            weightType.getDimSize(0) != xType.getShape().back() ||
            weightType.getElementType() != xType.getElementType())
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

/// True when `slice` keeps every dim whole except the last, which it cuts to
/// [begin, end) with stride 1.
bool slicesLastDim(SliceOp slice, int64_t begin, int64_t end) {
  ArrayRef<int64_t> shape =
      cast<RankedTensorType>(slice.getInput().getType()).getShape();
  int64_t last = shape.size() - 1;
  for (int64_t d = 0; d <= last; ++d) {
    int64_t start = d == last ? begin : 0, limit = d == last ? end : shape[d];
    if (slice.getStart()[d] != start || slice.getLimit()[d] != limit ||
        slice.getStride()[d] != 1)
      return false;
  }
  return true;
}

/// concat(-x[..., D/2:], x[..., :D/2]) on the last axis -> x.
Value matchRotateHalf(Value value) {
  auto concat = value.getDefiningOp<ConcatOp>();
  if (!concat || concat.getInputs().size() != 2 ||
      concat.getAxis() != lastAxis(value))
    return {};
  auto neg = concat.getInputs()[0].getDefiningOp<NegOp>();
  auto low = concat.getInputs()[1].getDefiningOp<SliceOp>();
  auto high = neg ? neg.getInput().getDefiningOp<SliceOp>() : SliceOp();
  if (!low || !high || low.getInput() != high.getInput())
    return {};
  Value x = low.getInput();
  int64_t dim = cast<RankedTensorType>(x.getType()).getShape().back();
  if (dim % 2 != 0 || !slicesLastDim(low, 0, dim / 2) ||
      !slicesLastDim(high, dim / 2, dim))
    return {};
  return x;
}

/// x * cos + rotate_half(x) * sin -> vo.rope(x, cos, sin).
struct RaiseRope : OpRewritePattern<AddOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AddOp root,
                                PatternRewriter &rewriter) const override {
    for (auto [plain, rotated] : {std::pair(root.getLhs(), root.getRhs()),
                                  std::pair(root.getRhs(), root.getLhs())}) {
      auto cosMul = plain.getDefiningOp<MulOp>();
      auto sinMul = rotated.getDefiningOp<MulOp>();
      if (!cosMul || !sinMul)
        continue;
      for (auto [rot, sin] : {std::pair(sinMul.getLhs(), sinMul.getRhs()),
                              std::pair(sinMul.getRhs(), sinMul.getLhs())}) {
        Value x = matchRotateHalf(rot);
        if (!x)
          continue;
        Value cos = cosMul.getLhs() == x   ? cosMul.getRhs()
                    : cosMul.getRhs() == x ? cosMul.getLhs()
                                           : Value();
        if (!cos || cos.getType() != sin.getType() ||
            x.getType() != root.getType())
          continue;
        rewriter.replaceOpWithNewOp<RopeOp>(root, x, cos, sin);
        return success();
      }
    }
    return rewriter.notifyMatchFailure(root, "not x*cos + rotate_half(x)*sin");
  }
};

/// Peels multiplications and divisions by splat constants that leave the
/// shape unchanged, folding them into `scale`.
Value peelScale(Value value, double &scale) {
  while (true) {
    if (auto mul = value.getDefiningOp<MulOp>()) {
      if (auto c = getSplatFloat(mul.getRhs());
          c && mul.getLhs().getType() == mul.getType()) {
        scale *= *c;
        value = mul.getLhs();
        continue;
      }
      if (auto c = getSplatFloat(mul.getLhs());
          c && mul.getRhs().getType() == mul.getType()) {
        scale *= *c;
        value = mul.getRhs();
        continue;
      }
    }
    if (auto div = value.getDefiningOp<DivOp>()) {
      if (auto c = getSplatFloat(div.getRhs());
          c && *c != 0 && div.getLhs().getType() == div.getType()) {
        scale /= *c;
        value = div.getLhs();
        continue;
      }
    }
    return value;
  }
}

/// Grouped-query expansion of kv heads [B, H, S, D] -> [B, H*r, S, D] as
/// exporters write repeat_kv: reshape to [B, H, 1, S, D], broadcast to
/// [B, H, r, S, D], reshape. Returns the unexpanded tensor, or `value`.
Value stripKvExpansion(Value value) {
  auto merge = value.getDefiningOp<ReshapeOp>();
  auto broadcast = merge ? merge.getInput().getDefiningOp<BroadcastToOp>()
                         : BroadcastToOp();
  auto split = broadcast ? broadcast.getInput().getDefiningOp<ReshapeOp>()
                         : ReshapeOp();
  if (!split)
    return value;
  Value base = split.getInput();
  ArrayRef<int64_t> b = cast<RankedTensorType>(base.getType()).getShape();
  if (b.size() != 4)
    return value;
  ArrayRef<int64_t> unsqueezed = split.getType().getShape();
  ArrayRef<int64_t> expanded = broadcast.getType().getShape();
  ArrayRef<int64_t> merged = merge.getType().getShape();
  SmallVector<int64_t> expectUnsqueezed = {b[0], b[1], 1, b[2], b[3]};
  if (!llvm::equal(unsqueezed, expectUnsqueezed) || expanded.size() != 5)
    return value;
  int64_t repeats = expanded[2];
  SmallVector<int64_t> expectExpanded = {b[0], b[1], repeats, b[2], b[3]};
  SmallVector<int64_t> expectMerged = {b[0], b[1] * repeats, b[2], b[3]};
  if (!llvm::equal(expanded, expectExpanded) ||
      !llvm::equal(merged, expectMerged))
    return value;
  return base;
}

/// A constant additive mask whose last two dims are [S, S] with 0 on and
/// below the diagonal and a value that zeroes the softmax above it.
bool isCausalMask(Value mask, int64_t seq) {
  auto constant = mask.getDefiningOp<ConstantOp>();
  auto values = constant ? dyn_cast<DenseElementsAttr>(constant.getValue())
                         : DenseElementsAttr();
  if (!values || !isa<FloatType>(values.getElementType()))
    return false;
  ArrayRef<int64_t> shape = values.getType().getShape();
  if (shape.size() < 2 || shape[shape.size() - 1] != seq ||
      shape[shape.size() - 2] != seq)
    return false;
  auto holds = [seq](int64_t flat, double x) {
    int64_t col = flat % seq, row = (flat / seq) % seq;
    return col <= row ? x == 0.0 : x <= -1e30;
  };
  if (values.isSplat())
    return false;  // one value cannot be 0 below the diagonal and -inf above
  if (values.getElementType().isF32()) {
    // Read the floats directly: a long sequence's mask has 1G elements, and
    // one APFloat each took minutes.
    ArrayRef<float> floats(reinterpret_cast<const float *>(values.getRawData().data()),
                           values.getNumElements());
    for (int64_t flat = 0; flat < static_cast<int64_t>(floats.size()); ++flat)
      if (!holds(flat, floats[flat]))
        return false;
    return true;
  }
  int64_t flat = 0;
  for (const APFloat &v : values.getValues<APFloat>())
    if (!holds(flat++, v.convertToDouble()))
      return false;
  return true;
}

/// softmax(q k^T * scale [+ causal mask]) v, with kv heads optionally
/// expanded for grouped-query attention -> vo.attention.
struct RaiseAttention : OpRewritePattern<MatmulOp> {
  using OpRewritePattern::OpRewritePattern;

  // Every layer adds the same mask constant; a long sequence's has 1G
  // elements, so each (uniqued) constant is checked once.
  bool isCausalMaskCached(Value mask, int64_t seq) const {
    auto constant = mask.getDefiningOp<ConstantOp>();
    if (!constant)
      return false;
    auto [it, inserted] = checkedMasks.try_emplace({constant.getValue(), seq}, false);
    if (inserted)
      it->second = isCausalMask(mask, seq);
    return it->second;
  }
  mutable llvm::DenseMap<std::pair<Attribute, int64_t>, bool> checkedMasks;

  LogicalResult matchAndRewrite(MatmulOp root,
                                PatternRewriter &rewriter) const override {
    if (root.getTransposeLhs() || root.getTransposeRhs())
      return rewriter.notifyMatchFailure(root, "transposed operands");
    Value probs = root.getLhs();
    // where(isnan(p), 0, p): exporters guard fully masked rows this way.
    if (auto select = probs.getDefiningOp<SelectOp>()) {
      auto isNan = select.getCond().getDefiningOp<IsNanOp>();
      if (isNan && isNan.getInput() == select.getOnFalse() &&
          isSplatFloat(select.getOnTrue(), 0.0))
        probs = select.getOnFalse();
    }
    auto softmax = probs.getDefiningOp<SoftmaxOp>();
    if (!softmax || softmax.getAxis() != lastAxis(probs))
      return rewriter.notifyMatchFailure(root, "lhs is not a softmax");

    Value scores = softmax.getInput();
    int64_t seq = cast<RankedTensorType>(scores.getType()).getShape().back();
    bool causal = false;
    if (auto add = scores.getDefiningOp<AddOp>()) {
      for (auto [rest, mask] : {std::pair(add.getLhs(), add.getRhs()),
                                std::pair(add.getRhs(), add.getLhs())}) {
        if (rest.getType() == add.getType() && isCausalMaskCached(mask, seq)) {
          causal = true;
          scores = rest;
          break;
        }
      }
      if (!causal)
        return rewriter.notifyMatchFailure(root, "mask is not causal");
    }
    double scale = 1.0;
    scores = peelScale(scores, scale);
    auto product = scores.getDefiningOp<MatmulOp>();
    if (!product || product.getTransposeLhs() || !product.getTransposeRhs())
      return rewriter.notifyMatchFailure(root, "scores are not q @ k^T");

    Value query = peelScale(product.getLhs(), scale);
    Value key = peelScale(stripKvExpansion(peelScale(product.getRhs(), scale)),
                          scale);
    Value value = stripKvExpansion(root.getRhs());
    auto q = cast<RankedTensorType>(query.getType());
    auto k = cast<RankedTensorType>(key.getType());
    auto v = cast<RankedTensorType>(value.getType());
    // vo.attention's shape rule, checked before creating it.
    if (q.getRank() != 4 || k.getRank() != 4 || v.getRank() != 4 ||
        k.getDimSize(1) != v.getDimSize(1) || k.getDimSize(1) == 0 ||
        q.getDimSize(1) % k.getDimSize(1) != 0 ||
        q.getDimSize(0) != k.getDimSize(0) || q.getDimSize(0) != v.getDimSize(0) ||
        k.getDimSize(2) != v.getDimSize(2) || q.getDimSize(3) != k.getDimSize(3) ||
        (causal && q.getDimSize(2) != k.getDimSize(2)))
      return rewriter.notifyMatchFailure(root, "not [B, H, S, D] heads");
    auto attention = AttentionOp::create(
        rewriter, root.getLoc(), query, key, value, /*cu_seqlens=*/Value(),
        rewriter.getF64FloatAttr(scale),
        causal ? rewriter.getUnitAttr() : UnitAttr());
    if (attention.getType() != root.getType()) {
      rewriter.eraseOp(attention);
      return rewriter.notifyMatchFailure(root, "result type differs");
    }
    rewriter.replaceOp(root, attention);
    return success();
  }
};

/// top_k(softmax(logits)) [/ sum] -> vo.moe_gate: a router's probabilities
/// of its top_k experts, renormalized when divided by their sum.
struct RaiseMoeGate : OpRewritePattern<TopKOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(TopKOp topK,
                                PatternRewriter &rewriter) const override {
    auto softmax = topK.getInput().getDefiningOp<SoftmaxOp>();
    auto logits = softmax ? cast<RankedTensorType>(softmax.getInput().getType())
                          : RankedTensorType();
    if (!softmax || logits.getRank() != 2 || softmax.getAxis() != 1)
      return rewriter.notifyMatchFailure(topK, "not top_k of a router softmax");
    // Renormalized: values / reduce_sum(values, last axis, keep_dims).
    DivOp normalized;
    Value values = topK.getValues();
    if (values.hasNUses(2)) {
      for (Operation *user : values.getUsers())
        if (auto div = dyn_cast<DivOp>(user); div && div.getLhs() == values)
          if (auto sum = div.getRhs().getDefiningOp<ReduceSumOp>();
              sum && sum.getInput() == values && sum.getKeepDims() &&
              sum.getAxes().size() == 1 && sum.getAxes()[0] == 1)
            normalized = div;
      if (!normalized)
        return rewriter.notifyMatchFailure(topK, "values used otherwise");
    }
    ReduceSumOp sum = normalized ? normalized.getRhs().getDefiningOp<ReduceSumOp>()
                                 : ReduceSumOp();
    if (sum && !sum->hasOneUse())
      return rewriter.notifyMatchFailure(topK, "the normalizer is used elsewhere");
    auto gate = MoeGateOp::create(rewriter, topK.getLoc(), softmax.getInput(),
                                  topK.getK(), static_cast<bool>(normalized));
    rewriter.replaceAllUsesWith(topK.getIndices(), gate.getExperts());
    if (normalized) {
      rewriter.replaceOp(normalized, gate.getWeights());
      rewriter.eraseOp(sum);
    } else {
      rewriter.replaceAllUsesWith(values, gate.getWeights());
    }
    rewriter.eraseOp(topK);
    return success();
  }
};

/// softmax(top_k(logits).values) -> vo.moe_gate normalize: top-k of the
/// logits then a softmax over the k (GPT-OSS style) picks the same experts as
/// softmax then top-k, and exp(l_i) / sum_k exp(l_j) = p_i / sum_k p_j.
struct RaiseTopKSoftmaxGate : OpRewritePattern<SoftmaxOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(SoftmaxOp softmax,
                                PatternRewriter &rewriter) const override {
    auto topK = softmax.getInput().getDefiningOp<TopKOp>();
    if (!topK || softmax.getInput() != topK.getValues() || !topK.getValues().hasOneUse())
      return rewriter.notifyMatchFailure(softmax, "not a softmax of top_k values alone");
    auto logits = cast<RankedTensorType>(topK.getInput().getType());
    if (logits.getRank() != 2 || softmax.getAxis() != 1)
      return rewriter.notifyMatchFailure(softmax, "not over a router's [T, E] logits");
    auto gate = MoeGateOp::create(rewriter, softmax.getLoc(), topK.getInput(), topK.getK(),
                                  /*normalize=*/true);
    rewriter.replaceAllUsesWith(topK.getIndices(), gate.getExperts());
    rewriter.replaceOp(softmax, gate.getWeights());
    rewriter.eraseOp(topK);
    return success();
  }
};

/// ids, or a clamp of ids to [0, experts - 1] (a no-op for valid ids).
Value stripExpertClamp(Value ids, int64_t experts) {
  for (int i = 0; i < 2; ++i) {
    if (auto max = ids.getDefiningOp<MaximumOp>(); max && isSplatInteger(max.getRhs(), 0))
      ids = max.getLhs();
    else if (auto min = ids.getDefiningOp<MinimumOp>();
             min && isSplatInteger(min.getRhs(), experts - 1))
      ids = min.getLhs();
  }
  return ids;
}

/// The routed SwiGLU experts as exporters write them (batched_mm): tokens
/// repeated k times, each (token, slot) gathering its expert's weights,
/// two batched GEMMs around SwiGLU, scaled by the routing weight and summed
/// over the k slots -> vo.moe_experts.
struct RaiseMoeExperts : OpRewritePattern<ReduceSumOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(ReduceSumOp root,
                                PatternRewriter &rewriter) const override {
    auto fail = [&](const char *why) {
      return rewriter.notifyMatchFailure(root, why);
    };
    // sum over k of reshape([T*k, H] -> [T, k, H]).
    auto perSlot = root.getInput().getDefiningOp<ReshapeOp>();
    if (!perSlot || root.getKeepDims() || root.getAxes().size() != 1 ||
        root.getAxes()[0] != 1 || perSlot.getType().getRank() != 3)
      return fail("not a sum over the k slots");
    ArrayRef<int64_t> tkh = perSlot.getType().getShape();
    int64_t tokens = tkh[0], k = tkh[1], hidden = tkh[2];
    auto scaled = perSlot.getInput().getDefiningOp<MulOp>();
    if (!scaled)
      return fail("slots are not scaled by routing weights");
    // weights [T, k] reshaped to [T*k, 1] times the expert outputs.
    Value weights, expertOut;
    for (auto [w, y] : {std::pair(scaled.getLhs(), scaled.getRhs()),
                        std::pair(scaled.getRhs(), scaled.getLhs())})
      if (auto col = w.getDefiningOp<ReshapeOp>();
          col && llvm::equal(col.getType().getShape(), ArrayRef<int64_t>{tokens * k, 1}) &&
          llvm::equal(cast<RankedTensorType>(col.getInput().getType()).getShape(),
                      ArrayRef<int64_t>{tokens, k})) {
        weights = col.getInput();
        expertOut = y;
      }
    if (!weights)
      return fail("no [T, k] routing weights");
    // down: reshape(matmul(take(down, ids), reshape(h -> [T*k, I, 1]))).
    auto downOut = expertOut.getDefiningOp<ReshapeOp>();
    auto downMm = downOut ? downOut.getInput().getDefiningOp<MatmulOp>() : MatmulOp();
    if (!downMm || downMm.getTransposeLhs() || downMm.getTransposeRhs())
      return fail("no down projection");
    auto downTake = downMm.getLhs().getDefiningOp<EmbeddingOp>();
    auto hCol = downMm.getRhs().getDefiningOp<ReshapeOp>();
    auto swiglu = hCol ? hCol.getInput().getDefiningOp<SwigluOp>() : SwigluOp();
    if (!downTake || !swiglu)
      return fail("no SwiGLU feeding the down projection");
    // gate/up: slices of reshape(matmul(take(gate_up, ids), reshape(x rep))).
    auto gate = swiglu.getGate().getDefiningOp<SliceOp>();
    auto up = swiglu.getUp().getDefiningOp<SliceOp>();
    if (!gate || !up || gate.getInput() != up.getInput())
      return fail("gate and up are not halves of one projection");
    int64_t inter = cast<RankedTensorType>(swiglu.getType()).getDimSize(1);
    if (gate.getStart()[1] != 0 || gate.getLimit()[1] != inter ||
        up.getStart()[1] != inter || up.getLimit()[1] != 2 * inter)
      return fail("gate is not the first half, up the second");
    auto guOut = gate.getInput().getDefiningOp<ReshapeOp>();
    auto guMm = guOut ? guOut.getInput().getDefiningOp<MatmulOp>() : MatmulOp();
    if (!guMm || guMm.getTransposeLhs() || guMm.getTransposeRhs())
      return fail("no gate/up projection");
    auto guTake = guMm.getLhs().getDefiningOp<EmbeddingOp>();
    if (!guTake)
      return fail("gate/up weights are not gathered by expert");
    // The tokens, repeated k times: reshape(broadcast(reshape(x -> [T,1,H]))).
    auto xCol = guMm.getRhs().getDefiningOp<ReshapeOp>();
    auto repeated = xCol ? xCol.getInput().getDefiningOp<BroadcastToOp>()
                         : BroadcastToOp();
    auto unsqueezed = repeated ? repeated.getInput().getDefiningOp<ReshapeOp>()
                               : ReshapeOp();
    if (!unsqueezed ||
        !llvm::equal(unsqueezed.getType().getShape(), ArrayRef<int64_t>{tokens, 1, hidden}) ||
        !llvm::equal(repeated.getType().getShape(), ArrayRef<int64_t>{tokens, k, hidden}))
      return fail("the tokens are not repeated k times");
    // One expert id per (token, slot), the same for both gathers.
    auto gateUp = cast<RankedTensorType>(guTake.getTable().getType());
    int64_t numExperts = gateUp.getDimSize(0);
    Value ids = stripExpertClamp(guTake.getIds(), numExperts);
    if (stripExpertClamp(downTake.getIds(), numExperts) != ids)
      return fail("the two gathers use different expert ids");
    auto flat = ids.getDefiningOp<ReshapeOp>();
    if (!flat || cast<RankedTensorType>(flat.getInput().getType()).getShape() !=
                     cast<RankedTensorType>(weights.getType()).getShape())
      return fail("expert ids are not the router's [T, k]");
    // vo.moe_experts' shape rule, checked before creating it.
    auto down = cast<RankedTensorType>(downTake.getTable().getType());
    if (gateUp.getRank() != 3 || down.getRank() != 3 ||
        down.getDimSize(0) != numExperts || gateUp.getDimSize(1) != 2 * inter ||
        gateUp.getDimSize(2) != hidden || down.getDimSize(1) != hidden ||
        down.getDimSize(2) != inter ||
        cast<RankedTensorType>(unsqueezed.getInput().getType()).getNumElements() !=
            tokens * hidden)
      return fail("expert weights do not match the tokens");
    Location loc = root.getLoc();
    Value x = ReshapeOp::create(rewriter, loc, unsqueezed.getInput(),
                                ArrayRef<int64_t>{tokens, hidden});
    auto experts = MoeExpertsOp::create(rewriter, loc, x, flat.getInput(), weights,
                                        guTake.getTable(), downTake.getTable(),
                                        /*mesh_axes=*/nullptr, /*group_size=*/nullptr);
    if (experts.getResult().getType() != root.getType()) {
      rewriter.eraseOp(experts);
      return fail("shapes do not match");
    }
    rewriter.replaceOp(root, experts.getResult());
    return success();
  }
};

struct VoRaisePass : veomni::impl::VoRaiseBase<VoRaisePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RaiseRmsNorm, RaiseSilu, RaiseSwiglu, RaiseRope,
                 RaiseAttention, RaiseMoeGate, RaiseTopKSoftmaxGate, RaiseMoeExperts>(
      &getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
