//===- VoAutodiff.cpp - reverse-mode autodiff over vo ---------------------===//
//
// Clones the loss function and appends its backward: ops are visited in
// reverse, and each op whose result carries a gradient asks its own rule
// (DifferentiableOpInterface) for its operands' gradients. Only values that
// depend on a parameter and reach the loss ("active") get gradients.
//
//===----------------------------------------------------------------------===//

#include "dialects/vo/VoOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"

namespace veomni {
#define GEN_PASS_DEF_VOAUTODIFF
#include "passes/Passes.h.inc"
} // namespace veomni

using namespace mlir;
using namespace veomni::vo;

namespace {

bool isFloatTensor(Value value) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  return type && isa<FloatType>(type.getElementType());
}

/// Values that depend on a parameter and reach `loss`.
DenseSet<Value> findActiveValues(func::FuncOp func, Value loss) {
  DenseSet<Value> varied;
  func.walk([&](Operation *op) {
    bool fromParam = isa<ParamOp>(op) ||
                     llvm::any_of(op->getOperands(), [&](Value operand) {
                       return varied.contains(operand);
                     });
    if (fromParam)
      for (Value result : op->getResults())
        if (isFloatTensor(result))
          varied.insert(result);
  });
  DenseSet<Value> useful = {loss};
  SmallVector<Operation *> ops;
  func.walk([&](Operation *op) { ops.push_back(op); });
  for (Operation *op : llvm::reverse(ops))
    if (llvm::any_of(op->getResults(),
                     [&](Value r) { return useful.contains(r); }))
      for (Value operand : op->getOperands())
        useful.insert(operand);
  DenseSet<Value> active;
  for (Value value : varied)
    if (useful.contains(value))
      active.insert(value);
  return active;
}

struct VoAutodiffPass : veomni::impl::VoAutodiffBase<VoAutodiffPass> {
  using VoAutodiffBase::VoAutodiffBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto forward = module.lookupSymbol<func::FuncOp>(functionName);
    if (!forward) {
      module.emitError() << "vo-autodiff: no function @" << functionName;
      return signalPassFailure();
    }
    if (forward.getNumResults() != 1 || forward.getBody().getBlocks().size() != 1) {
      forward.emitError() << "vo-autodiff expects @" << functionName
                          << " to have one block and return one scalar loss";
      return signalPassFailure();
    }
    auto lossType = dyn_cast<RankedTensorType>(forward.getResultTypes()[0]);
    if (!lossType || lossType.getRank() != 0 ||
        !isa<FloatType>(lossType.getElementType())) {
      forward.emitError() << "vo-autodiff expects a scalar floating-point "
                             "loss, got "
                          << forward.getResultTypes()[0];
      return signalPassFailure();
    }

    OpBuilder builder(module.getContext());
    builder.setInsertionPointAfter(forward);
    auto backward = cast<func::FuncOp>(builder.clone(*forward));
    backward.setSymName(functionName + "_backward");
    auto returnOp = cast<func::ReturnOp>(backward.getBody().front().getTerminator());
    Value loss = returnOp.getOperand(0);
    DenseSet<Value> active = findActiveValues(backward, loss);

    builder.setInsertionPoint(returnOp);
    Location loc = returnOp.getLoc();
    DenseMap<Value, Value> grads;
    grads[loss] = ConstantOp::create(
        builder, loc,
        SplatElementsAttr::get(lossType,
                               builder.getFloatAttr(lossType.getElementType(), 1.0)));

    SmallVector<Operation *> ops;
    for (Operation &op : backward.getBody().front().without_terminator())
      ops.push_back(&op);
    for (Operation *op : llvm::reverse(ops)) {
      // The one result that carries a gradient (ops like vo.moe_gate also
      // return integer results, which never do).
      Value result;
      for (Value r : op->getResults())
        if (grads.count(r)) {
          if (result) {
            op->emitOpError("has gradients on more than one result");
            return signalPassFailure();
          }
          result = r;
        }
      if (!result || isa<ParamOp>(op))
        continue;
      SmallVector<bool> needed;
      for (Value operand : op->getOperands())
        needed.push_back(active.contains(operand));
      if (llvm::none_of(needed, [](bool b) { return b; }))
        continue;
      auto rule = dyn_cast<DifferentiableOpInterface>(op);
      if (!rule) {
        op->emitOpError("has no gradient rule, but lies between a parameter "
                        "and the loss");
        return signalPassFailure();
      }
      SmallVector<Value> operandGrads(op->getNumOperands());
      if (failed(rule.emitGradients(builder, grads[result], needed,
                                    operandGrads)))
        return signalPassFailure();
      for (auto [operand, grad] : llvm::zip(op->getOperands(), operandGrads)) {
        if (!grad || !active.contains(operand))
          continue;
        Value &sum = grads[operand];
        sum = sum ? Value(AddOp::create(builder, loc, sum, grad)) : grad;
      }
    }

    // One gradient per parameter the function reads, summed over its reads.
    llvm::MapVector<StringAttr, Value> paramGrads;
    for (auto parameter : module.getOps<ParameterOp>())
      paramGrads[parameter.getSymNameAttr()] = Value();
    llvm::DenseSet<StringAttr> read;
    backward.walk([&](ParamOp param) {
      StringAttr name = param.getNameAttr().getAttr();
      read.insert(name);
      Value grad = grads.lookup(param.getResult());
      if (!grad)
        return;
      Value &sum = paramGrads[name];
      sum = sum ? Value(AddOp::create(builder, loc, sum, grad)) : grad;
    });

    // A parameter with no differentiable path to the loss gets no gradient
    // and so no update, as PyTorch leaves its .grad None and AdamW skips it
    // (no weight decay either).
    SmallVector<Value> results = {loss};
    SmallVector<Attribute> resultNames = {builder.getStringAttr("loss")};
    for (auto &[name, grad] : paramGrads) {
      if (!read.contains(name) || !grad)
        continue;
      auto parameter = module.lookupSymbol<ParameterOp>(name);
      if (grad.getType() != parameter.getType()) {
        parameter.emitError() << "vo-autodiff: the gradient of @" << name.getValue()
                              << " has type " << grad.getType() << ", not "
                              << parameter.getType();
        return signalPassFailure();
      }
      results.push_back(grad);
      resultNames.push_back(builder.getStringAttr("grad." + name.getValue()));
    }
    func::ReturnOp::create(builder, loc, results);
    returnOp.erase();
    backward.setType(builder.getFunctionType(
        backward.getArgumentTypes(), ValueRange(results).getTypes()));
    for (auto [i, name] : llvm::enumerate(resultNames))
      backward.setResultAttrs(
          i, builder.getDictionaryAttr(builder.getNamedAttr(kNameAttr, name)));
  }
};

} // namespace
