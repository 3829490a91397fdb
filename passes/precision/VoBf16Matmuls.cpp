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
#include "llvm/ADT/STLExtras.h"

#include <array>
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

  /// Whether this pass gives `op` (an f32 product) bf16 operands.
  bool rounds(MatmulOp op) const {
    for (Value operand : {op.getLhs(), op.getRhs()}) {
      RankedTensorType type = typeOf(operand);
      if (!type.getElementType().isF32())
        return false;
      // A weight's rounding is at most a copy of a parameter (the output
      // projection's: vocab x hidden), made right before its reader; under
      // FSDP it halves what the gather moves.
      Value root = reshapeRoot(operand);
      if (2 * type.getNumElements() > static_cast<int64_t>(maxOperandBytes) &&
          !persistent(root) && !returnsBf16(root))
        return false;
    }
    return true;
  }

  /// Whether `root`'s op can return its bf16 rounding itself, and only
  /// matmuls read it (through reshapes): then the rounding costs no copy,
  /// whatever its size. The loss gradient over the vocabulary is one.
  static bool returnsBf16(Value root) {
    auto grad = root.getDefiningOp<CrossEntropyGradOp>();
    if (!grad || grad.getBf16Result())
      return false;
    SmallVector<Value> values{root};
    while (!values.empty()) {
      for (Operation *user : values.pop_back_val().getUsers()) {
        if (isa<ReshapeOp>(user))
          values.push_back(user->getResult(0));
        else if (!isa<MatmulOp>(user))
          return false;
      }
    }
    return true;
  }

  /// Whether every matmul reading `root` (through reshapes) is in `rounding`.
  static bool onlyRoundedMatmulsRead(Value root, const DenseSet<Operation *> &rounding) {
    SmallVector<Value> values{root};
    while (!values.empty()) {
      for (Operation *user : values.pop_back_val().getUsers()) {
        if (isa<ReshapeOp>(user))
          values.push_back(user->getResult(0));
        else if (!rounding.contains(user))
          return false;
      }
    }
    return true;
  }

  /// An f32 parameter's embedding lookup reads its bf16 rounding (made
  /// right before it, like a matmul's weight) and widens the rows it picks
  /// back to f32: the rows are those of the rounded table the output
  /// projection multiplies with, and FSDP gathers the table in bf16.
  static void roundEmbeddingTables(Block &block) {
    SmallVector<EmbeddingOp> lookups;
    for (Operation &op : block)
      if (auto lookup = dyn_cast<EmbeddingOp>(&op);
          lookup && typeOf(lookup.getTable()).getElementType().isF32() &&
          parameter(reshapeRoot(lookup.getTable())))
        lookups.push_back(lookup);
    OpBuilder b(block.getParentOp()->getContext());
    for (EmbeddingOp lookup : lookups) {
      b.setInsertionPoint(lookup);
      Location loc = lookup.getLoc();
      Value table = CastOp::create(b, loc, lookup.getTable(), TypeAttr::get(b.getBF16Type()));
      Value rows = EmbeddingOp::create(b, loc, table, lookup.getIds());
      Value widened = CastOp::create(b, loc, rows, TypeAttr::get(b.getF32Type()));
      lookup.getResult().replaceAllUsesWith(widened);
      lookup.erase();
    }
  }

  /// Whether `value` is a parameter read (whole, or this rank's shard).
  static bool parameter(Value value) {
    return isa_and_nonnull<ParamOp, ParamShardOp>(value.getDefiningOp());
  }

  /// The MoE kernels multiply bf16 roundings of their expert weights
  /// (gate_up, down): when both are f32 parameters, each read for them is
  /// rounded right before its reader, like a matmul's weight, and FSDP then
  /// gathers the rounding. The GPU kernel reads bf16 weights in place, in
  /// 16-byte row chunks: hidden and intermediate sizes not divisible by 8
  /// keep f32 weights, which it rounds into padded copies itself.
  static void roundExpertWeights(Block &block) {
    OpBuilder b(block.getParentOp()->getContext());
    for (Operation &op : block) {
      if (!isa<MoeExpertsOp, MoeExpertsGradOp>(op))
        continue;
      Value gateUp = op.getOperand(3), down = op.getOperand(4);
      ArrayRef<int64_t> shape = typeOf(down).getShape(); // [E, H, I]
      if (!typeOf(gateUp).getElementType().isF32() || !typeOf(down).getElementType().isF32() ||
          !parameter(reshapeRoot(gateUp)) || !parameter(reshapeRoot(down)) ||
          shape.size() != 3 || shape[1] % 8 != 0 || shape[2] % 8 != 0)
        continue;
      b.setInsertionPoint(&op);
      for (unsigned index : {3u, 4u})
        op.setOperand(index, CastOp::create(b, op.getLoc(), op.getOperand(index),
                                            TypeAttr::get(b.getBF16Type())));
    }
  }

  /// SwiGLU's gate and up projections, when nothing but the swiglu and its
  /// gradient reads them and only roundings to bf16 read the swiglu (after
  /// roundMatmuls): the projections then return bf16 (the tensor cores round
  /// their f32 sums), the swiglu computes in f32 from bf16 and returns the
  /// bf16 its readers wanted, and its gradient reads the bf16 gate and up
  /// beside the f32 output gradient. The backward keeps half the bytes of
  /// both projections.
  static void keepSwigluInputsInBf16(Block &block) {
    SmallVector<SwigluOp> swiglus;
    for (Operation &op : block)
      if (auto swiglu = dyn_cast<SwigluOp>(&op))
        swiglus.push_back(swiglu);
    OpBuilder b(block.getParentOp()->getContext());
    for (SwigluOp swiglu : swiglus) {
      auto gate = swiglu.getGate().getDefiningOp<MatmulOp>();
      auto up = swiglu.getUp().getDefiningOp<MatmulOp>();
      auto readers = swiglu.getResult().getUsers();
      if (!gate || !up || gate == up || !gate.getF32Result() || !up.getF32Result() ||
          readers.empty() || !llvm::all_of(readers, [](Operation *user) {
            auto cast = dyn_cast<CastOp>(user);
            return cast && cast.getElementType().isBF16();
          }))
        continue;
      auto onlySwiglu = [&](MatmulOp product) {
        return llvm::all_of(product->getUsers(), [&](Operation *user) {
          if (user == swiglu.getOperation())
            return true;
          auto grad = dyn_cast<SwigluGradOp>(user);
          return grad && grad.getGate() == swiglu.getGate() && grad.getUp() == swiglu.getUp();
        });
      };
      if (!onlySwiglu(gate) || !onlySwiglu(up))
        continue;
      Value halves[2];
      for (auto [i, product] : llvm::enumerate(std::array<MatmulOp, 2>{gate, up})) {
        b.setInsertionPoint(product);
        halves[i] = MatmulOp::create(b, product.getLoc(), product.getLhs(), product.getRhs(),
                                     product.getTransposeLhs(), product.getTransposeRhs(),
                                     /*f32_result=*/false);
      }
      for (Operation *user : llvm::make_early_inc_range(gate->getUsers()))
        if (auto grad = dyn_cast<SwigluGradOp>(user))
          grad->setOperands(0, 2, {halves[0], halves[1]});
      b.setInsertionPoint(swiglu);
      Value product = SwigluOp::create(b, swiglu.getLoc(), halves[0], halves[1]);
      for (Operation *cast : llvm::make_early_inc_range(swiglu.getResult().getUsers())) {
        cast->getResult(0).replaceAllUsesWith(product);
        cast->erase();
      }
      swiglu.erase();
      gate.erase();
      up.erase();
    }
  }

  void rewriteBlock(Block &block) {
    roundEmbeddingTables(block);
    roundExpertWeights(block);
    roundMatmuls(block);
    keepSwigluInputsInBf16(block);
    separatePersistentRoundings(block);
  }

  /// Whether `value` stays in memory anyway: a parameter (or its shard), a
  /// constant, a function argument.
  static bool persistent(Value value) {
    Operation *producer = value.getDefiningOp();
    return !producer || isa<ParamOp, ParamShardOp, ConstantOp>(producer);
  }

  /// One rounding of a persistent value per reader, each right before it.
  /// CSE merges the per-use roundings this pass makes (the forward's copy
  /// of a weight would then live until the backward reads it, or FSDP's
  /// rounded shard through the whole step), so veomni-compile runs the pass
  /// again after CSE, and the memory then is what recomputation simulated.
  static void separatePersistentRoundings(Block &block) {
    SmallVector<CastOp> shared;
    for (Operation &op : block)
      if (auto cast = dyn_cast<CastOp>(&op);
          cast && cast.getElementType().isBF16() && persistent(cast.getInput()) &&
          !cast.getResult().hasOneUse() && !cast.getResult().use_empty())
        shared.push_back(cast);
    OpBuilder b(block.getParentOp()->getContext());
    for (CastOp cast : shared) {
      for (OpOperand &use : llvm::make_early_inc_range(cast.getResult().getUses())) {
        b.setInsertionPoint(use.getOwner());
        use.set(CastOp::create(b, cast.getLoc(), cast.getInput(), cast.getElementTypeAttr()));
      }
      cast.erase();
    }
  }

  void roundMatmuls(Block &block) {
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
    DenseSet<Operation *> rounding;
    for (MatmulOp matmul : matmuls)
      rounding.insert(matmul);
    // A gradient that returns bf16 does so for all its readers or none: a
    // matmul kept f32 (its other operand too large) keeps the f32 gradient,
    // and so do the gradient's other matmuls.
    for (bool changed = true; changed;) {
      changed = false;
      for (auto &[root, operands] : byRoot) {
        if (!returnsBf16(root) || onlyRoundedMatmulsRead(root, rounding))
          continue;
        for (const MatmulOperand &use : operands)
          changed |= rounding.erase(use.matmul);
      }
    }
    if (rounding.size() != matmuls.size()) {
      llvm::erase_if(matmuls, [&](MatmulOp m) { return !rounding.contains(m); });
      llvm::MapVector<Value, SmallVector<MatmulOperand>> kept;
      for (auto &[root, operands] : byRoot)
        for (const MatmulOperand &use : operands)
          if (rounding.contains(use.matmul))
            kept[root].push_back(use);
      byRoot = std::move(kept);
    }
    if (matmuls.empty())
      return;

    // The bf16 operands, filled per matmul operand.
    DenseMap<std::pair<Operation *, unsigned>, Value> rounded;
    OpBuilder b(block.getParentOp()->getContext());
    Type bf16 = b.getBF16Type();
    for (auto &[root, operands] : byRoot) {
      // Parameters and constants stay in memory anyway: a shared rounding
      // would only add its bytes from the forward to the backward (and,
      // under FSDP, keep every gathered weight).
      Operation *producer = root.getDefiningOp();
      const bool producesBf16 = returnsBf16(root);
      if (producesBf16 || (!persistent(root) && producer->getBlock() == &block &&
                           sharesRounding(root, position, rounding))) {
        b.setInsertionPointAfter(producer);
        Value shared;
        if (producesBf16) {
          auto grad = cast<CrossEntropyGradOp>(producer);
          shared = CrossEntropyGradOp::create(
              b, grad.getLoc(), grad.getLogits(), grad.getLabels(), grad.getResultGrad(),
              grad.getIgnoreIndex(), grad.getReduction(), /*bf16_result=*/true);
        } else {
          shared = CastOp::create(b, producer->getLoc(), root, TypeAttr::get(bf16));
        }
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
    // Reshapes that only fed the old operands, and the gradients now
    // returned in bf16.
    for (Operation &op : llvm::make_early_inc_range(llvm::reverse(block)))
      if (isa<ReshapeOp, CrossEntropyGradOp>(op) && op.use_empty())
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
