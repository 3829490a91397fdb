//===- VoShardExperts.cpp - expert parallelism for MoE layers -------------===//
//
// Splits every MoE layer's experts over the ep group: each member keeps E/ep
// consecutive experts (reads and gradients of the expert weights become that
// block), and vo.moe_experts / vo.moe_experts_grad are marked to exchange
// each (token, slot) with its expert's owner at run time.
//
//===----------------------------------------------------------------------===//

#include "dialects/vo/VoOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace veomni {
#define GEN_PASS_DEF_VOSHARDEXPERTS
#include "passes/Passes.h.inc"
} // namespace veomni

using namespace mlir;
using namespace veomni::vo;

namespace {

/// Operand indices of the expert weights in both MoE ops.
constexpr unsigned kGateUp = 3, kDown = 4;

RankedTensorType localType(RankedTensorType full, int64_t ep) {
  SmallVector<int64_t> shape(full.getShape());
  shape[0] /= ep;
  return RankedTensorType::get(shape, full.getElementType());
}

struct VoShardExpertsPass
    : veomni::impl::VoShardExpertsBase<VoShardExpertsPass> {
  using VoShardExpertsBase::VoShardExpertsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (ep < 1) {
      module.emitError() << "vo-shard-experts: ep must be >= 1, got " << int64_t(ep);
      return signalPassFailure();
    }
    if (ep == 1)
      return;
    auto backward = module.lookupSymbol<func::FuncOp>("forward_backward");
    if (!backward) {
      module.emitError("vo-shard-experts expects @forward_backward (run "
                       "vo-autodiff first)");
      return signalPassFailure();
    }

    // The MoE ops of every function (@forward too, so the module stays
    // valid), in order.
    SmallVector<Operation *> moeOps;
    module.walk([&](Operation *op) {
      if (isa<MoeExpertsOp, MoeExpertsGradOp>(op))
        moeOps.push_back(op);
    });
    // Layers are numbered per function, by their vo.moe_experts in order.
    DenseMap<func::FuncOp, int> layers;
    bool anyInBackward = false;
    for (Operation *op : moeOps) {
      auto func = op->getParentOfType<func::FuncOp>();
      anyInBackward |= func == backward;
      int &layer = layers[func];
      if (isa<MoeExpertsOp>(op))
        ++layer;
      if (failed(checkOp(op, layer)))
        return signalPassFailure();
    }
    if (!anyInBackward) {
      module.emitError() << "vo-shard-experts: ep=" << int64_t(ep)
                         << " but @forward_backward has no vo.moe_experts";
      return signalPassFailure();
    }

    // The expert parameters, each read only as one layer's expert weights.
    llvm::SetVector<ParameterOp> experts;
    for (Operation *op : moeOps)
      for (unsigned index : {kGateUp, kDown})
        experts.insert(module.lookupSymbol<ParameterOp>(
            op->getOperand(index).getDefiningOp<ParamOp>().getNameAttr()));
    for (ParameterOp parameter : experts)
      if (failed(checkReads(module, parameter)))
        return signalPassFailure();

    OpBuilder b(module.getContext());
    for (ParameterOp parameter : experts) {
      parameter->setAttr(kExpertShardAttr,
                         b.getDictionaryAttr(b.getNamedAttr(
                             "group_size", b.getI64IntegerAttr(ep))));
      RankedTensorType local = localType(parameter.getTensorType(), ep);
      module.walk([&](ParamOp read) {
        if (read.getName() == parameter.getSymName())
          read.getResult().setType(local);
      });
    }
    ArrayAttr axes = b.getStrArrayAttr({"ep"});
    for (Operation *op : moeOps) {
      op->setAttr("mesh_axes", axes);
      op->setAttr("group_size", b.getI64IntegerAttr(ep));
      if (auto grad = dyn_cast<MoeExpertsGradOp>(op)) {
        grad.getGateUpGrad().setType(grad.getGateUp().getType());
        grad.getDownGrad().setType(grad.getDown().getType());
      }
    }
    if (failed(retypeGradients(backward, experts)))
      return signalPassFailure();
  }

  LogicalResult checkOp(Operation *op, int layer) {
    for (unsigned index : {kGateUp, kDown})
      if (!op->getOperand(index).getDefiningOp<ParamOp>())
        return op->emitOpError()
               << "under ep=" << int64_t(ep)
               << ": expects its expert weights to be parameters (vo.param)";
    int64_t count =
        cast<RankedTensorType>(op->getOperand(kGateUp).getType()).getDimSize(0);
    if (count % ep != 0)
      return op->emitOpError() << "ep=" << int64_t(ep) << " does not divide " << count
                               << " experts in layer " << layer;
    return success();
  }

  /// Every read of an expert parameter feeds only expert-weight operands, of
  /// one layer's vo.moe_experts and its gradient per function.
  LogicalResult checkReads(ModuleOp module, ParameterOp parameter) {
    LogicalResult result = success();
    DenseMap<func::FuncOp, int> forwardUses;
    module.walk([&](ParamOp read) {
      if (failed(result) || read.getName() != parameter.getSymName())
        return;
      for (OpOperand &use : read.getResult().getUses()) {
        Operation *user = use.getOwner();
        bool weight = isa<MoeExpertsOp, MoeExpertsGradOp>(user) &&
                      (use.getOperandNumber() == kGateUp ||
                       use.getOperandNumber() == kDown);
        if (!weight) {
          result = read.emitOpError()
                   << "reads expert weights @" << parameter.getSymName()
                   << " for '" << user->getName()
                   << "'; under ep they may only feed vo.moe_experts";
          return;
        }
        if (isa<MoeExpertsOp>(user) &&
            ++forwardUses[user->getParentOfType<func::FuncOp>()] > 1) {
          result = read.emitOpError()
                   << "expert weights @" << parameter.getSymName()
                   << " are shared by two MoE layers, which ep does not split";
          return;
        }
      }
    });
    return result;
  }

  /// Returned gradients of expert weights are now the member's block.
  LogicalResult retypeGradients(func::FuncOp backward,
                                const llvm::SetVector<ParameterOp> &experts) {
    auto ret = cast<func::ReturnOp>(backward.getBody().front().getTerminator());
    for (unsigned i = 1; i < ret.getNumOperands(); ++i) {
      auto name = backward.getResultAttrOfType<StringAttr>(i, kNameAttr);
      if (!name || !name.getValue().starts_with("grad."))
        continue;
      StringRef param = name.getValue().drop_front(5);
      bool expert = llvm::any_of(experts, [&](ParameterOp p) {
        return p.getSymName() == param;
      });
      if (expert && !ret.getOperand(i).getDefiningOp<MoeExpertsGradOp>())
        return ret.emitOpError()
               << "returns the gradient of expert weights @" << param
               << " from something other than vo.moe_experts_grad";
    }
    backward.setType(FunctionType::get(backward.getContext(),
                                       backward.getArgumentTypes(),
                                       ret.getOperandTypes()));
    return success();
  }
};

} // namespace
