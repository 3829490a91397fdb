//===- VoKeepMoeProjections.cpp - keep MoE gate/up projections for backward ===//
//
// vo.moe_experts_grad recomputes the forward's first half: the routing and
// the gate/up projection of every routed row, two thirds of the forward's
// FLOPs. Keeping that projection from the forward costs its bytes
// ([T*k, 2I] f32) from the forward to the backward, and saves the GEMM.
//
//===----------------------------------------------------------------------===//

#include "dialects/vo/VoOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/STLExtras.h"

namespace veomni {
#define GEN_PASS_DEF_VOKEEPMOEPROJECTIONS
#include "passes/Passes.h.inc"
} // namespace veomni

using namespace mlir;
using namespace veomni::vo;

namespace {

bool expertParallel(Operation *op) {
  auto size = op->getAttrOfType<IntegerAttr>("group_size");
  return size && size.getInt() > 1;
}

struct VoKeepMoeProjectionsPass
    : veomni::impl::VoKeepMoeProjectionsBase<VoKeepMoeProjectionsPass> {
  void runOnOperation() override {
    OpBuilder b(&getContext());
    getOperation().walk([&](MoeExpertsGradOp grad) {
      if (grad.getProjected() || expertParallel(grad))
        return;
      // The forward of the same operands, earlier in the same block.
      MoeExpertsOp forward;
      for (Operation *user : grad.getInput().getUsers()) {
        auto candidate = dyn_cast<MoeExpertsOp>(user);
        if (candidate && candidate->getBlock() == grad->getBlock() &&
            candidate->isBeforeInBlock(grad) &&
            llvm::equal(candidate->getOperands(), grad->getOperands().take_front(5)))
          forward = candidate;
      }
      if (!forward || expertParallel(forward))
        return;
      if (!forward.getProjected()) {
        b.setInsertionPoint(forward);
        auto kept = MoeExpertsOp::create(b, forward.getLoc(), forward.getInput(),
                                         forward.getExperts(), forward.getWeights(),
                                         forward.getGateUp(), forward.getDown(),
                                         forward.getMeshAxesAttr(), forward.getGroupSizeAttr(),
                                         /*keep_projected=*/true);
        forward.getResult().replaceAllUsesWith(kept.getResult());
        forward.erase();
        forward = kept;
      }
      b.setInsertionPoint(grad);
      auto reading = MoeExpertsGradOp::create(
          b, grad.getLoc(), grad.getInput(), grad.getExperts(), grad.getWeights(),
          grad.getGateUp(), grad.getDown(), grad.getResultGrad(), forward.getProjected(),
          grad.getMeshAxesAttr(), grad.getGroupSizeAttr());
      grad->replaceAllUsesWith(reading->getResults());
      grad.erase();
    });
  }
};

} // namespace
