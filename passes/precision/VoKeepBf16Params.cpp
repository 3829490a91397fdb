//===- VoKeepBf16Params.cpp - bf16 copies of weights, kept by the optimizer ===//
//
// vo-bf16-matmuls rounds a weight right before each reader, every step: a
// read of the f32 parameter and a write of its rounding per reader. A copy
// kept beside the parameter costs instead one bf16 write per step, made by
// the optimizer's update while it holds the new value, and the copy's bytes
// for the whole run.
//
//===----------------------------------------------------------------------===//

#include "dialects/vo/VoOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/STLExtras.h"

namespace veomni {
#define GEN_PASS_DEF_VOKEEPBF16PARAMS
#include "passes/Passes.h.inc"
} // namespace veomni

using namespace mlir;
using namespace veomni::vo;

namespace {

struct VoKeepBf16ParamsPass
    : veomni::impl::VoKeepBf16ParamsBase<VoKeepBf16ParamsPass> {
  using VoKeepBf16ParamsBase::VoKeepBf16ParamsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (weights != "experts" && weights != "all") {
      module.emitError() << "vo-keep-bf16-params: weights must be 'experts' or 'all', got '"
                         << weights << "'";
      return signalPassFailure();
    }
    auto step = module.lookupSymbol<func::FuncOp>("optimizer_step");
    if (!step) {
      module.emitError("vo-keep-bf16-params expects @optimizer_step (run vo-optimizer first)");
      return signalPassFailure();
    }

    // The roundings to replace, by parameter.
    llvm::MapVector<StringAttr, SmallVector<CastOp>> roundings;
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func == step)
        continue;
      func.walk([&](CastOp cast) {
        FlatSymbolRefAttr name = parameterRead(cast.getInput());
        // A whole read of an FSDP-sharded parameter (outside the sharded
        // step) has no copy of its shape.
        if (name && cast.getInput().getDefiningOp<ParamOp>() &&
            module.lookupSymbol<ParameterOp>(name)->hasAttr(kShardAttr))
          return;
        if (!name || !cast.getElementType().isBF16() ||
            !cast.getInput().getType().getElementType().isF32() || !selected(cast))
          return;
        roundings[name.getAttr()].push_back(cast);
      });
    }
    if (roundings.empty())
      return;

    // Where @optimizer_step returns each updated parameter.
    auto ret = cast<func::ReturnOp>(step.getBody().front().getTerminator());
    llvm::StringMap<Value> updated;
    for (auto [i, value] : llvm::enumerate(ret.getOperands()))
      if (auto key = step.getResultAttrOfType<StringAttr>(i, kStateAttr);
          key && key.getValue().starts_with("param:"))
        updated[key.getValue().drop_front(6)] = value;

    OpBuilder b(module.getContext());
    SmallVector<Value> results(ret.getOperands());
    SmallVector<DictionaryAttr> resultAttrs;
    step.getAllResultAttrs(resultAttrs);
    for (auto &[name, casts] : roundings) {
      Value next = updated.lookup(name.getValue());
      if (!next) {
        casts.front()->emitError() << "vo-keep-bf16-params: @optimizer_step does not update @"
                                   << name.getValue();
        return signalPassFailure();
      }
      for (CastOp cast : casts) {
        Operation *read = cast.getInput().getDefiningOp();
        b.setInsertionPoint(cast);
        Value copy = ParamBf16Op::create(b, cast.getLoc(), cast.getType(),
                                         FlatSymbolRefAttr::get(name));
        cast.getResult().replaceAllUsesWith(copy);
        cast.erase();
        if (read->use_empty())
          read->erase();
      }
      b.setInsertionPoint(ret);
      results.push_back(
          CastOp::create(b, ret.getLoc(), next, TypeAttr::get(b.getBF16Type())));
      resultAttrs.push_back(b.getDictionaryAttr(b.getNamedAttr(
          kStateAttr, b.getStringAttr("param_bf16:" + name.getValue()))));
    }
    b.setInsertionPoint(ret);
    func::ReturnOp::create(b, ret.getLoc(), results);
    ret.erase();
    step.setType(b.getFunctionType(step.getArgumentTypes(), ValueRange(results).getTypes()));
    step.setAllResultAttrs(resultAttrs);
  }

  /// The parameter `value` reads whole (or as this rank's expert block), or
  /// as this rank's FSDP shard; null otherwise.
  static FlatSymbolRefAttr parameterRead(Value value) {
    if (auto read = value.getDefiningOp<ParamOp>())
      return read.getNameAttr();
    if (auto shard = value.getDefiningOp<ParamShardOp>())
      return shard.getNameAttr();
    return {};
  }

  /// Whether the option picks this rounding's parameter: under `experts`,
  /// one that only MoE kernels read, directly or through FSDP's gather.
  bool selected(CastOp cast) const {
    if (weights == "all")
      return true;
    SmallVector<Value> values{cast.getResult()};
    bool any = false;
    while (!values.empty()) {
      for (Operation *user : values.pop_back_val().getUsers()) {
        if (isa<AllGatherOp, ReshapeOp, SliceOp>(user)) {
          values.push_back(user->getResult(0));
        } else if (isa<MoeExpertsOp, MoeExpertsGradOp>(user)) {
          any = true;
        } else {
          return false;
        }
      }
    }
    return any;
  }
};

} // namespace
