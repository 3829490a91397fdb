//===- VoTokenMeanLoss.cpp - the loss as a global token mean --------------===//
//
// A mean cross-entropy per micro-batch, averaged again over micro-batches or
// ranks, weights tokens unevenly when micro-batches hold different numbers
// of valid labels. The global token mean is a sum times 1/(global count):
// the count is computed first (@count_tokens, per micro-batch, summed by
// the runtime), then every micro-batch's sum is scaled by it.
//
//===----------------------------------------------------------------------===//

#include "dialects/vo/VoOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace veomni {
#define GEN_PASS_DEF_VOTOKENMEANLOSS
#include "passes/Passes.h.inc"
} // namespace veomni

using namespace mlir;
using namespace veomni::vo;

namespace {

/// Erases what the count does not need. An unused collective goes too: every
/// rank runs the same program, so all drop it alike.
void eraseDeadOps(func::FuncOp func) {
  SmallVector<Operation *> ops;
  func.walk([&](Operation *op) { ops.push_back(op); });
  for (Operation *op : llvm::reverse(ops)) {
    bool unusedCollective =
        isa<AllGatherOp, ReduceScatterOp, AllReduceOp, AllToAllOp>(op) &&
        op->use_empty();
    if (isOpTriviallyDead(op) || unusedCollective)
      op->erase();
  }
}

struct VoTokenMeanLossPass
    : veomni::impl::VoTokenMeanLossBase<VoTokenMeanLossPass> {
  using VoTokenMeanLossBase::VoTokenMeanLossBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto forward = module.lookupSymbol<func::FuncOp>(functionName);
    if (!forward) {
      module.emitError() << "vo-token-mean-loss: no function @" << functionName;
      return signalPassFailure();
    }
    auto returnOp =
        cast<func::ReturnOp>(forward.getBody().front().getTerminator());
    if (returnOp.getNumOperands() != 1) {
      forward.emitError("vo-token-mean-loss expects one result, the loss");
      return signalPassFailure();
    }
    auto loss = returnOp.getOperand(0).getDefiningOp<CrossEntropyOp>();
    if (!loss || loss.getReduction() != Reduction::mean) {
      Operation *producer = returnOp.getOperand(0).getDefiningOp();
      returnOp.emitError()
          << "vo-token-mean-loss expects @" << functionName
          << " to return a mean vo.cross_entropy, got "
          << (producer ? producer->getName().getStringRef()
                       : StringRef("a function argument"));
      return signalPassFailure();
    }

    OpBuilder builder(module.getContext());
    Location loc = loss.getLoc();

    // @count_tokens: the same inputs, the number of labels not ignored.
    builder.setInsertionPointAfter(forward);
    IRMapping mapping;
    auto count = cast<func::FuncOp>(builder.clone(*forward, mapping));
    count.setSymName("count_tokens");
    auto countReturn = cast<func::ReturnOp>(count.getBody().front().getTerminator());
    builder.setInsertionPoint(countReturn);
    Value labels = mapping.lookup(loss.getLabels());
    auto labelType = cast<RankedTensorType>(labels.getType());
    Value ignore = ConstantOp::create(
        builder, loc,
        SplatElementsAttr::get(RankedTensorType::get({}, labelType.getElementType()),
                               builder.getIntegerAttr(labelType.getElementType(),
                                                      loss.getIgnoreIndex())));
    Value valid = CmpOp::create(builder, loc, CmpPredicate::ne, labels, ignore);
    Type f32 = builder.getF32Type();
    Value ones = CastOp::create(builder, loc, valid, f32);
    auto axes = llvm::to_vector(llvm::seq<int64_t>(0, labelType.getRank()));
    Value total = ReduceSumOp::create(builder, loc, ones, axes, false);
    countReturn->setOperands(total);
    count.setType(builder.getFunctionType(count.getArgumentTypes(), {total.getType()}));
    count.setResultAttrs(0, builder.getDictionaryAttr(builder.getNamedAttr(
                                kNameAttr, builder.getStringAttr("tokens"))));
    eraseDeadOps(count);

    // The forward: sum over this micro-batch, times loss_scale.
    Type lossType = loss.getType();
    if (failed(forward.insertArgument(
            forward.getNumArguments(), lossType,
            builder.getDictionaryAttr(builder.getNamedAttr(
                kNameAttr, builder.getStringAttr("loss_scale"))),
            loc)))
      return signalPassFailure();
    loss.setReduction(Reduction::sum);
    builder.setInsertionPoint(returnOp);
    Value scaled = MulOp::create(builder, loc, loss.getResult(),
                                 forward.getArgument(forward.getNumArguments() - 1));
    returnOp->setOperands(scaled);
  }
};

} // namespace
