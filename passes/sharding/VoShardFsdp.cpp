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
  int64_t dp, fsdp, sp, ep;
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

/// How one parameter is sharded: over (fsdp, sp), or, for expert weights
/// split over ep (vo.expert_shard), their block over the ep_fsdp ranks that
/// own the same experts; `count` is what one rank's reads hold.
struct ShardPlan {
  int64_t group;
  ArrayAttr axes;
  int64_t count;
  int64_t elements() const { return (count + group - 1) / group; }
};

ShardPlan planFor(Builder &b, ParameterOp param, const Mesh &mesh) {
  int64_t count = param.getTensorType().getNumElements();
  if (!param->hasAttr(kExpertShardAttr))
    return {mesh.group(), mesh.axes(b, false, true), count};
  int64_t group = mesh.group() / mesh.ep;
  SmallVector<StringRef> axes;
  if (group > 1)
    axes.push_back("ep_fsdp");
  return {group, b.getStrArrayAttr(axes), count / mesh.ep};
}

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
    if (dp < 1 || fsdp < 1 || sp < 1 || ep < 1 || (fsdp * sp) % ep != 0) {
      module.emitError() << "vo-shard-fsdp: degrees must be >= 1 and ep must "
                            "divide fsdp*sp, got dp="
                         << int64_t(dp) << " fsdp=" << int64_t(fsdp) << " sp=" << int64_t(sp)
                         << " ep=" << int64_t(ep);
      return signalPassFailure();
    }
    Mesh mesh{dp, fsdp, sp, ep};
    for (auto param : module.getOps<ParameterOp>()) {
      auto experts = param->getAttrOfType<DictionaryAttr>(kExpertShardAttr);
      auto group = experts ? experts.getAs<IntegerAttr>("group_size") : IntegerAttr();
      if (experts && (!group || group.getInt() != ep)) {
        param.emitOpError() << "is split over ep by vo-shard-experts, but "
                               "vo-shard-fsdp runs with ep="
                            << int64_t(ep);
        return signalPassFailure();
      }
    }
    OpBuilder b(module.getContext());
    module->setAttr(kMeshAttr,
                    b.getDictionaryAttr({b.getNamedAttr("dp", b.getI64IntegerAttr(dp)),
                                         b.getNamedAttr("fsdp", b.getI64IntegerAttr(fsdp)),
                                         b.getNamedAttr("sp", b.getI64IntegerAttr(sp)),
                                         b.getNamedAttr("ep", b.getI64IntegerAttr(ep))}));
    if (mesh.world() == 1)
      return;
    auto backward = module.lookupSymbol<func::FuncOp>("forward_backward");
    if (!backward) {
      module.emitError("vo-shard-fsdp expects @forward_backward (run "
                       "vo-autodiff first)");
      return signalPassFailure();
    }

    // Parameter shards.
    if (mesh.group() > 1) {
      DenseMap<StringAttr, ShardPlan> plans;
      for (auto param : module.getOps<ParameterOp>()) {
        ShardPlan plan = planFor(b, param, mesh);
        plans.try_emplace(param.getSymNameAttr(), plan);
        param->setAttr(kShardAttr,
                       b.getDictionaryAttr(
                           {b.getNamedAttr("mesh_axes", plan.axes),
                            b.getNamedAttr("group_size", b.getI64IntegerAttr(plan.group)),
                            b.getNamedAttr("elements",
                                           b.getI64IntegerAttr(plan.elements()))}));
      }
      shardParameterReads(b, backward, plans);
      if (failed(scatterGradients(b, module, backward, plans)))
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
  void shardParameterReads(OpBuilder &b, func::FuncOp func,
                           const DenseMap<StringAttr, ShardPlan> &plans) {
    SmallVector<ParamOp> reads;
    func.walk([&](ParamOp read) { reads.push_back(read); });
    for (ParamOp read : reads) {
      auto type = cast<RankedTensorType>(read.getType());
      const ShardPlan &plan = plans.at(read.getNameAttr().getAttr());
      int64_t group = plan.group;
      int64_t count = type.getNumElements();
      int64_t elements = plan.elements();
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
        Value full = group == 1 ? shard
                                : Value(AllGatherOp::create(b, loc, shard, plan.axes,
                                                            group, 0));
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
                                 func::FuncOp func,
                                 const DenseMap<StringAttr, ShardPlan> &plans) {
    auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
    b.setInsertionPoint(ret);
    Location loc = ret.getLoc();
    SmallVector<Value> results(ret.getOperands());
    for (unsigned i = 1; i < results.size(); ++i) {
      auto name = func.getResultAttrOfType<StringAttr>(i, kNameAttr);
      if (!name || !name.getValue().starts_with("grad."))
        return func.emitError() << "vo-shard-fsdp: result " << i
                                << " of @forward_backward is not a gradient";
      auto it = plans.find(b.getStringAttr(name.getValue().drop_front(5)));
      if (it == plans.end())
        return func.emitError() << "vo-shard-fsdp: result " << i << " (" << name
                                << ") names no parameter";
      const ShardPlan &plan = it->second;
      int64_t group = plan.group;
      auto type = cast<RankedTensorType>(results[i].getType());
      int64_t count = type.getNumElements();
      int64_t elements = plan.elements();
      Value flat = ReshapeOp::create(b, loc, results[i], ArrayRef<int64_t>{count});
      if (elements * group != count) {
        auto padType = RankedTensorType::get({elements * group - count},
                                             type.getElementType());
        Value zeros = ConstantOp::create(
            b, loc,
            SplatElementsAttr::get(padType, b.getFloatAttr(type.getElementType(), 0.0)));
        flat = ConcatOp::create(b, loc, ValueRange{flat, zeros}, 0);
      }
      results[i] = group == 1 ? flat
                              : Value(ReduceScatterOp::create(b, loc, flat, plan.axes,
                                                              group, 0));
    }
    ret->setOperands(results);
    func.setType(b.getFunctionType(func.getArgumentTypes(),
                                   ValueRange(results).getTypes()));
    return success();
  }
};

} // namespace
