//===- VoOptimizer.cpp - gradient accumulation and the AdamW step ---------===//
//
// Splits a training step into what runs per micro-batch and what runs once:
//   @micro_step(inputs..., grad accumulators) -> (loss, accumulators + grads)
//   @optimizer_step(hyper, accumulators, moments)
//       -> (grad_norm, new parameters, new moments, cleared accumulators)
// With one micro-batch per step (grad-accum=1) the micro-step returns the
// gradients themselves and the accumulators are not cleared: each step's
// micro-step overwrites them, which saves an add and a fill over every
// gradient (and lets the gradients' kernels write into the accumulators).
// State lives outside the functions; `vo.state` attributes say which
// argument reads and which result overwrites which state tensor. The state
// has the gradients' types: the full parameter, or under vo-shard-fsdp this
// rank's flat shard, in which case the module's `vo.mesh` adds the two
// reductions the update needs across ranks.
//
//===----------------------------------------------------------------------===//

#include "dialects/vo/VoOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace veomni {
#define GEN_PASS_DEF_VOOPTIMIZER
#include "passes/Passes.h.inc"
} // namespace veomni

using namespace mlir;
using namespace veomni::vo;

namespace {

Value splatConstant(OpBuilder &b, Location loc, RankedTensorType type,
                    double value) {
  return ConstantOp::create(
      b, loc,
      SplatElementsAttr::get(type, b.getFloatAttr(type.getElementType(), value)));
}

DictionaryAttr attrDict(OpBuilder &b, StringRef key, const Twine &value) {
  return b.getDictionaryAttr(
      b.getNamedAttr(key, b.getStringAttr(value.str())));
}

struct VoOptimizerPass : veomni::impl::VoOptimizerBase<VoOptimizerPass> {
  using VoOptimizerBase::VoOptimizerBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (gradAccum < 1) {
      module.emitError() << "vo-optimizer: grad-accum must be >= 1, got "
                         << static_cast<int64_t>(gradAccum);
      return signalPassFailure();
    }
    auto backward = module.lookupSymbol<func::FuncOp>("forward_backward");
    if (!backward) {
      module.emitError("vo-optimizer expects @forward_backward (run "
                       "vo-autodiff first)");
      return signalPassFailure();
    }
    // Parameters in result order: results 1.. are named "grad.<parameter>".
    SmallVector<ParameterOp> params;
    for (unsigned i = 1; i < backward.getNumResults(); ++i) {
      auto name = backward.getResultAttrOfType<StringAttr>(i, kNameAttr);
      ParameterOp param =
          name && name.getValue().starts_with("grad.")
              ? module.lookupSymbol<ParameterOp>(name.getValue().drop_front(5))
              : ParameterOp();
      if (!param) {
        backward.emitError() << "vo-optimizer: result " << i
                             << " of @forward_backward names no parameter";
        return signalPassFailure();
      }
      params.push_back(param);
    }
    OpBuilder b(module.getContext());
    buildMicroStep(b, backward, params);
    buildOptimizerStep(b, module, backward, params);
  }

  void buildMicroStep(OpBuilder &b, func::FuncOp backward,
                      SmallVectorImpl<ParameterOp> &params) {
    TypeRange gradTypes = backward.getResultTypes().drop_front();
    b.setInsertionPointAfter(backward);
    auto micro = cast<func::FuncOp>(b.clone(*backward));
    micro.setSymName("micro_step");
    Block &body = micro.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    Location loc = ret.getLoc();
    b.setInsertionPoint(ret);
    SmallVector<Value> results = {ret.getOperand(0)};
    for (auto [i, param] : llvm::enumerate(params)) {
      Value grad = ret.getOperand(i + 1);
      if (gradAccum == 1) {  // overwrite the accumulator: nothing reads it
        results.push_back(grad);
        continue;
      }
      unsigned index = micro.getNumArguments();
      if (failed(micro.insertArgument(
              index, gradTypes[i],
              attrDict(b, kStateAttr, "grad:" + param.getSymName()), loc)))
        return signalPassFailure();
      results.push_back(AddOp::create(b, loc, micro.getArgument(index), grad));
    }
    ret->setOperands(results);
    micro.setType(b.getFunctionType(micro.getArgumentTypes(),
                                    ValueRange(results).getTypes()));
    micro.setResultAttrs(0, attrDict(b, kNameAttr, "loss"));
    for (auto [i, param] : llvm::enumerate(params))
      micro.setResultAttrs(i + 1,
                           attrDict(b, kStateAttr, "grad:" + param.getSymName()));
  }

  void buildOptimizerStep(OpBuilder &b, ModuleOp module,
                          func::FuncOp backward, SmallVectorImpl<ParameterOp> &params) {
    Location loc = backward.getLoc();
    auto f32 = b.getF32Type();
    auto scalarType = RankedTensorType::get({}, f32);
    auto hyperType = RankedTensorType::get({3}, f32);
    TypeRange gradTypes = backward.getResultTypes().drop_front();
    auto mesh = module->getAttrOfType<DictionaryAttr>(kMeshAttr);
    auto degree = [&](StringRef axis) {
      auto value = mesh ? mesh.getAs<IntegerAttr>(axis) : IntegerAttr();
      return value ? value.getInt() : int64_t(1);
    };

    SmallVector<Type> argTypes = {hyperType};
    SmallVector<DictionaryAttr> argAttrs = {attrDict(b, kNameAttr, "hyper")};
    for (StringRef kind : {"grad:", "exp_avg:", "exp_avg_sq:"})
      for (auto [param, type] : llvm::zip(params, gradTypes)) {
        argTypes.push_back(type);
        argAttrs.push_back(attrDict(b, kStateAttr, kind + param.getSymName()));
      }
    b.setInsertionPointToEnd(module.getBody());
    auto step = func::FuncOp::create(b, loc, "optimizer_step",
                                     b.getFunctionType(argTypes, {}));
    step.setAllArgAttrs(argAttrs);
    Block *body = step.addEntryBlock();
    b.setInsertionPointToEnd(body);
    size_t n = params.size();
    // Replicas (dp) each accumulated their own data: sum them once per step.
    SmallVector<Value> grads;
    for (size_t i = 0; i < n; ++i) {
      Value g = body->getArgument(1 + i);
      if (degree("dp") > 1)
        g = AllReduceOp::create(b, loc, g, b.getArrayAttr({b.getStringAttr("dp")}),
                                degree("dp"));
      grads.push_back(g);
    }
    auto grad = [&](size_t i) { return grads[i]; };
    auto expAvg = [&](size_t i) { return body->getArgument(1 + n + i); };
    auto expAvgSq = [&](size_t i) { return body->getArgument(1 + 2 * n + i); };

    // Global L2 norm of the accumulated gradients (always reported). With
    // clipping the updates need it first: one reduce_sum_squares per
    // gradient. Without, each adamw returns its gradient's sum of squares
    // from the pass over it that it makes anyway.
    const bool clip = maxGradNorm > 0;
    auto sumOfSquares = [&](size_t i) -> Value {
      Value g = grad(i);
      auto type = cast<RankedTensorType>(g.getType());
      if (type.getElementType() != f32)
        g = CastOp::create(b, loc, g, f32);
      auto axes = llvm::to_vector(llvm::seq<int64_t>(0, type.getRank()));
      return axes.empty() ? Value(MulOp::create(b, loc, g, g))
                          : Value(ReduceSumSquaresOp::create(b, loc, g, axes, false));
    };
    // The squares summed over this rank's gradients, then over the shards,
    // which hold disjoint parts of each gradient.
    auto globalNorm = [&](ArrayRef<Value> partials) -> Value {
      Value sumSquares = splatConstant(b, loc, scalarType, 0.0);
      for (Value partial : partials)
        sumSquares = AddOp::create(b, loc, sumSquares, partial);
      SmallVector<Attribute> shardAxes;
      for (StringRef axis : {"fsdp", "sp"})
        if (degree(axis) > 1)
          shardAxes.push_back(b.getStringAttr(axis));
      if (!shardAxes.empty() && !params.empty() &&
          params.front()->hasAttr(kShardAttr))
        sumSquares = AllReduceOp::create(b, loc, sumSquares, b.getArrayAttr(shardAxes),
                                         degree("fsdp") * degree("sp"));
      return SqrtOp::create(b, loc, sumSquares);
    };
    Value norm;
    Value gradScale = splatConstant(b, loc, scalarType, 1.0);
    if (clip) {
      SmallVector<Value> partials;
      for (size_t i = 0; i < n; ++i)
        partials.push_back(sumOfSquares(i));
      norm = globalNorm(partials);
      // torch.nn.utils.clip_grad_norm_: min(1, max_norm / (norm + 1e-6)).
      Value denom = AddOp::create(b, loc, norm,
                                  splatConstant(b, loc, scalarType, 1e-6));
      Value coef = DivOp::create(
          b, loc, splatConstant(b, loc, scalarType, maxGradNorm), denom);
      gradScale = MinimumOp::create(b, loc, coef, gradScale);
    }

    SmallVector<Value> results = {Value()};
    SmallVector<DictionaryAttr> resultAttrs = {
        attrDict(b, kNameAttr, "grad_norm")};
    SmallVector<Value> newExpAvg, newExpAvgSq, fusedPartials;
    for (size_t i = 0; i < n; ++i) {
      ParameterOp param = params[i];
      auto symbol = FlatSymbolRefAttr::get(param.getSymNameAttr());
      Value current = param->hasAttr(kShardAttr)
                          ? Value(ParamShardOp::create(b, loc, gradTypes[i], symbol))
                          : Value(ParamOp::create(b, loc, param.getType(), symbol));
      auto update = AdamwOp::create(
          b, loc, current, grad(i), expAvg(i), expAvgSq(i), body->getArgument(0),
          gradScale, b.getF64FloatAttr(beta1), b.getF64FloatAttr(beta2),
          b.getF64FloatAttr(eps), b.getF64FloatAttr(weightDecay),
          /*sum_squares=*/clip ? nullptr : b.getUnitAttr());
      results.push_back(update.getNewParam());
      resultAttrs.push_back(attrDict(b, kStateAttr, "param:" + param.getSymName()));
      newExpAvg.push_back(update.getNewExpAvg());
      newExpAvgSq.push_back(update.getNewExpAvgSq());
      if (!clip)
        fusedPartials.push_back(update.getGradSumSquares());
    }
    results[0] = clip ? norm : globalNorm(fusedPartials);
    for (size_t i = 0; i < n; ++i) {
      results.push_back(newExpAvg[i]);
      resultAttrs.push_back(
          attrDict(b, kStateAttr, "exp_avg:" + params[i].getSymName()));
    }
    for (size_t i = 0; i < n; ++i) {
      results.push_back(newExpAvgSq[i]);
      resultAttrs.push_back(
          attrDict(b, kStateAttr, "exp_avg_sq:" + params[i].getSymName()));
    }
    // The accumulators start the next step at zero (a single micro-step
    // overwrites them instead).
    for (size_t i = 0; gradAccum > 1 && i < n; ++i) {
      results.push_back(
          splatConstant(b, loc, cast<RankedTensorType>(gradTypes[i]), 0.0));
      resultAttrs.push_back(
          attrDict(b, kStateAttr, "grad:" + params[i].getSymName()));
    }
    func::ReturnOp::create(b, loc, results);
    step.setType(b.getFunctionType(argTypes, ValueRange(results).getTypes()));
    step.setAllResultAttrs(resultAttrs);
  }
};

} // namespace
