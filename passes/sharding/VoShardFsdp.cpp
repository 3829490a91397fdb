//===- VoShardFsdp.cpp - FSDP/HSDP parameter and gradient sharding --------===//
//
// ZeRO-3 on the training step: each rank keeps 1/G of every parameter (and,
// through vo-optimizer, of its gradient accumulator and moments). A use of a
// parameter gathers it just before the use; a gradient is summed over the
// group and scattered so each rank keeps the part its shard updates.
//
//===----------------------------------------------------------------------===//

#include "dialects/vo/VoOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace veomni {
#define GEN_PASS_DEF_VOSHARDFSDP
#include "passes/Passes.h.inc"
} // namespace veomni

using namespace mlir;
using namespace veomni::vo;

namespace {

struct Mesh {
  int64_t dp, fsdp, sp;
  int64_t group() const { return fsdp * sp; }
  int64_t world() const { return dp * fsdp * sp; }
  /// Names of the axes among {dp, fsdp, sp} selected, with degree > 1.
  ArrayAttr axes(Builder &b, bool withDp, bool withShard) const {
    SmallVector<Attribute> names;
    if (withDp && dp > 1)
      names.push_back(b.getStringAttr("dp"));
    if (withShard && fsdp > 1)
      names.push_back(b.getStringAttr("fsdp"));
    if (withShard && sp > 1)
      names.push_back(b.getStringAttr("sp"));
    return b.getArrayAttr(names);
  }
};

/// Sums a scalar result over every rank.
void sumOverWorld(OpBuilder &b, func::ReturnOp ret, unsigned index,
                  const Mesh &mesh) {
  b.setInsertionPoint(ret);
  Value value = ret.getOperand(index);
  Value total = AllReduceOp::create(b, ret.getLoc(), value,
                                    mesh.axes(b, true, true), mesh.world());
  ret.setOperand(index, total);
}

struct VoShardFsdpPass : veomni::impl::VoShardFsdpBase<VoShardFsdpPass> {
  using VoShardFsdpBase::VoShardFsdpBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (dp < 1 || fsdp < 1 || sp < 1) {
      module.emitError() << "vo-shard-fsdp: degrees must be >= 1, got dp="
                         << dp << " fsdp=" << fsdp << " sp=" << sp;
      return signalPassFailure();
    }
    Mesh mesh{dp, fsdp, sp};
    OpBuilder b(module.getContext());
    module->setAttr(kMeshAttr,
                    b.getDictionaryAttr({b.getNamedAttr("dp", b.getI64IntegerAttr(dp)),
                                         b.getNamedAttr("fsdp", b.getI64IntegerAttr(fsdp)),
                                         b.getNamedAttr("sp", b.getI64IntegerAttr(sp))}));
    if (mesh.world() == 1)
      return;
    auto backward = module.lookupSymbol<func::FuncOp>("forward_backward");
    if (!backward) {
      module.emitError("vo-shard-fsdp expects @forward_backward (run "
                       "vo-autodiff first)");
      return signalPassFailure();
    }

    // Parameter shards.
    int64_t group = mesh.group();
    ArrayAttr shardAxes = mesh.axes(b, false, true);
    if (group > 1) {
      for (auto param : module.getOps<ParameterOp>()) {
        int64_t elements = (param.getTensorType().getNumElements() + group - 1) / group;
        param->setAttr(kShardAttr,
                       b.getDictionaryAttr(
                           {b.getNamedAttr("mesh_axes", shardAxes),
                            b.getNamedAttr("group_size", b.getI64IntegerAttr(group)),
                            b.getNamedAttr("elements", b.getI64IntegerAttr(elements))}));
      }
      shardParameterReads(b, backward, group, shardAxes);
      if (failed(scatterGradients(b, module, backward, group, shardAxes)))
        return signalPassFailure();
    }

    // The step's loss and token count are sums over all ranks.
    auto ret = cast<func::ReturnOp>(backward.getBody().front().getTerminator());
    sumOverWorld(b, ret, 0, mesh);
    if (auto count = module.lookupSymbol<func::FuncOp>("count_tokens"))
      sumOverWorld(b, cast<func::ReturnOp>(count.getBody().front().getTerminator()),
                   0, mesh);
  }

  /// vo.param @p -> one vo.param_shard, and an all-gather (then unpadding
  /// and reshaping) in front of each use.
  void shardParameterReads(OpBuilder &b, func::FuncOp func, int64_t group,
                           ArrayAttr axes) {
    SmallVector<ParamOp> reads;
    func.walk([&](ParamOp read) { reads.push_back(read); });
    for (ParamOp read : reads) {
      auto type = cast<RankedTensorType>(read.getType());
      int64_t count = type.getNumElements();
      int64_t elements = (count + group - 1) / group;
      b.setInsertionPoint(read);
      Value shard = ParamShardOp::create(
          b, read.getLoc(), RankedTensorType::get({elements}, type.getElementType()),
          read.getNameAttr());
      SmallVector<OpOperand *> uses;
      for (OpOperand &use : read.getResult().getUses())
        uses.push_back(&use);
      for (OpOperand *use : uses) {
        b.setInsertionPoint(use->getOwner());
        Location loc = use->getOwner()->getLoc();
        Value full = AllGatherOp::create(b, loc, shard, axes, group, 0);
        if (elements * group != count)
          full = SliceOp::create(b, loc, full, ArrayRef<int64_t>{0},
                                 ArrayRef<int64_t>{count}, ArrayRef<int64_t>{1});
        use->set(ReshapeOp::create(b, loc, full, type.getShape()));
      }
      read.erase();
    }
  }

  /// Gradient results ("grad.<p>") -> this rank's shard of their sum.
  LogicalResult scatterGradients(OpBuilder &b, ModuleOp module,
                                 func::FuncOp func, int64_t group,
                                 ArrayAttr axes) {
    auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
    b.setInsertionPoint(ret);
    Location loc = ret.getLoc();
    SmallVector<Value> results(ret.getOperands());
    for (unsigned i = 1; i < results.size(); ++i) {
      auto name = func.getResultAttrOfType<StringAttr>(i, kNameAttr);
      if (!name || !name.getValue().starts_with("grad."))
        return func.emitError() << "vo-shard-fsdp: result " << i
                                << " of @forward_backward is not a gradient";
      auto type = cast<RankedTensorType>(results[i].getType());
      int64_t count = type.getNumElements();
      int64_t elements = (count + group - 1) / group;
      Value flat = ReshapeOp::create(b, loc, results[i], ArrayRef<int64_t>{count});
      if (elements * group != count) {
        auto padType = RankedTensorType::get({elements * group - count},
                                             type.getElementType());
        Value zeros = ConstantOp::create(
            b, loc,
            SplatElementsAttr::get(padType, b.getFloatAttr(type.getElementType(), 0.0)));
        flat = ConcatOp::create(b, loc, ValueRange{flat, zeros}, 0);
      }
      results[i] = ReduceScatterOp::create(b, loc, flat, axes, group, 0);
    }
    ret->setOperands(results);
    func.setType(b.getFunctionType(func.getArgumentTypes(),
                                   ValueRange(results).getTypes()));
    return success();
  }
};

} // namespace
