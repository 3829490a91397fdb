//===- VoBf16Matmuls.cpp - f32 matmuls on bf16 roundings of their operands ===//
//
// Mixed precision as the GPU runs it (bf16 products, f32 accumulation), made
// explicit so that a value is rounded once for all the matmuls that read it,
// not once per launch, and so that the backward can keep the half-size
// rounding of an activation instead of the f32 value.
//
//===----------------------------------------------------------------------===//

#include "dialects/vo/VoOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"

#include <limits>

namespace veomni {
#define GEN_PASS_DEF_VOBF16MATMULS
#include "passes/Passes.h.inc"
} // namespace veomni

using namespace mlir;
using namespace veomni::vo;

namespace {

RankedTensorType typeOf(Value value) {
  return cast<RankedTensorType>(value.getType());
}

/// The value `value` reshapes, through any chain of vo.reshape.
Value reshapeRoot(Value value) {
  while (auto reshape = value.getDefiningOp<ReshapeOp>())
    value = reshape.getInput();
  return value;
}

/// One operand of a matmul this pass rewrites.
struct MatmulOperand {
  MatmulOp matmul;
  unsigned index; // 0: lhs, 1: rhs
};

struct VoBf16MatmulsPass
    : veomni::impl::VoBf16MatmulsBase<VoBf16MatmulsPass> {
  using VoBf16MatmulsBase::VoBf16MatmulsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (maxOperandBytes <= 0) {
      module.emitError() << "vo-bf16-matmuls: max-operand-bytes must be > 0, got "
                         << static_cast<int64_t>(maxOperandBytes);
      return signalPassFailure();
    }
    for (auto func : module.getOps<func::FuncOp>())
      for (Block &block : func.getBody())
        rewriteBlock(block);
  }

  /// Whether this pass gives `op` bf16 operands.
  bool rounds(MatmulOp op) const {
    if (op.getF32Result())
      return false;
    for (Value operand : {op.getLhs(), op.getRhs()}) {
      RankedTensorType type = typeOf(operand);
      if (!type.getElementType().isF32() ||
          2 * type.getNumElements() > static_cast<int64_t>(maxOperandBytes))
        return false;
    }
    return true;
  }

  void rewriteBlock(Block &block) {
    DenseMap<Operation *, int64_t> position;
    int64_t next = 0;
    for (Operation &op : block)
      position[&op] = next++;
    SmallVector<MatmulOp> matmuls;
    llvm::MapVector<Value, SmallVector<MatmulOperand>> byRoot;
    for (Operation &op : block) {
      auto matmul = dyn_cast<MatmulOp>(&op);
      if (!matmul || !rounds(matmul))
        continue;
      matmuls.push_back(matmul);
      for (unsigned index : {0u, 1u})
        byRoot[reshapeRoot(matmul->getOperand(index))].push_back({matmul, index});
    }
    if (matmuls.empty())
      return;
    DenseSet<Operation *> rounding;
    for (MatmulOp matmul : matmuls)
      rounding.insert(matmul);

    // The bf16 operands, filled per matmul operand.
    DenseMap<std::pair<Operation *, unsigned>, Value> rounded;
    OpBuilder b(block.getParentOp()->getContext());
    Type bf16 = b.getBF16Type();
    for (auto &[root, operands] : byRoot) {
      Operation *producer = root.getDefiningOp();
      if (producer && producer->getBlock() == &block && sharesRounding(root, position, rounding)) {
        b.setInsertionPointAfter(producer);
        Value shared = CastOp::create(b, producer->getLoc(), root, TypeAttr::get(bf16));
        for (const MatmulOperand &use : operands) {
          // Replay the operand's reshapes on the rounding, at the matmul.
          SmallVector<ReshapeOp> chain;
          for (Value v = use.matmul->getOperand(use.index); v != root;
               v = v.getDefiningOp<ReshapeOp>().getInput())
            chain.push_back(v.getDefiningOp<ReshapeOp>());
          b.setInsertionPoint(use.matmul);
          Value value = shared;
          for (ReshapeOp reshape : llvm::reverse(chain))
            value = ReshapeOp::create(b, reshape.getLoc(), value, reshape.getShape());
          rounded[{use.matmul, use.index}] = value;
        }
      } else {
        for (const MatmulOperand &use : operands) {
          b.setInsertionPoint(use.matmul);
          Value operand = use.matmul->getOperand(use.index);
          rounded[{use.matmul, use.index}] =
              CastOp::create(b, use.matmul->getLoc(), operand, TypeAttr::get(bf16));
        }
      }
    }
    for (MatmulOp matmul : matmuls) {
      b.setInsertionPoint(matmul);
      auto replacement = MatmulOp::create(
          b, matmul.getLoc(), rounded.lookup({matmul, 0u}), rounded.lookup({matmul, 1u}),
          matmul.getTransposeLhs(), matmul.getTransposeRhs(), /*f32_result=*/true);
      matmul.getResult().replaceAllUsesWith(replacement.getResult());
      matmul.erase();
    }
    // Reshapes that only fed the old operands.
    for (Operation &op : llvm::make_early_inc_range(llvm::reverse(block)))
      if (isa<ReshapeOp>(op) && op.use_empty())
        op.erase();
  }

  /// Whether `root` (a value of an op) is rounded once after its op: when
  /// its readers other than the rounded matmuls are done within the first
  /// half of its life, so its f32 bytes free early and only the rounding
  /// (half the bytes) lives on to the last matmul. Otherwise the f32 value
  /// lives to its end anyway and a rounding at each matmul adds nothing to
  /// memory.
  static bool sharesRounding(Value root, const DenseMap<Operation *, int64_t> &position,
                             const DenseSet<Operation *> &rounding) {
    int64_t born = position.lookup(root.getDefiningOp());
    int64_t lastMatmul = born, lastOther = born;
    SmallVector<Value> values{root};
    while (!values.empty()) {
      Value value = values.pop_back_val();
      for (OpOperand &use : value.getUses()) {
        Operation *user = use.getOwner();
        auto found = position.find(user);
        // A reader outside the block: treat the value as live to the end.
        int64_t at = found == position.end() ? std::numeric_limits<int64_t>::max()
                                             : found->second;
        if (isa<ReshapeOp>(user)) {
          values.push_back(user->getResult(0));
        } else if (rounding.contains(user)) {
          lastMatmul = std::max(lastMatmul, at);
        } else {
          lastOther = std::max(lastOther, at);
        }
      }
    }
    return lastOther - born < (lastMatmul - born) / 2;
  }
};

} // namespace
