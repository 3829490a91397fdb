//===- VoShardSequence.cpp - Ulysses sequence parallelism -----------------===//
//
// Each of the sp ranks of a group holds a contiguous S/sp-token chunk of the
// same sequences. The forward is re-typed for the local chunk: the pass
// tracks, for every value, which dim runs along the sequence, and rebuilds
// each op for it. Ops that work per position need nothing; the few that mix
// positions are rewritten:
//   - attention: an all-to-all turns [B, H, S/sp, D] into [B, H/sp, S, D] for
//     q, k and v (kv heads replicated first when fewer than sp), and one
//     turns the output back;
//   - the label shift (concat a fill, drop the first): the last label of a
//     chunk is the first label of the next rank's chunk;
//   - constants indexed by position (RoPE tables): each rank's slice.
// Any other op that reduces, slices or concatenates along the sequence is an
// error naming it.
//
//===----------------------------------------------------------------------===//

#include "dialects/vo/VoOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

namespace veomni {
#define GEN_PASS_DEF_VOSHARDSEQUENCE
#include "passes/Passes.h.inc"
} // namespace veomni

using namespace mlir;
using namespace veomni::vo;

namespace {

RankedTensorType typeOf(Value value) {
  return cast<RankedTensorType>(value.getType());
}

class SequenceSharder {
public:
  SequenceSharder(func::FuncOp func, int64_t sp, StringRef tokenInput)
      : func(func), sp(sp), tokenInput(tokenInput), b(func.getContext()) {}

  LogicalResult run();

private:
  LogicalResult rewrite(Operation *op);
  LogicalResult rewriteAttention(AttentionOp op);
  LogicalResult rewriteLabelShift(ConcatOp concat, SliceOp slice, int64_t dim);
  /// Re-infers the result types of `op` (cloned with new operands).
  LogicalResult reinfer(Operation *op);
  /// The value of `original` in the rewritten function; sequence-aligned
  /// constants of extent S at `dim` become this rank's slice.
  Value operandFor(Value original, std::optional<int64_t> alignedDim);
  /// The seq dim of the new value, or -1.
  int64_t seqDim(Value value) const {
    auto it = seq.find(value);
    return it == seq.end() ? -1 : it->second;
  }
  ArrayAttr spAxes() { return b.getArrayAttr({b.getStringAttr("sp")}); }
  InFlightDiagnostic fail(Operation *op, const Twine &message) {
    return op->emitOpError() << "under sp=" << sp << ": " << message;
  }

  func::FuncOp func;
  int64_t sp;
  StringRef tokenInput;
  OpBuilder b;
  IRMapping mapping;
  DenseMap<Value, int64_t> seq; // new value -> its sequence dim
  /// Values whose sequence dim also holds other positions (a batch-major
  /// flattening [B, S] -> [B*S]): the sequence is innermost in it.
  DenseSet<Value> merged;
  int64_t seqLen = 0;           // global S
  int attentionIndex = 0;
};

Value SequenceSharder::operandFor(Value original, std::optional<int64_t> dim) {
  Value value = mapping.lookupOrDefault(original);
  if (!dim || seqDim(value) >= 0)
    return value;
  RankedTensorType type = typeOf(value);
  if (*dim < 0 || *dim >= type.getRank() || type.getDimSize(*dim) != seqLen)
    return value;
  if (!value.getDefiningOp<ConstantOp>())
    return value; // checked by the caller: only constants are sliced
  Value local = ShardSliceOp::create(b, value.getLoc(), value, spAxes(), sp, *dim);
  seq[local] = *dim;
  return local;
}

LogicalResult SequenceSharder::reinfer(Operation *op) {
  auto infer = dyn_cast<InferTypeOpInterface>(op);
  if (!infer)
    return op->emitOpError("has no shape rule to re-type under sp");
  SmallVector<Type> types;
  if (failed(infer.inferReturnTypes(op->getContext(), op->getLoc(),
                                    op->getOperands(), op->getAttrDictionary(),
                                    op->getPropertiesStorage(),
                                    op->getRegions(), types)))
    return failure();
  for (auto [result, type] : llvm::zip(op->getResults(), types))
    result.setType(type);
  return success();
}

LogicalResult SequenceSharder::run() {
  Block &body = func.getBody().front();
  // The token input fixes S; every input of its shape is split along dim 1.
  BlockArgument tokens;
  for (BlockArgument arg : body.getArguments())
    if (auto name = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(), kNameAttr);
        name && name.getValue() == tokenInput)
      tokens = arg;
  if (!tokens)
    return func.emitError() << "vo-shard-sequence: @" << func.getSymName()
                            << " has no input named '" << tokenInput << "'";
  RankedTensorType tokenType = typeOf(tokens);
  if (tokenType.getRank() != 2)
    return func.emitError("vo-shard-sequence expects [batch, seq] token ids");
  seqLen = tokenType.getDimSize(1);
  if (seqLen % sp != 0)
    return func.emitError() << "sp=" << sp << " does not divide the sequence length "
                            << seqLen;

  SmallVector<Operation *> ops;
  for (Operation &op : body.without_terminator())
    ops.push_back(&op);
  for (BlockArgument arg : body.getArguments()) {
    if (arg.getType() != tokenType)
      continue;
    arg.setType(tokenType.clone({tokenType.getDimSize(0), seqLen / sp}));
    seq[arg] = 1;
  }
  b.setInsertionPoint(body.getTerminator());
  for (Operation *op : ops) {
    if (mapping.contains(op->getResult(0)))
      continue; // already rewritten as part of a pattern
    if (failed(rewrite(op)))
      return failure();
  }
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  for (OpOperand &operand : ret->getOpOperands()) {
    Value value = mapping.lookupOrDefault(operand.get());
    if (seqDim(value) >= 0)
      return ret.emitOpError("returns a value split along the sequence under sp");
    operand.set(value);
  }
  for (Operation *op : llvm::reverse(ops)) {
    op->dropAllUses();
    op->erase();
  }
  func.setType(b.getFunctionType(body.getArgumentTypes(),
                                 func.getFunctionType().getResults()));
  return success();
}

LogicalResult SequenceSharder::rewrite(Operation *op) {
  Location loc = op->getLoc();
  auto anySeq = [&] {
    return llvm::any_of(op->getOperands(), [&](Value v) {
      return seqDim(mapping.lookupOrDefault(v)) >= 0;
    });
  };

  if (auto attention = dyn_cast<AttentionOp>(op))
    return rewriteAttention(attention);
  if (!anySeq() || isa<ParamOp, ConstantOp>(op)) {
    Operation *clone = b.clone(*op, mapping);
    (void)clone;
    return success();
  }

  // Elementwise ops with numpy broadcasting: align the seq dim by rank and
  // slice position-indexed constants.
  bool broadcasting =
      isa<AddOp, SubOp, MulOp, DivOp, PowOp, MaximumOp, MinimumOp, CmpOp,
          SelectOp, RopeOp>(op);
  bool unary = op->getNumOperands() == 1 &&
               op->getNumResults() == 1 &&
               typeOf(op->getOperand(0)).getRank() ==
                   typeOf(op->getResult(0)).getRank() &&
               isa<NegOp, ExpOp, LogOp, SqrtOp, RsqrtOp, ReciprocalOp, TanhOp,
                   ErfOp, CosOp, SinOp, SigmoidOp, SiluOp, GeluOp, CastOp,
                   IsNanOp>(op);
  int64_t resultRank = typeOf(op->getResult(0)).getRank();
  if (broadcasting || unary || isa<SwigluOp, RmsNormOp>(op)) {
    int64_t aligned = -1;
    for (Value operand : op->getOperands()) {
      int64_t d = seqDim(mapping.lookupOrDefault(operand));
      if (d < 0)
        continue;
      int64_t a = d + resultRank - typeOf(operand).getRank();
      if (aligned >= 0 && a != aligned)
        return fail(op, "combines operands split along different dims");
      aligned = a;
    }
    if (isa<RmsNormOp>(op) && aligned == resultRank - 1)
      return fail(op, "normalizes along the sequence");
    SmallVector<Value> operands;
    for (Value operand : op->getOperands()) {
      int64_t local = aligned - (resultRank - typeOf(operand).getRank());
      Value value = operandFor(operand, broadcasting ? std::optional(local)
                                                     : std::nullopt);
      if (seqDim(value) < 0 && local >= 0 &&
          typeOf(value).getDimSize(local) == seqLen && broadcasting)
        return fail(op, "combines the sequence with a non-constant value indexed "
                        "by position; only constant tables can be split");
      operands.push_back(value);
    }
    Operation *clone = b.clone(*op, mapping);
    clone->setOperands(operands);
    if (failed(reinfer(clone)))
      return failure();
    seq[clone->getResult(0)] = aligned;
    if (llvm::any_of(operands, [&](Value v) { return merged.contains(v); }))
      merged.insert(clone->getResult(0));
    mapping.map(op->getResults(), clone->getResults());
    return success();
  }

  Operation *clone = b.clone(*op, mapping);
  Value input = clone->getOperand(0);
  int64_t d = seqDim(input);
  bool inputMerged = llvm::any_of(clone->getOperands(),
                                  [&](Value v) { return merged.contains(v); });
  auto mapResult = [&](int64_t dim) -> LogicalResult {
    if (failed(reinfer(clone)))
      return failure();
    if (dim >= 0) {
      seq[clone->getResult(0)] = dim;
      if (inputMerged)
        merged.insert(clone->getResult(0));
    }
    mapping.map(op->getResults(), clone->getResults());
    return success();
  };

  // The router and the experts work token by token: the token dim (0) may
  // be split; every result keeps it.
  if (isa<MoeGateOp, MoeExpertsOp>(clone)) {
    for (Value operand : clone->getOperands()) {
      int64_t dim = seqDim(operand);
      if (dim > 0 || (dim < 0 && typeOf(operand).getRank() == 2 &&
                      llvm::is_contained(clone->getOperands().take_front(3), operand)))
        return fail(op, "expects every token operand split along dim 0");
    }
    if (failed(reinfer(clone)))
      return failure();
    for (Value result : clone->getResults()) {
      seq[result] = 0;
      if (llvm::any_of(clone->getOperands(), [&](Value v) { return merged.contains(v); }))
        merged.insert(result);
    }
    mapping.map(op->getResults(), clone->getResults());
    return success();
  }
  if (auto embedding = dyn_cast<EmbeddingOp>(clone)) {
    if (seqDim(embedding.getTable()) >= 0)
      return fail(op, "reads an embedding table split along the sequence");
    return mapResult(seqDim(embedding.getIds()));
  }
  if (auto transpose = dyn_cast<TransposeOp>(clone)) {
    int64_t to = llvm::find(transpose.getPermutation(), d) -
                 transpose.getPermutation().begin();
    return mapResult(to);
  }
  if (auto reshape = dyn_cast<ReshapeOp>(clone)) {
    // The global shapes locate the sequence: its stride in the flattened
    // tensor must fall inside one target dim that holds all S positions.
    ArrayRef<int64_t> in = typeOf(op->getOperand(0)).getShape();
    ArrayRef<int64_t> out = typeOf(op->getResult(0)).getShape();
    int64_t stride = 1;
    for (int64_t i = d + 1; i < static_cast<int64_t>(in.size()); ++i)
      stride *= in[i];
    // The tracked dim must be exactly the S positions, and they must land
    // whole in one target dim whose inner stride divides theirs; otherwise a
    // local chunk would not be a contiguous block of the global tensor.
    int64_t inner = 1, target = -1;
    for (int64_t j = out.size() - 1; j >= 0; --j) {
      if (inner <= stride && stride * seqLen <= inner * out[j]) {
        target = j;
        break;
      }
      inner *= out[j];
    }
    // The sequence is the whole dim, or innermost in a merged one; it must
    // land whole in one target dim whose inner stride divides its stride.
    bool exact = in[d] == seqLen;
    bool whole = exact || (merged.contains(input) && in[d] % seqLen == 0);
    bool aligned = whole && target >= 0 && stride % inner == 0 &&
                   (inner * out[target]) % (stride * seqLen) == 0;
    // A target dim holding more than the sequence must keep it innermost.
    bool mergesOuter = aligned && out[target] != seqLen && stride != inner;
    if (!aligned || mergesOuter || out[target] % sp != 0)
      return fail(op, "reshapes the sequence across dims");
    SmallVector<int64_t> shape(out);
    shape[target] /= sp;
    reshape.setShape(shape);
    inputMerged = false;
    if (failed(mapResult(target)))
      return failure();
    if (out[target] != seqLen)
      merged.insert(clone->getResult(0));
    return success();
  }
  if (auto matmul = dyn_cast<MatmulOp>(clone)) {
    int64_t lhsRank = typeOf(matmul.getLhs()).getRank();
    int64_t rhsRank = typeOf(matmul.getRhs()).getRank();
    int64_t ld = seqDim(matmul.getLhs()), rd = seqDim(matmul.getRhs());
    if (ld >= 0 && rd >= 0)
      return fail(op, "multiplies two operands split along the sequence");
    int64_t rows = matmul.getTransposeLhs() ? lhsRank - 1 : lhsRank - 2;
    int64_t cols = matmul.getTransposeRhs() ? rhsRank - 2 : rhsRank - 1;
    int64_t dim;
    if (ld >= 0)
      dim = ld == rows ? resultRank - 2
            : ld < lhsRank - 2 ? ld + resultRank - lhsRank : -1;
    else
      dim = rd == cols ? resultRank - 1
            : rd < rhsRank - 2 ? rd + resultRank - rhsRank : -1;
    if (dim < 0)
      return fail(op, "contracts along the sequence");
    return mapResult(dim);
  }
  if (isa<ReduceSumOp, ReduceSumSquaresOp, ReduceMeanOp, ReduceMaxOp>(clone)) {
    ArrayRef<int64_t> axes =
        clone->getAttrOfType<DenseI64ArrayAttr>("axes").asArrayRef();
    if (!llvm::is_contained(axes, d)) {
      bool keep = clone->hasAttr("keep_dims");
      int64_t dropped =
          keep ? 0 : llvm::count_if(axes, [&](int64_t a) { return a < d; });
      return mapResult(d - dropped);
    }
  }
  if (isa<SoftmaxOp, LogSoftmaxOp>(clone) &&
      clone->getAttrOfType<IntegerAttr>("axis").getInt() != d)
    return mapResult(d);
  if (auto concat = dyn_cast<ConcatOp>(op)) {
    clone->erase();
    if (concat.getAxis() == d && concat->hasOneUse())
      if (auto slice = dyn_cast<SliceOp>(*concat->getUsers().begin()))
        return rewriteLabelShift(concat, slice, d);
    if (concat.getAxis() == d)
      return fail(op, "concatenates along the sequence");
    clone = b.clone(*op, mapping);
    return mapResult(d);
  }
  if (auto slice = dyn_cast<SliceOp>(clone)) {
    ArrayRef<int64_t> global = typeOf(op->getOperand(0)).getShape();
    if (slice.getStart()[d] != 0 || slice.getLimit()[d] != global[d] ||
        slice.getStride()[d] != 1)
      return fail(op, "slices along the sequence");
    SmallVector<int64_t> limit(slice.getLimit());
    limit[d] /= sp;
    slice.setLimit(limit);
    return mapResult(d);
  }
  if (auto loss = dyn_cast<CrossEntropyOp>(clone)) {
    if (loss.getReduction() == Reduction::none)
      return mapResult(seqDim(loss.getLabels()));
    return mapResult(-1); // a sum or mean: completed across ranks later
  }
  clone->erase();
  return fail(op, "mixes sequence positions; not supported by vo-shard-sequence");
}

/// x[..., 1:] with the next rank's first element appended (the fill on the
/// last rank): the global shift left by one, computed on chunks.
LogicalResult SequenceSharder::rewriteLabelShift(ConcatOp concat, SliceOp slice,
                                                 int64_t d) {
  Location loc = concat.getLoc();
  auto inputs = concat.getInputs();
  if (inputs.size() != 2 || seqDim(mapping.lookupOrDefault(inputs[0])) != d ||
      !inputs[1].getDefiningOp<ConstantOp>() ||
      typeOf(inputs[1]).getDimSize(d) != 1 || slice.getStart()[d] != 1 ||
      slice.getLimit()[d] != seqLen + 1 || slice.getStride()[d] != 1)
    return fail(concat, "concatenates along the sequence (only the shift "
                        "left by one of a label-like tensor is supported)");
  Value x = mapping.lookupOrDefault(inputs[0]);
  Value fill = mapping.lookupOrDefault(inputs[1]);
  RankedTensorType type = typeOf(x);
  int64_t local = type.getDimSize(d);
  auto sliceDim = [&](Value v, int64_t begin, int64_t end) {
    RankedTensorType t = typeOf(v);
    SmallVector<int64_t> start(t.getRank(), 0), limit(t.getShape()),
        stride(t.getRank(), 1);
    start[d] = begin;
    limit[d] = end;
    return Value(SliceOp::create(b, loc, v, start, limit, stride));
  };
  Value first = sliceDim(x, 0, 1);
  Value firsts = AllGatherOp::create(b, loc, first, spAxes(), sp, d);
  Value candidates = ConcatOp::create(
      b, loc, ValueRange{sliceDim(firsts, 1, sp), fill}, d);
  Value next = ShardSliceOp::create(b, loc, candidates, spAxes(), sp, d);
  Value shifted = ConcatOp::create(b, loc, ValueRange{sliceDim(x, 1, local), next}, d);
  seq[shifted] = d;
  mapping.map(concat.getResult(), shifted); // the concat is folded away
  mapping.map(slice.getResult(), shifted);
  return success();
}

LogicalResult SequenceSharder::rewriteAttention(AttentionOp op) {
  ++attentionIndex;
  Location loc = op.getLoc();
  Value q = mapping.lookupOrDefault(op.getQuery());
  Value k = mapping.lookupOrDefault(op.getKey());
  Value v = mapping.lookupOrDefault(op.getValue());
  if (op.getCuSeqlens())
    return fail(op, "packed documents (cu_seqlens) are not supported with sp yet");
  for (Value t : {q, k, v})
    if (seqDim(t) != 2)
      return fail(op, "expects query, key and value split along dim 2 (the sequence)");
  int64_t heads = typeOf(q).getDimSize(1), kvHeads = typeOf(k).getDimSize(1);
  if (heads % sp != 0)
    return fail(op, Twine("sp=") + Twine(sp) + " does not divide " + Twine(heads) +
                        " attention heads in layer " + Twine(attentionIndex));
  if (kvHeads % sp != 0 && sp % kvHeads != 0)
    return fail(op, Twine("sp=") + Twine(sp) + " and " + Twine(kvHeads) +
                        " key/value heads in layer " + Twine(attentionIndex) +
                        ": one must divide the other");
  auto toHeads = [&](Value t) {
    return Value(AllToAllOp::create(b, loc, t, spAxes(), sp, 1, 2));
  };
  // Fewer kv heads than ranks: replicate each so every rank gets the one
  // its query heads read.
  auto replicate = [&](Value t) {
    if (kvHeads >= sp)
      return t;
    RankedTensorType type = typeOf(t);
    ArrayRef<int64_t> s = type.getShape();
    int64_t repeat = sp / kvHeads;
    Value expanded = ReshapeOp::create(b, loc, t, ArrayRef<int64_t>{s[0], s[1], 1, s[2], s[3]});
    expanded = BroadcastToOp::create(b, loc, expanded,
                                     ArrayRef<int64_t>{s[0], s[1], repeat, s[2], s[3]});
    return Value(ReshapeOp::create(b, loc, expanded,
                                   ArrayRef<int64_t>{s[0], s[1] * repeat, s[2], s[3]}));
  };
  // In order q, k, v: the IR must not depend on argument evaluation order.
  Value exchanged[3] = {toHeads(q), Value(), Value()};
  exchanged[1] = toHeads(replicate(k));
  exchanged[2] = toHeads(replicate(v));
  Value attention = AttentionOp::create(b, loc, exchanged[0], exchanged[1], exchanged[2], Value(),
                                        op.getScaleAttr(), op.getCausalAttr());
  Value back = AllToAllOp::create(b, loc, attention, spAxes(), sp, 2, 1);
  seq[back] = 2;
  mapping.map(op.getResult(), back);
  return success();
}

struct VoShardSequencePass
    : veomni::impl::VoShardSequenceBase<VoShardSequencePass> {
  using VoShardSequenceBase::VoShardSequenceBase;

  void runOnOperation() override {
    if (sp < 1) {
      getOperation().emitError() << "vo-shard-sequence: sp must be >= 1, got " << int64_t(sp);
      return signalPassFailure();
    }
    if (sp == 1)
      return;
    auto forward = getOperation().lookupSymbol<func::FuncOp>("forward");
    if (!forward) {
      getOperation().emitError("vo-shard-sequence expects @forward");
      return signalPassFailure();
    }
    if (failed(SequenceSharder(forward, sp, tokenInput).run()))
      signalPassFailure();
  }
};

} // namespace
