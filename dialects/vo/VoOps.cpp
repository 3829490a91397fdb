//===- VoOps.cpp - vo operations: shape rules, folders, syntax ------------===//
//
// Each op's shape rule is its inferReturnTypes. The generic verifier checks
// the declared result type against it, so a rule's diagnostic is what the
// user sees; it is worded like emitOpError ("'vo.x' op ...").
//
//===----------------------------------------------------------------------===//

#include "dialects/vo/VoOps.h"

#include "mlir/Dialect/Traits.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace veomni::vo;

namespace {

std::string formatShape(ArrayRef<int64_t> shape) {
  std::string text = "[";
  llvm::raw_string_ostream os(text);
  llvm::interleaveComma(shape, os);
  os << "]";
  return text;
}

template <typename... Args>
LogicalResult opError(std::optional<Location> loc, StringRef opName,
                      Args &&...args) {
  return emitOptionalError(loc, "'", opName, "' op ",
                           std::forward<Args>(args)...);
}

RankedTensorType tensorType(Value value) {
  return cast<RankedTensorType>(value.getType());
}

LogicalResult expectSameElementType(std::optional<Location> loc,
                                    StringRef opName, StringRef what,
                                    Type lhs, Type rhs) {
  if (lhs == rhs)
    return success();
  return opError(loc, opName, "expects ", what, " of one element type, got ",
                 lhs, " and ", rhs);
}

FailureOr<SmallVector<int64_t>> broadcastShapes(std::optional<Location> loc,
                                                StringRef opName,
                                                ArrayRef<int64_t> lhs,
                                                ArrayRef<int64_t> rhs) {
  SmallVector<int64_t> result;
  if (!OpTrait::util::getBroadcastedShape(lhs, rhs, result)) {
    (void)opError(loc, opName, "cannot broadcast shapes ", formatShape(lhs),
                  " and ", formatShape(rhs));
    return failure();
  }
  return result;
}

LogicalResult checkAxis(std::optional<Location> loc, StringRef opName,
                        int64_t axis, int64_t rank) {
  if (axis >= 0 && axis < rank)
    return success();
  return opError(loc, opName, "expects axis in [0, ", rank, "), got ", axis);
}

// Rule shared by every numpy-broadcasting binary op.
LogicalResult inferBroadcastBinary(std::optional<Location> loc,
                                   StringRef opName, Value lhs, Value rhs,
                                   Type resultElement,
                                   SmallVectorImpl<Type> &types) {
  RankedTensorType lhsType = tensorType(lhs), rhsType = tensorType(rhs);
  if (failed(expectSameElementType(loc, opName, "operands",
                                   lhsType.getElementType(),
                                   rhsType.getElementType())))
    return failure();
  auto shape =
      broadcastShapes(loc, opName, lhsType.getShape(), rhsType.getShape());
  if (failed(shape))
    return failure();
  types.push_back(RankedTensorType::get(
      *shape, resultElement ? resultElement : lhsType.getElementType()));
  return success();
}

LogicalResult inferSameType(Value input, SmallVectorImpl<Type> &types) {
  types.push_back(input.getType());
  return success();
}

LogicalResult inferReduction(std::optional<Location> loc, StringRef opName,
                             Value input, ArrayRef<int64_t> axes,
                             bool keepDims, SmallVectorImpl<Type> &types) {
  RankedTensorType type = tensorType(input);
  int64_t rank = type.getRank();
  SmallVector<bool> reduced(rank, false);
  for (int64_t axis : axes) {
    if (failed(checkAxis(loc, opName, axis, rank)))
      return failure();
    if (reduced[axis])
      return opError(loc, opName, "reduces axis ", axis, " twice");
    reduced[axis] = true;
  }
  SmallVector<int64_t> shape;
  for (int64_t dim = 0; dim < rank; ++dim) {
    if (!reduced[dim])
      shape.push_back(type.getDimSize(dim));
    else if (keepDims)
      shape.push_back(1);
  }
  types.push_back(RankedTensorType::get(shape, type.getElementType()));
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// ParameterOp
//===----------------------------------------------------------------------===//

void ParameterOp::print(OpAsmPrinter &p) {
  p << ' ';
  p.printSymbolName(getSymName());
  p << " : " << getType();
  if (auto value = getInitialValueAttr()) {
    p << " = ";
    p.printAttributeWithoutType(value);
  }
  if (auto init = getInitAttr())
    p << " init " << init;
  p.printOptionalAttrDict((*this)->getAttrs(),
                          {getSymNameAttrName(), getTypeAttrName(),
                           getInitialValueAttrName(), getInitAttrName()});
}

ParseResult ParameterOp::parse(OpAsmParser &parser, OperationState &result) {
  StringAttr name;
  Type type;
  if (parser.parseSymbolName(name) || parser.parseColonType(type))
    return failure();
  result.getOrAddProperties<Properties>().sym_name = name;
  result.getOrAddProperties<Properties>().type = TypeAttr::get(type);
  if (succeeded(parser.parseOptionalEqual())) {
    Attribute value;
    if (parser.parseAttribute(value, type))
      return failure();
    auto elements = dyn_cast<ElementsAttr>(value);
    if (!elements)
      return parser.emitError(parser.getCurrentLocation(),
                              "expected elements attribute as initial value");
    result.getOrAddProperties<Properties>().initial_value = elements;
  }
  if (succeeded(parser.parseOptionalKeyword("init"))) {
    InitRuleAttr init;
    if (parser.parseCustomAttributeWithFallback(init))
      return failure();
    result.getOrAddProperties<Properties>().init = init;
  }
  return parser.parseOptionalAttrDict(result.attributes);
}

LogicalResult ParameterOp::verify() {
  bool hasValue = static_cast<bool>(getInitialValueAttr());
  bool hasRule = static_cast<bool>(getInitAttr());
  if (hasValue == hasRule)
    return emitOpError("expects exactly one of an initial value or an init "
                       "rule, got ")
           << (hasValue ? "both" : "neither");
  if (hasValue && getInitialValueAttr().getType() != getType())
    return emitOpError("initial value has type ")
           << getInitialValueAttr().getType() << ", but the parameter is "
           << getType();
  return success();
}

//===----------------------------------------------------------------------===//
// ParamOp
//===----------------------------------------------------------------------===//

/// The type a read of the parameter `name` has (this rank's block of
/// experts for an expert-parallel one), with `element` when given.
static LogicalResult verifyParameterRead(Operation *op, SymbolTableCollection &symbols,
                                         FlatSymbolRefAttr name, Type type,
                                         Type element = {}) {
  auto parameter = symbols.lookupNearestSymbolFrom<ParameterOp>(op, name);
  if (!parameter)
    return op->emitOpError("refers to unknown parameter ") << name;
  RankedTensorType expected = parameter.getTensorType();
  if (auto experts = parameter->getAttrOfType<DictionaryAttr>(kExpertShardAttr)) {
    auto group = experts.getAs<IntegerAttr>("group_size");
    if (!group || group.getInt() < 1 || expected.getRank() < 1 ||
        expected.getDimSize(0) % group.getInt() != 0)
      return op->emitOpError("parameter ") << name << " has a malformed " << kExpertShardAttr;
    SmallVector<int64_t> shape(expected.getShape());
    shape[0] /= group.getInt();
    expected = expected.clone(shape);
  }
  if (element)
    expected = expected.clone(element);
  if (expected != type)
    return op->emitOpError("has type ")
           << type << ", but parameter " << name << " reads as " << expected;
  return success();
}

LogicalResult ParamOp::verifySymbolUses(SymbolTableCollection &symbols) {
  return verifyParameterRead(*this, symbols, getNameAttr(), getType());
}

LogicalResult ParamBf16Op::verifySymbolUses(SymbolTableCollection &symbols) {
  Type bf16 = BFloat16Type::get(getContext());
  auto parameter = symbols.lookupNearestSymbolFrom<ParameterOp>(*this, getNameAttr());
  // A sharded parameter's copy is of this rank's shard, as vo.param_shard.
  if (auto shard = parameter ? parameter->getAttrOfType<DictionaryAttr>(kShardAttr)
                             : DictionaryAttr()) {
    auto elements = shard.getAs<IntegerAttr>("elements");
    auto expected = RankedTensorType::get({elements ? elements.getInt() : 0}, bf16);
    if (!elements || getType() != expected)
      return emitOpError("has type ") << getType() << ", but the shard of parameter "
                                      << getNameAttr() << " reads as " << expected;
    return success();
  }
  return verifyParameterRead(*this, symbols, getNameAttr(), getType(), bf16);
}

//===----------------------------------------------------------------------===//
// ParamShardOp
//===----------------------------------------------------------------------===//

LogicalResult ParamShardOp::verifySymbolUses(SymbolTableCollection &symbols) {
  auto parameter =
      symbols.lookupNearestSymbolFrom<ParameterOp>(*this, getNameAttr());
  if (!parameter)
    return emitOpError("refers to unknown parameter ") << getNameAttr();
  auto shard = parameter->getAttrOfType<DictionaryAttr>(kShardAttr);
  auto elements = shard ? shard.getAs<IntegerAttr>("elements") : IntegerAttr();
  if (!elements)
    return emitOpError("parameter ")
           << getNameAttr() << " is not sharded (no " << kShardAttr
           << " attribute)";
  auto type = cast<RankedTensorType>(getType());
  if (type.getRank() != 1 || type.getDimSize(0) != elements.getInt() ||
      type.getElementType() != parameter.getTensorType().getElementType())
    return emitOpError("expects a 1-D shard of ")
           << elements.getInt() << " "
           << parameter.getTensorType().getElementType() << ", got "
           << getType();
  return success();
}

//===----------------------------------------------------------------------===//
// ConstantOp
//===----------------------------------------------------------------------===//

LogicalResult ConstantOp::inferReturnTypes(MLIRContext *,
                                           std::optional<Location> loc,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &types) {
  auto type = dyn_cast<RankedTensorType>(adaptor.getValue().getType());
  if (!type)
    return opError(loc, getOperationName(), "expects a ranked tensor value, got ",
                   adaptor.getValue().getType());
  types.push_back(type);
  return success();
}

OpFoldResult ConstantOp::fold(FoldAdaptor) { return getValueAttr(); }

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

#define VO_BROADCAST_BINARY_RULE(OP)                                           \
  LogicalResult OP::inferReturnTypes(MLIRContext *,                            \
                                     std::optional<Location> loc,              \
                                     Adaptor adaptor,                          \
                                     SmallVectorImpl<Type> &types) {           \
    return inferBroadcastBinary(loc, getOperationName(), adaptor.getLhs(),     \
                                adaptor.getRhs(), Type(), types);              \
  }
VO_BROADCAST_BINARY_RULE(AddOp)
VO_BROADCAST_BINARY_RULE(SubOp)
VO_BROADCAST_BINARY_RULE(MulOp)
VO_BROADCAST_BINARY_RULE(DivOp)
VO_BROADCAST_BINARY_RULE(PowOp)
VO_BROADCAST_BINARY_RULE(MaximumOp)
VO_BROADCAST_BINARY_RULE(MinimumOp)
#undef VO_BROADCAST_BINARY_RULE

/// `operand` when the other operand is a splat of `identity` that does not
/// broadcast it.
static OpFoldResult foldIdentityOperand(Operation *op, Attribute lhsValue,
                                        Attribute rhsValue, double identity) {
  Value lhs = op->getOperand(0), rhs = op->getOperand(1);
  Type result = op->getResult(0).getType();
  auto isIdentity = [&](Attribute value) {
    auto splat = dyn_cast_or_null<SplatElementsAttr>(value);
    if (!splat)
      return false;
    if (isa<FloatType>(splat.getElementType()))
      return splat.getSplatValue<APFloat>().convertToDouble() == identity;
    return splat.getSplatValue<APInt>().getSExtValue() ==
           static_cast<int64_t>(identity);
  };
  if (isIdentity(rhsValue) && lhs.getType() == result)
    return lhs;
  if (isIdentity(lhsValue) && rhs.getType() == result)
    return rhs;
  return {};
}

OpFoldResult AddOp::fold(FoldAdaptor adaptor) {
  return foldIdentityOperand(*this, adaptor.getLhs(), adaptor.getRhs(), 0.0);
}

OpFoldResult MulOp::fold(FoldAdaptor adaptor) {
  return foldIdentityOperand(*this, adaptor.getLhs(), adaptor.getRhs(), 1.0);
}

LogicalResult CmpOp::inferReturnTypes(MLIRContext *context,
                                      std::optional<Location> loc,
                                      Adaptor adaptor,
                                      SmallVectorImpl<Type> &types) {
  return inferBroadcastBinary(loc, getOperationName(), adaptor.getLhs(),
                              adaptor.getRhs(), IntegerType::get(context, 1),
                              types);
}

LogicalResult SelectOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  StringRef name = getOperationName();
  RankedTensorType onTrue = tensorType(adaptor.getOnTrue());
  RankedTensorType onFalse = tensorType(adaptor.getOnFalse());
  if (failed(expectSameElementType(loc, name, "both branches",
                                   onTrue.getElementType(),
                                   onFalse.getElementType())))
    return failure();
  auto shape =
      broadcastShapes(loc, name, onTrue.getShape(), onFalse.getShape());
  if (failed(shape))
    return failure();
  shape = broadcastShapes(loc, name, tensorType(adaptor.getCond()).getShape(),
                          *shape);
  if (failed(shape))
    return failure();
  types.push_back(RankedTensorType::get(*shape, onTrue.getElementType()));
  return success();
}

#define VO_SAME_TYPE_RULE(OP)                                                  \
  LogicalResult OP::inferReturnTypes(MLIRContext *, std::optional<Location>,   \
                                     Adaptor adaptor,                          \
                                     SmallVectorImpl<Type> &types) {           \
    return inferSameType(adaptor.getInput(), types);                           \
  }
VO_SAME_TYPE_RULE(NegOp)
VO_SAME_TYPE_RULE(ExpOp)
VO_SAME_TYPE_RULE(LogOp)
VO_SAME_TYPE_RULE(SqrtOp)
VO_SAME_TYPE_RULE(RsqrtOp)
VO_SAME_TYPE_RULE(ReciprocalOp)
VO_SAME_TYPE_RULE(TanhOp)
VO_SAME_TYPE_RULE(ErfOp)
VO_SAME_TYPE_RULE(CosOp)
VO_SAME_TYPE_RULE(SinOp)
VO_SAME_TYPE_RULE(SigmoidOp)
VO_SAME_TYPE_RULE(SiluOp)
VO_SAME_TYPE_RULE(GeluOp)
#undef VO_SAME_TYPE_RULE

LogicalResult IsNanOp::inferReturnTypes(MLIRContext *context,
                                        std::optional<Location>,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &types) {
  types.push_back(tensorType(adaptor.getInput())
                      .clone(IntegerType::get(context, 1)));
  return success();
}

LogicalResult CastOp::inferReturnTypes(MLIRContext *,
                                       std::optional<Location> loc,
                                       Adaptor adaptor,
                                       SmallVectorImpl<Type> &types) {
  Type element = adaptor.getElementType();
  bool supported = element.isF32() || element.isBF16() || element.isF16() ||
                   element.isInteger(64) || element.isInteger(32) ||
                   element.isInteger(1);
  if (!supported)
    return opError(loc, getOperationName(),
                   "expects element type f32, bf16, f16, i64, i32 or i1, got ",
                   element);
  types.push_back(tensorType(adaptor.getInput()).clone(element));
  return success();
}

namespace {
/// cast(move(x)) -> move(cast(x)) for a narrowing float cast of a reshape,
/// transpose, slice or all_gather that only the cast reads: the movement
/// then carries fewer bytes, and rounding commutes with moving.
struct HoistNarrowingCast : OpRewritePattern<CastOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(CastOp op,
                                PatternRewriter &rewriter) const override {
    Operation *move = op.getInput().getDefiningOp();
    if (!move || !isa<ReshapeOp, TransposeOp, SliceOp, AllGatherOp>(move) ||
        !move->getResult(0).hasOneUse())
      return rewriter.notifyMatchFailure(op, "not the only reader of a data movement");
    // A slice that drops most of its input (a rank's window) is cheaper to
    // round after: only FSDP's unpadding-like slices move.
    if (isa<SliceOp>(move) &&
        cast<RankedTensorType>(move->getOperand(0).getType()).getNumElements() >
            2 * cast<RankedTensorType>(move->getResult(0).getType()).getNumElements())
      return rewriter.notifyMatchFailure(op, "the slice keeps less than half its input");
    auto from = dyn_cast<FloatType>(op.getInput().getType().getElementType());
    auto to = dyn_cast<FloatType>(op.getElementType());
    if (!from || !to || to.getWidth() >= from.getWidth())
      return rewriter.notifyMatchFailure(op, "not a narrowing float cast");
    Value input = move->getOperand(0);
    rewriter.setInsertionPoint(move);
    Value narrow = CastOp::create(rewriter, op.getLoc(), input, op.getElementTypeAttr());
    Operation *moved = rewriter.clone(*move);
    moved->setOperand(0, narrow);
    auto type = cast<RankedTensorType>(move->getResult(0).getType());
    moved->getResult(0).setType(type.clone(to));
    rewriter.replaceOp(op, moved->getResults());
    rewriter.eraseOp(move);
    return success();
  }
};
} // namespace

void CastOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                         MLIRContext *context) {
  results.add<HoistNarrowingCast>(context);
}

OpFoldResult CastOp::fold(FoldAdaptor) {
  if (getInput().getType() == getType())
    return getInput();
  return {};
}

//===----------------------------------------------------------------------===//
// Contractions and reductions
//===----------------------------------------------------------------------===//

LogicalResult MatmulOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  StringRef name = getOperationName();
  RankedTensorType lhs = tensorType(adaptor.getLhs());
  RankedTensorType rhs = tensorType(adaptor.getRhs());
  if (lhs.getRank() < 2 || rhs.getRank() < 2)
    return opError(loc, name, "expects operands of rank >= 2, got ",
                   lhs.getRank(), " and ", rhs.getRank());
  if (failed(expectSameElementType(loc, name, "operands",
                                   lhs.getElementType(),
                                   rhs.getElementType())))
    return failure();
  ArrayRef<int64_t> l = lhs.getShape(), r = rhs.getShape();
  int64_t lr = l.size(), rr = r.size();
  int64_t m = adaptor.getTransposeLhs() ? l[lr - 1] : l[lr - 2];
  int64_t lhsK = adaptor.getTransposeLhs() ? l[lr - 2] : l[lr - 1];
  int64_t rhsK = adaptor.getTransposeRhs() ? r[rr - 1] : r[rr - 2];
  int64_t n = adaptor.getTransposeRhs() ? r[rr - 2] : r[rr - 1];
  if (lhsK != rhsK)
    return opError(loc, name, "expects contracting dims to match, got ", lhsK,
                   " (lhs ", formatShape(l), ") and ", rhsK, " (rhs ",
                   formatShape(r), ")");
  auto batch =
      broadcastShapes(loc, name, l.drop_back(2), r.drop_back(2));
  if (failed(batch))
    return failure();
  batch->append({m, n});
  Type element = lhs.getElementType();
  if (adaptor.getF32Result()) {
    if (!element.isBF16())
      return opError(loc, name, "with f32_result expects bf16 operands, got ", element);
    element = Float32Type::get(element.getContext());
  }
  types.push_back(RankedTensorType::get(*batch, element));
  return success();
}

namespace {
/// matmul(transpose(x) swapping the last two dims, ...) -> matmul with the
/// operand's transpose flag toggled.
struct FoldTransposeIntoMatmul : OpRewritePattern<MatmulOp> {
  using OpRewritePattern::OpRewritePattern;

  static bool swapsLastTwoDims(TransposeOp transpose) {
    ArrayRef<int64_t> perm = transpose.getPermutation();
    int64_t rank = perm.size();
    for (int64_t i = 0; i < rank - 2; ++i)
      if (perm[i] != i)
        return false;
    return perm[rank - 2] == rank - 1 && perm[rank - 1] == rank - 2;
  }

  LogicalResult matchAndRewrite(MatmulOp op,
                                PatternRewriter &rewriter) const override {
    auto lhs = op.getLhs().getDefiningOp<TransposeOp>();
    auto rhs = op.getRhs().getDefiningOp<TransposeOp>();
    bool foldLhs = lhs && swapsLastTwoDims(lhs);
    bool foldRhs = rhs && swapsLastTwoDims(rhs);
    if (!foldLhs && !foldRhs)
      return rewriter.notifyMatchFailure(op, "no transpose of the last dims");
    rewriter.modifyOpInPlace(op, [&] {
      if (foldLhs) {
        op.getLhsMutable().assign(lhs.getInput());
        op.setTransposeLhs(!op.getTransposeLhs());
      }
      if (foldRhs) {
        op.getRhsMutable().assign(rhs.getInput());
        op.setTransposeRhs(!op.getTransposeRhs());
      }
    });
    return success();
  }
};
} // namespace

void MatmulOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                           MLIRContext *context) {
  results.add<FoldTransposeIntoMatmul>(context);
}

#define VO_REDUCE_RULE(OP)                                                     \
  LogicalResult OP::inferReturnTypes(MLIRContext *,                            \
                                     std::optional<Location> loc,              \
                                     Adaptor adaptor,                          \
                                     SmallVectorImpl<Type> &types) {           \
    return inferReduction(loc, getOperationName(), adaptor.getInput(),         \
                          adaptor.getAxes(), adaptor.getKeepDims(), types);    \
  }
VO_REDUCE_RULE(ReduceSumOp)
VO_REDUCE_RULE(ReduceSumSquaresOp)
VO_REDUCE_RULE(ReduceMeanOp)
VO_REDUCE_RULE(ReduceMaxOp)
#undef VO_REDUCE_RULE

#define VO_AXIS_SAME_TYPE_RULE(OP)                                             \
  LogicalResult OP::inferReturnTypes(MLIRContext *,                            \
                                     std::optional<Location> loc,              \
                                     Adaptor adaptor,                          \
                                     SmallVectorImpl<Type> &types) {           \
    if (failed(checkAxis(loc, getOperationName(), adaptor.getAxis(),           \
                         tensorType(adaptor.getInput()).getRank())))           \
      return failure();                                                        \
    return inferSameType(adaptor.getInput(), types);                           \
  }
VO_AXIS_SAME_TYPE_RULE(SoftmaxOp)
VO_AXIS_SAME_TYPE_RULE(LogSoftmaxOp)
#undef VO_AXIS_SAME_TYPE_RULE

//===----------------------------------------------------------------------===//
// Shape manipulation
//===----------------------------------------------------------------------===//

LogicalResult ReshapeOp::inferReturnTypes(MLIRContext *,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &types) {
  RankedTensorType input = tensorType(adaptor.getInput());
  ArrayRef<int64_t> shape = adaptor.getShape();
  if (llvm::any_of(shape, [](int64_t d) { return d < 0; }))
    return opError(loc, getOperationName(),
                   "expects non-negative target dims, got ",
                   formatShape(shape));
  int64_t count = 1;
  for (int64_t d : shape)
    count *= d;
  if (count != input.getNumElements())
    return opError(loc, getOperationName(), "cannot reshape ",
                   formatShape(input.getShape()), " (",
                   input.getNumElements(), " elements) to ",
                   formatShape(shape), " (", count, " elements)");
  types.push_back(input.clone(shape));
  return success();
}

OpFoldResult ReshapeOp::fold(FoldAdaptor adaptor) {
  if (getInput().getType() == getType())
    return getInput();
  if (auto producer = getInput().getDefiningOp<ReshapeOp>()) {
    getInputMutable().assign(producer.getInput());
    return getResult();
  }
  if (auto splat = dyn_cast_or_null<SplatElementsAttr>(adaptor.getInput()))
    return splat.reshape(getType());
  return {};
}

LogicalResult TransposeOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  RankedTensorType input = tensorType(adaptor.getInput());
  ArrayRef<int64_t> perm = adaptor.getPermutation();
  int64_t rank = input.getRank();
  SmallVector<bool> seen(rank, false);
  bool valid = static_cast<int64_t>(perm.size()) == rank;
  for (int64_t p : perm) {
    if (!valid || p < 0 || p >= rank || seen[p]) {
      valid = false;
      break;
    }
    seen[p] = true;
  }
  if (!valid)
    return opError(loc, getOperationName(), "expects a permutation of [0, ",
                   rank, "), got ", formatShape(perm));
  SmallVector<int64_t> shape;
  for (int64_t p : perm)
    shape.push_back(input.getDimSize(p));
  types.push_back(input.clone(shape));
  return success();
}

OpFoldResult TransposeOp::fold(FoldAdaptor) {
  ArrayRef<int64_t> perm = getPermutation();
  if (llvm::equal(perm, llvm::seq<int64_t>(0, perm.size())))
    return getInput();
  if (auto producer = getInput().getDefiningOp<TransposeOp>()) {
    // result[i] = producer.input[inner[perm[i]]].
    ArrayRef<int64_t> inner = producer.getPermutation();
    SmallVector<int64_t> composed;
    for (int64_t p : perm)
      composed.push_back(inner[p]);
    getInputMutable().assign(producer.getInput());
    setPermutation(composed);
    return getResult();
  }
  return {};
}

LogicalResult SliceOp::inferReturnTypes(MLIRContext *,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &types) {
  StringRef name = getOperationName();
  RankedTensorType input = tensorType(adaptor.getInput());
  ArrayRef<int64_t> start = adaptor.getStart(), limit = adaptor.getLimit(),
                    stride = adaptor.getStride();
  int64_t rank = input.getRank();
  if (static_cast<int64_t>(start.size()) != rank ||
      static_cast<int64_t>(limit.size()) != rank ||
      static_cast<int64_t>(stride.size()) != rank)
    return opError(loc, name, "expects start, limit and stride of length ",
                   rank, " (the input rank), got ", start.size(), ", ",
                   limit.size(), " and ", stride.size());
  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < rank; ++d) {
    int64_t size = input.getDimSize(d);
    if (start[d] < 0 || start[d] > limit[d] || limit[d] > size)
      return opError(loc, name, "expects 0 <= start <= limit <= ", size,
                     " in dim ", d, ", got start ", start[d], " and limit ",
                     limit[d]);
    if (stride[d] < 1)
      return opError(loc, name, "expects stride >= 1 in dim ", d, ", got ",
                     stride[d]);
    shape.push_back((limit[d] - start[d] + stride[d] - 1) / stride[d]);
  }
  types.push_back(input.clone(shape));
  return success();
}

OpFoldResult SliceOp::fold(FoldAdaptor) {
  if (getInput().getType() == getType())
    return getInput();
  return {};
}

LogicalResult ConcatOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  StringRef name = getOperationName();
  ValueRange inputs = adaptor.getInputs();
  if (inputs.empty())
    return opError(loc, name, "expects at least one input");
  RankedTensorType first = tensorType(inputs.front());
  int64_t axis = adaptor.getAxis();
  if (failed(checkAxis(loc, name, axis, first.getRank())))
    return failure();
  SmallVector<int64_t> shape(first.getShape());
  for (auto [index, input] : llvm::enumerate(inputs.drop_front())) {
    RankedTensorType type = tensorType(input);
    if (failed(expectSameElementType(loc, name, "inputs",
                                     first.getElementType(),
                                     type.getElementType())))
      return failure();
    if (type.getRank() != first.getRank())
      return opError(loc, name, "expects inputs of one rank, got ",
                     first.getRank(), " and ", type.getRank(), " (input ",
                     index + 1, ")");
    for (int64_t d = 0; d < first.getRank(); ++d) {
      if (d != axis && type.getDimSize(d) != first.getDimSize(d))
        return opError(loc, name, "expects input ", index + 1, " to match ",
                       formatShape(first.getShape()),
                       " outside the concat axis, got ",
                       formatShape(type.getShape()));
    }
    shape[axis] += type.getDimSize(axis);
  }
  types.push_back(first.clone(shape));
  return success();
}

OpFoldResult ConcatOp::fold(FoldAdaptor) {
  if (getInputs().size() == 1)
    return getInputs().front();
  return {};
}

LogicalResult BroadcastToOp::inferReturnTypes(MLIRContext *,
                                              std::optional<Location> loc,
                                              Adaptor adaptor,
                                              SmallVectorImpl<Type> &types) {
  RankedTensorType input = tensorType(adaptor.getInput());
  ArrayRef<int64_t> shape = adaptor.getShape();
  SmallVector<int64_t> broadcast;
  if (!OpTrait::util::getBroadcastedShape(input.getShape(), shape,
                                          broadcast) ||
      !llvm::equal(broadcast, shape))
    return opError(loc, getOperationName(), "cannot broadcast ",
                   formatShape(input.getShape()), " to ", formatShape(shape));
  types.push_back(input.clone(shape));
  return success();
}

OpFoldResult BroadcastToOp::fold(FoldAdaptor adaptor) {
  if (getInput().getType() == getType())
    return getInput();
  if (auto splat = dyn_cast_or_null<SplatElementsAttr>(adaptor.getInput()))
    return SplatElementsAttr::get(getType(), splat.getSplatValue<Attribute>());
  return {};
}

//===----------------------------------------------------------------------===//
// Model ops
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  RankedTensorType table = tensorType(adaptor.getTable());
  if (table.getRank() < 2)
    return opError(loc, getOperationName(),
                   "expects a table of rank >= 2 [vocab, ...], got ",
                   formatShape(table.getShape()));
  SmallVector<int64_t> shape(tensorType(adaptor.getIds()).getShape());
  shape.append(table.getShape().begin() + 1, table.getShape().end());
  types.push_back(table.clone(shape));
  return success();
}

LogicalResult RmsNormOp::inferReturnTypes(MLIRContext *,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &types) {
  StringRef name = getOperationName();
  RankedTensorType input = tensorType(adaptor.getInput());
  RankedTensorType weight = tensorType(adaptor.getWeight());
  if (failed(expectSameElementType(loc, name, "input and weight",
                                   input.getElementType(),
                                   weight.getElementType())))
    return failure();
  if (input.getRank() < 1 || weight.getRank() != 1 ||
      weight.getDimSize(0) != input.getDimSize(input.getRank() - 1))
    return opError(loc, name,
                   "expects weight of shape [last dim of input], got input ",
                   formatShape(input.getShape()), " and weight ",
                   formatShape(weight.getShape()));
  if (adaptor.getEpsilon().convertToDouble() < 0)
    return opError(loc, name, "expects epsilon >= 0, got ",
                   adaptor.getEpsilon().convertToDouble());
  types.push_back(input);
  return success();
}

LogicalResult RopeOp::inferReturnTypes(MLIRContext *,
                                       std::optional<Location> loc,
                                       Adaptor adaptor,
                                       SmallVectorImpl<Type> &types) {
  StringRef name = getOperationName();
  RankedTensorType input = tensorType(adaptor.getInput());
  RankedTensorType cos = tensorType(adaptor.getCos());
  RankedTensorType sin = tensorType(adaptor.getSin());
  if (input.getRank() < 1 || input.getDimSize(input.getRank() - 1) % 2 != 0)
    return opError(loc, name, "expects an even last dim, got input ",
                   formatShape(input.getShape()));
  if (cos != sin)
    return opError(loc, name, "expects cos and sin of one type, got ", cos,
                   " and ", sin);
  if (failed(expectSameElementType(loc, name, "input and cos/sin",
                                   input.getElementType(),
                                   cos.getElementType())))
    return failure();
  SmallVector<int64_t> broadcast;
  if (!OpTrait::util::getBroadcastedShape(input.getShape(), cos.getShape(),
                                          broadcast) ||
      !llvm::equal(broadcast, input.getShape()))
    return opError(loc, name, "expects cos/sin ", formatShape(cos.getShape()),
                   " to broadcast to the input ",
                   formatShape(input.getShape()));
  types.push_back(input);
  return success();
}

LogicalResult SwigluOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  Type gate = adaptor.getGate().getType(), up = adaptor.getUp().getType();
  if (gate != up)
    return opError(loc, getOperationName(),
                   "expects gate and up of one type, got ", gate, " and ", up);
  types.push_back(gate);
  return success();
}

LogicalResult AttentionOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  StringRef name = getOperationName();
  RankedTensorType q = tensorType(adaptor.getQuery());
  RankedTensorType k = tensorType(adaptor.getKey());
  RankedTensorType v = tensorType(adaptor.getValue());
  if (q.getRank() != 4 || k.getRank() != 4 || v.getRank() != 4)
    return opError(loc, name,
                   "expects query, key and value of rank 4 [batch, heads, "
                   "seq, head_dim], got ranks ",
                   q.getRank(), ", ", k.getRank(), " and ", v.getRank());
  if (q.getElementType() != k.getElementType() ||
      q.getElementType() != v.getElementType())
    return opError(loc, name,
                   "expects query, key and value of one element type, got ",
                   q.getElementType(), ", ", k.getElementType(), " and ",
                   v.getElementType());
  ArrayRef<int64_t> qs = q.getShape(), ks = k.getShape(), vs = v.getShape();
  if (qs[0] != ks[0] || qs[0] != vs[0])
    return opError(loc, name, "expects one batch size, got query ",
                   formatShape(qs), ", key ", formatShape(ks), ", value ",
                   formatShape(vs));
  if (ks[1] != vs[1] || ks[2] != vs[2])
    return opError(loc, name,
                   "expects key and value with the same heads and sequence, "
                   "got key ",
                   formatShape(ks), " and value ", formatShape(vs));
  if (ks[1] == 0 || qs[1] % ks[1] != 0)
    return opError(loc, name, "expects query heads (", qs[1],
                   ") to be a multiple of key/value heads (", ks[1], ")");
  if (qs[3] != ks[3])
    return opError(loc, name, "expects query and key head_dim to match, got ",
                   qs[3], " and ", ks[3]);
  if (adaptor.getCausal() && qs[2] != ks[2])
    return opError(loc, name,
                   "expects equal query and key sequence lengths when causal, "
                   "got ",
                   qs[2], " and ", ks[2]);
  if (Value cuSeqlens = adaptor.getCuSeqlens()) {
    RankedTensorType cu = tensorType(cuSeqlens);
    if (cu.getRank() != 1 || cu.getDimSize(0) < 2)
      return opError(loc, name,
                     "expects cu_seqlens of shape [documents + 1] with at "
                     "least 2 entries, got ",
                     formatShape(cu.getShape()));
    if (qs[2] != ks[2])
      return opError(loc, name,
                     "expects equal query and key sequence lengths with "
                     "cu_seqlens, got ",
                     qs[2], " and ", ks[2]);
  }
  types.push_back(q.clone({qs[0], qs[1], qs[2], vs[3]}));
  return success();
}

LogicalResult CrossEntropyOp::inferReturnTypes(MLIRContext *,
                                               std::optional<Location> loc,
                                               Adaptor adaptor,
                                               SmallVectorImpl<Type> &types) {
  RankedTensorType logits = tensorType(adaptor.getLogits());
  RankedTensorType labels = tensorType(adaptor.getLabels());
  if (logits.getRank() < 1 ||
      !llvm::equal(logits.getShape().drop_back(), labels.getShape()))
    return opError(loc, getOperationName(),
                   "expects labels shaped like logits without the class "
                   "axis, got logits ",
                   formatShape(logits.getShape()), " and labels ",
                   formatShape(labels.getShape()));
  // During parsing an omitted default-valued attribute is still null.
  ReductionAttr reduction = adaptor.getReductionAttr();
  if (reduction && reduction.getValue() == Reduction::none)
    types.push_back(labels.clone(logits.getElementType()));
  else
    types.push_back(RankedTensorType::get({}, logits.getElementType()));
  return success();
}

//===----------------------------------------------------------------------===//
// Gradient ops and the optimizer
//===----------------------------------------------------------------------===//

LogicalResult RmsNormGradOp::inferReturnTypes(MLIRContext *,
                                              std::optional<Location> loc,
                                              Adaptor adaptor,
                                              SmallVectorImpl<Type> &types) {
  Type input = adaptor.getInput().getType();
  if (adaptor.getResultGrad().getType() != input)
    return opError(loc, getOperationName(),
                   "expects the result gradient to have the input type ",
                   input, ", got ", adaptor.getResultGrad().getType());
  types.append({input, adaptor.getWeight().getType()});
  return success();
}

LogicalResult RopeGradOp::inferReturnTypes(MLIRContext *,
                                           std::optional<Location>,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &types) {
  return inferSameType(adaptor.getResultGrad(), types);
}

LogicalResult SwigluGradOp::inferReturnTypes(MLIRContext *,
                                             std::optional<Location> loc,
                                             Adaptor adaptor,
                                             SmallVectorImpl<Type> &types) {
  auto gate = tensorType(adaptor.getGate());
  auto grad = tensorType(adaptor.getResultGrad());
  bool mixed = gate.getElementType().isBF16() && grad.getElementType().isF32();
  if (adaptor.getUp().getType() != gate || gate.getShape() != grad.getShape() ||
      (gate.getElementType() != grad.getElementType() && !mixed))
    return opError(loc, getOperationName(),
                   "expects gate, up and the result gradient of one type (or bf16 "
                   "gate and up beside an f32 result gradient), got ",
                   gate, ", ", adaptor.getUp().getType(), " and ", grad);
  types.append({grad, grad});
  return success();
}

LogicalResult AttentionGradOp::inferReturnTypes(MLIRContext *,
                                                std::optional<Location>,
                                                Adaptor adaptor,
                                                SmallVectorImpl<Type> &types) {
  types.append({adaptor.getQuery().getType(), adaptor.getKey().getType(),
                adaptor.getValue().getType()});
  return success();
}

LogicalResult CrossEntropyGradOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &types) {
  if (failed(inferSameType(adaptor.getLogits(), types)))
    return failure();
  if (!adaptor.getBf16Result())
    return success();
  auto logits = cast<RankedTensorType>(types.back());
  if (!logits.getElementType().isF32())
    return opError(loc, getOperationName(), "bf16_result needs f32 logits");
  types.back() = logits.clone(Builder(logits.getContext()).getBF16Type());
  return success();
}

LogicalResult EmbeddingGradOp::inferReturnTypes(MLIRContext *,
                                                std::optional<Location> loc,
                                                Adaptor adaptor,
                                                SmallVectorImpl<Type> &types) {
  RankedTensorType grad = tensorType(adaptor.getResultGrad());
  int64_t idsRank = tensorType(adaptor.getIds()).getRank();
  if (grad.getRank() <= idsRank || adaptor.getVocab() <= 0)
    return opError(loc, getOperationName(),
                   "expects a result gradient [ids..., row...] and vocab > 0");
  SmallVector<int64_t> shape = {adaptor.getVocab()};
  shape.append(grad.getShape().begin() + idsRank, grad.getShape().end());
  types.push_back(grad.clone(shape));
  return success();
}

LogicalResult AdamwOp::inferReturnTypes(MLIRContext *,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &types) {
  Type param = adaptor.getParam().getType();
  if (adaptor.getGrad().getType() != param ||
      adaptor.getExpAvg().getType() != param ||
      adaptor.getExpAvgSq().getType() != param)
    return opError(loc, getOperationName(),
                   "expects grad and moments of the parameter's type ", param);
  auto hyper = tensorType(adaptor.getHyper());
  if (hyper.getRank() != 1 || hyper.getDimSize(0) != 3)
    return opError(loc, getOperationName(),
                   "expects hyper of shape [3] (lr, bias corrections), got ",
                   formatShape(hyper.getShape()));
  if (tensorType(adaptor.getGradScale()).getRank() != 0)
    return opError(loc, getOperationName(), "expects a scalar grad_scale");
  types.append({param, param, param});
  if (adaptor.getSumSquares())
    types.push_back(RankedTensorType::get({}, Float32Type::get(param.getContext())));
  return success();
}

//===----------------------------------------------------------------------===//
// Collectives
//===----------------------------------------------------------------------===//

static LogicalResult checkMeshAxes(std::optional<Location> loc,
                                   StringRef opName, ArrayAttr axes,
                                   int64_t groupSize) {
  int last = -1;
  for (Attribute axis : axes) {
    StringRef name = cast<StringAttr>(axis).getValue();
    auto it = llvm::find(kMeshAxisNames, name);
    if (it == std::end(kMeshAxisNames))
      return opError(loc, opName, "names unknown mesh axis '", name,
                     "' (expected dp, fsdp, sp, ep_fsdp, ep)");
    int index = it - std::begin(kMeshAxisNames);
    if (index <= last)
      return opError(loc, opName,
                     "expects mesh axes in order dp, fsdp, sp, ep_fsdp, ep, each once");
    if (index >= 3 && last >= 1 && last <= 2)
      return opError(loc, opName,
                     "mixes fsdp/sp with ep_fsdp/ep, which factor the same ranks");
    last = index;
  }
  if (groupSize < 1)
    return opError(loc, opName, "expects group_size >= 1, got ", groupSize);
  return success();
}

/// Shape rule of the collectives that resize one dim by the group size:
/// multiply it (gather), or divide it, requiring divisibility (scatter).
static LogicalResult inferGroupResize(std::optional<Location> loc,
                                      StringRef name, Value input,
                                      ArrayAttr axes, int64_t group,
                                      int64_t dim, bool multiply,
                                      SmallVectorImpl<Type> &types) {
  if (failed(checkMeshAxes(loc, name, axes, group)))
    return failure();
  RankedTensorType type = tensorType(input);
  if (failed(checkAxis(loc, name, dim, type.getRank())))
    return failure();
  if (!multiply && type.getDimSize(dim) % group != 0)
    return opError(loc, name, "expects dim ", dim, " (", type.getDimSize(dim),
                   ") divisible by group_size (", group, ")");
  SmallVector<int64_t> shape(type.getShape());
  shape[dim] = multiply ? shape[dim] * group : shape[dim] / group;
  types.push_back(type.clone(shape));
  return success();
}

LogicalResult AllGatherOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  return inferGroupResize(loc, getOperationName(), adaptor.getInput(),
                          adaptor.getMeshAxes(), adaptor.getGroupSize(),
                          adaptor.getDim(), /*multiply=*/true, types);
}

LogicalResult ReduceScatterOp::inferReturnTypes(MLIRContext *,
                                                std::optional<Location> loc,
                                                Adaptor adaptor,
                                                SmallVectorImpl<Type> &types) {
  return inferGroupResize(loc, getOperationName(), adaptor.getInput(),
                          adaptor.getMeshAxes(), adaptor.getGroupSize(),
                          adaptor.getDim(), /*multiply=*/false, types);
}

LogicalResult AllReduceOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  if (failed(checkMeshAxes(loc, getOperationName(), adaptor.getMeshAxes(),
                           adaptor.getGroupSize())))
    return failure();
  return inferSameType(adaptor.getInput(), types);
}

LogicalResult AllToAllOp::inferReturnTypes(MLIRContext *,
                                           std::optional<Location> loc,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &types) {
  StringRef name = getOperationName();
  int64_t group = adaptor.getGroupSize();
  if (failed(checkMeshAxes(loc, name, adaptor.getMeshAxes(), group)))
    return failure();
  RankedTensorType input = tensorType(adaptor.getInput());
  int64_t split = adaptor.getSplitDim(), concat = adaptor.getConcatDim();
  if (failed(checkAxis(loc, name, split, input.getRank())) ||
      failed(checkAxis(loc, name, concat, input.getRank())))
    return failure();
  if (input.getDimSize(split) % group != 0)
    return opError(loc, name, "expects split dim ", split, " (",
                   input.getDimSize(split), ") divisible by group_size (",
                   group, ")");
  SmallVector<int64_t> shape(input.getShape());
  shape[split] /= group;
  shape[concat] *= group;
  types.push_back(input.clone(shape));
  return success();
}

LogicalResult ShardSliceOp::inferReturnTypes(MLIRContext *,
                                             std::optional<Location> loc,
                                             Adaptor adaptor,
                                             SmallVectorImpl<Type> &types) {
  return inferGroupResize(loc, getOperationName(), adaptor.getInput(),
                          adaptor.getMeshAxes(), adaptor.getGroupSize(),
                          adaptor.getDim(), /*multiply=*/false, types);
}

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

LogicalResult TopKOp::inferReturnTypes(MLIRContext *context,
                                       std::optional<Location> loc,
                                       Adaptor adaptor,
                                       SmallVectorImpl<Type> &types) {
  RankedTensorType input = tensorType(adaptor.getInput());
  int64_t k = adaptor.getK();
  if (input.getRank() < 1 || k < 1 || k > input.getShape().back())
    return opError(loc, getOperationName(), "expects 1 <= k <= ",
                   input.getRank() ? input.getShape().back() : 0, ", got ", k);
  SmallVector<int64_t> shape(input.getShape());
  shape.back() = k;
  types.append({input.clone(shape),
                RankedTensorType::get(shape, IntegerType::get(context, 64))});
  return success();
}

LogicalResult MoeGateOp::inferReturnTypes(MLIRContext *context,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &types) {
  RankedTensorType logits = tensorType(adaptor.getLogits());
  int64_t k = adaptor.getTopK();
  if (logits.getRank() != 2)
    return opError(loc, getOperationName(), "expects logits [tokens, experts], got ",
                   formatShape(logits.getShape()));
  if (k < 1 || k > logits.getDimSize(1))
    return opError(loc, getOperationName(), "expects 1 <= top_k <= ",
                   logits.getDimSize(1), " experts, got ", k);
  SmallVector<int64_t> shape = {logits.getDimSize(0), k};
  types.append({logits.clone(shape),
                RankedTensorType::get(shape, IntegerType::get(context, 64))});
  return success();
}

LogicalResult MoeExpertsOp::inferReturnTypes(MLIRContext *,
                                             std::optional<Location> loc,
                                             Adaptor adaptor,
                                             SmallVectorImpl<Type> &types) {
  StringRef name = getOperationName();
  RankedTensorType x = tensorType(adaptor.getInput());
  RankedTensorType experts = tensorType(adaptor.getExperts());
  RankedTensorType weights = tensorType(adaptor.getWeights());
  RankedTensorType gateUp = tensorType(adaptor.getGateUp());
  RankedTensorType down = tensorType(adaptor.getDown());
  if (x.getRank() != 2 || experts.getRank() != 2 || gateUp.getRank() != 3 ||
      down.getRank() != 3)
    return opError(loc, name,
                   "expects x [T, H], experts [T, k], gate_up [E, 2I, H], "
                   "down [E, H, I]");
  int64_t tokens = x.getDimSize(0), hidden = x.getDimSize(1);
  int64_t numExperts = gateUp.getDimSize(0), inter = down.getDimSize(2);
  if (experts.getDimSize(0) != tokens || weights.getShape() != experts.getShape())
    return opError(loc, name, "expects experts and weights of shape [", tokens,
                   ", k], got ", formatShape(experts.getShape()), " and ",
                   formatShape(weights.getShape()));
  if (gateUp.getDimSize(1) != 2 * inter || gateUp.getDimSize(2) != hidden ||
      down.getDimSize(0) != numExperts || down.getDimSize(1) != hidden)
    return opError(loc, name, "expects gate_up [", numExperts, ", ", 2 * inter,
                   ", ", hidden, "] and down [", numExperts, ", ", hidden, ", ",
                   inter, "], got ", formatShape(gateUp.getShape()), " and ",
                   formatShape(down.getShape()));
  // The expert weights may be bf16 roundings (vo-bf16-matmuls) of f32 ones.
  bool roundedWeights = x.getElementType().isF32() && gateUp.getElementType().isBF16() &&
                        down.getElementType().isBF16();
  if (weights.getElementType() != x.getElementType() ||
      (!roundedWeights && (gateUp.getElementType() != x.getElementType() ||
                           down.getElementType() != x.getElementType())))
    return opError(loc, name,
                   "expects x, weights and expert weights of one type (or f32 with bf16 "
                   "expert weights)");
  types.push_back(x);
  if (adaptor.getKeepProjected()) {
    if (adaptor.getGroupSize() && *adaptor.getGroupSize() > 1)
      return opError(loc, name, "keeps no projections under expert parallelism");
    types.push_back(x.clone({tokens * experts.getDimSize(1), 2 * inter}));
  }
  return success();
}

LogicalResult MoeGateGradOp::inferReturnTypes(MLIRContext *,
                                              std::optional<Location>,
                                              Adaptor adaptor,
                                              SmallVectorImpl<Type> &types) {
  return inferSameType(adaptor.getLogits(), types);
}

LogicalResult MoeExpertsGradOp::inferReturnTypes(MLIRContext *,
                                                 std::optional<Location> loc,
                                                 Adaptor adaptor,
                                                 SmallVectorImpl<Type> &types) {
  // Gradients of bf16-rounded expert weights are in x's type, as the
  // weights they reach.
  RankedTensorType x = tensorType(adaptor.getInput());
  Type element = x.getElementType();
  if (Value projected = adaptor.getProjected()) {
    RankedTensorType gateUp = tensorType(adaptor.getGateUp());
    RankedTensorType experts = tensorType(adaptor.getExperts());
    if (x.getRank() != 2 || experts.getRank() != 2 || gateUp.getRank() != 3)
      return opError(loc, getOperationName(),
                     "expects x [T, H], experts [T, k] and gate_up [E, 2I, H] with projected");
    auto expected = x.clone({x.getDimSize(0) * experts.getDimSize(1), gateUp.getDimSize(1)});
    if (projected.getType() != expected)
      return opError(loc, getOperationName(), "expects projected of type ", expected, ", got ",
                     projected.getType());
    if (adaptor.getGroupSize() && *adaptor.getGroupSize() > 1)
      return opError(loc, getOperationName(),
                     "reads no projections under expert parallelism");
  }
  types.append({adaptor.getInput().getType(), adaptor.getWeights().getType(),
                tensorType(adaptor.getGateUp()).clone(element),
                tensorType(adaptor.getDown()).clone(element)});
  return success();
}

#define GET_OP_CLASSES
#include "dialects/vo/VoOps.cpp.inc"
