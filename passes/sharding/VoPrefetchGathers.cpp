//===- VoPrefetchGathers.cpp - Issue FSDP gathers ahead of their use ------===//
//
// vo-shard-fsdp gathers each parameter right before its use, so the kernel
// that reads it waits for the whole transfer. Issued a few gathers earlier,
// the transfer runs on the communicator's stream while the kernels before
// the use compute (the runtime joins per collective, where a kernel touches
// its bytes).
//
//===----------------------------------------------------------------------===//

#include "dialects/vo/VoOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SetVector.h"

namespace veomni {
#define GEN_PASS_DEF_VOPREFETCHGATHERS
#include "passes/Passes.h.inc"
} // namespace veomni

using namespace mlir;
using namespace veomni::vo;

namespace {

/// Ops a gathered weight passes through on its way to its reader, and that
/// make the gather's input from the shard: cheap, no kernel worth hiding.
bool isDataMovement(Operation *op) {
  return isa<ReshapeOp, SliceOp, TransposeOp, CastOp>(op);
}

/// The most ops a gather takes along when it moves (the shard's rounding and
/// a reshape or two): anything longer is real work, not a weight's input.
constexpr size_t kMaxMovedInputOps = 8;

/// `op` itself or its ancestor in `block`.
Operation *inBlock(Operation *op, Block &block) {
  return block.findAncestorOpInBlock(*op);
}

/// The first op of `block` that reads `gather`'s value other than through
/// data movement (or, when only data movement reads it, the first of those).
Operation *firstReader(AllGatherOp gather, Block &block) {
  Operation *reader = nullptr, *firstMove = nullptr;
  SmallVector<Value> work{gather.getResult()};
  while (!work.empty()) {
    Value value = work.pop_back_val();
    for (Operation *user : value.getUsers()) {
      Operation *op = inBlock(user, block);
      if (!op)
        continue;
      if (isDataMovement(user) && user->getBlock() == &block) {
        if (!firstMove || user->isBeforeInBlock(firstMove))
          firstMove = user;
        llvm::append_range(work, user->getResults());
        continue;
      }
      if (!reader || op->isBeforeInBlock(reader))
        reader = op;
    }
  }
  return reader ? reader : firstMove;
}

struct VoPrefetchGathersPass
    : veomni::impl::VoPrefetchGathersBase<VoPrefetchGathersPass> {
  using VoPrefetchGathersBase::VoPrefetchGathersBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (depth < 0) {
      module.emitError() << "vo-prefetch-gathers: depth must be >= 0, got "
                         << static_cast<int64_t>(depth);
      return signalPassFailure();
    }
    if (depth == 0)
      return;
    for (auto func : module.getOps<func::FuncOp>())
      for (Block &block : func.getBody())
        prefetch(block);
  }

  void prefetch(Block &block) {
    SmallVector<AllGatherOp> gathers(block.getOps<AllGatherOp>());
    // Readers of the gathers in their original order: moving a gather
    // leaves its readers where they are.
    SmallVector<Operation *> readers;
    for (AllGatherOp gather : gathers)
      readers.push_back(firstReader(gather, block));
    for (size_t i = static_cast<size_t>(depth); i < gathers.size(); ++i) {
      Operation *anchor = readers[i - depth];
      if (anchor)
        moveBefore(gathers[i], anchor);
    }
  }

  /// Moves `gather`, with the ops of `block` after `anchor` that make its
  /// input, right before `anchor`; where one of those cannot move, only up
  /// to right after it.
  static void moveBefore(AllGatherOp gather, Operation *anchor) {
    Block &block = *gather->getBlock();
    while (anchor && anchor != gather && anchor->isBeforeInBlock(gather)) {
      llvm::SetVector<Operation *> inputs;
      Operation *blocker = nullptr;
      SmallVector<Value> work(gather->getOperands());
      while (!work.empty() && !blocker) {
        Operation *def = work.pop_back_val().getDefiningOp();
        if (!def || def->getBlock() != &block || def->isBeforeInBlock(anchor) ||
            !inputs.insert(def))
          continue;
        if (def == anchor || !isMemoryEffectFree(def) || def->getNumRegions() ||
            inputs.size() > kMaxMovedInputOps) {
          blocker = def;
          break;
        }
        llvm::append_range(work, def->getOperands());
      }
      if (blocker) {
        // Try again from right after the latest op the input needs.
        Operation *latest = blocker;
        for (Operation *op : inputs)
          if (latest->isBeforeInBlock(op))
            latest = op;
        anchor = latest->getNextNode();
        continue;
      }
      SmallVector<Operation *> ordered(inputs.begin(), inputs.end());
      llvm::sort(ordered, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
      for (Operation *op : ordered)
        op->moveBefore(anchor);
      gather->moveBefore(anchor);
      return;
    }
  }
};

} // namespace
