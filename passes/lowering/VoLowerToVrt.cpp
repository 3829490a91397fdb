//===- VoLowerToVrt.cpp - vo functions to runtime programs ----------------===//
//
// A one-to-one rewrite: each vo op is a launch of the runtime kernel of the
// same name. What changes is where values live: parameters and other state
// move out of the function signature into vrt.state reads and vrt.store
// writes.
//
//===----------------------------------------------------------------------===//

#include "dialects/vo/VoOps.h"
#include "dialects/vrt/VrtDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

#include <cstdlib>

namespace veomni {
#define GEN_PASS_DEF_VOLOWERTOVRT
#include "passes/Passes.h.inc"
} // namespace veomni

using namespace mlir;
using namespace veomni;

namespace {

/// An op attribute as a kernel param, or null if it has no runtime meaning
/// (e.g. cast's target type, which the output's dtype already says).
FailureOr<Attribute> toKernelParam(Operation *op, StringRef name,
                                   Attribute value) {
  Builder b(op->getContext());
  if (isa<UnitAttr>(value))
    return Attribute(b.getI64IntegerAttr(1));
  if (auto flag = dyn_cast<BoolAttr>(value))
    return Attribute(b.getI64IntegerAttr(flag.getValue()));
  if (auto integer = dyn_cast<IntegerAttr>(value))
    return Attribute(b.getI64IntegerAttr(integer.getValue().getSExtValue()));
  if (auto real = dyn_cast<FloatAttr>(value))
    return Attribute(b.getF64FloatAttr(real.getValueAsDouble()));
  if (isa<DenseI64ArrayAttr>(value))
    return value;
  // Mesh axes as the runtime's bit mask: dp 1, fsdp 2, sp 4.
  if (auto axes = dyn_cast<ArrayAttr>(value); axes && name == "mesh_axes") {
    int64_t mask = 0;
    for (Attribute axis : axes) {
      auto it = llvm::find(vo::kMeshAxisNames, cast<StringAttr>(axis).getValue());
      mask |= int64_t(1) << (it - std::begin(vo::kMeshAxisNames));
    }
    return Attribute(b.getI64IntegerAttr(mask));
  }
  if (isa<TypeAttr>(value))
    return Attribute();
  return op->emitOpError("attribute '")
         << name << "' has no kernel param form: " << value;
}

LogicalResult lowerOp(OpBuilder &b, Operation *op, IRMapping &mapping) {
  Location loc = op->getLoc();
  if (auto param = dyn_cast<vo::ParamOp>(op)) {
    mapping.map(param.getResult(),
                vrt::StateOp::create(b, loc, param.getType(),
                                     ("param:" + param.getName()).str()));
    return success();
  }
  if (auto copy = dyn_cast<vo::ParamBf16Op>(op)) {
    mapping.map(copy.getResult(),
                vrt::StateOp::create(b, loc, copy.getType(),
                                     ("param_bf16:" + copy.getName()).str()));
    return success();
  }
  // Lowered already: a bf16 rounding an adamw launch returns (below).
  if (op->getNumResults() == 1 && mapping.contains(op->getResult(0)))
    return success();
  if (auto shard = dyn_cast<vo::ParamShardOp>(op)) {
    mapping.map(shard.getResult(),
                vrt::StateOp::create(b, loc, shard.getType(),
                                     ("param:" + shard.getName()).str()));
    return success();
  }
  if (auto constant = dyn_cast<vo::ConstantOp>(op)) {
    // `fill` takes an f64 and fills f32, i64 and i32: splats it represents
    // exactly become fills, the rest stay constants.
    auto splat = dyn_cast<SplatElementsAttr>(constant.getValue());
    Type element = splat ? splat.getElementType() : Type();
    bool fillable = element && (element.isF32() || element.isInteger(32) ||
                                (element.isInteger(64) &&
                                 std::abs(splat.getSplatValue<APInt>().getSExtValue()) <=
                                     (int64_t(1) << 53)));
    Value lowered;
    if (fillable) {
      double value =
          isa<FloatType>(element)
              ? splat.getSplatValue<APFloat>().convertToDouble()
              : static_cast<double>(splat.getSplatValue<APInt>().getSExtValue());
      auto params = b.getDictionaryAttr(
          b.getNamedAttr("value", b.getF64FloatAttr(value)));
      lowered = vrt::LaunchOp::create(b, loc, TypeRange{constant.getType()},
                                      "fill", ValueRange{}, params,
                                      DenseI64ArrayAttr())
                    .getResult(0);
    } else {
      lowered = vrt::ConstantOp::create(b, loc, constant.getType(),
                                        constant.getValue());
    }
    mapping.map(constant.getResult(), lowered);
    return success();
  }
  if (!isa_and_nonnull<vo::VoDialect>(op->getDialect()))
    return op->emitOpError("cannot be lowered to the runtime");

  SmallVector<NamedAttribute> params;
  auto collect = [&](DictionaryAttr attrs) -> LogicalResult {
    if (!attrs)
      return success();
    for (NamedAttribute attr : attrs) {
      auto param = toKernelParam(op, attr.getName(), attr.getValue());
      if (failed(param))
        return failure();
      if (*param)
        params.push_back(b.getNamedAttr(attr.getName(), *param));
    }
    return success();
  };
  if (failed(collect(dyn_cast_or_null<DictionaryAttr>(
          op->getPropertiesAsAttribute()))) ||
      failed(collect(op->getDiscardableAttrDictionary())))
    return failure();
  SmallVector<Value> inputs;
  for (Value operand : op->getOperands())
    inputs.push_back(mapping.lookup(operand));
  SmallVector<Type> resultTypes(op->getResultTypes());
  // The bf16 copy of an updated parameter (vo-keep-bf16-params) comes out of
  // the adamw kernel as one more output, written beside the parameter.
  vo::CastOp copy;
  if (auto adamw = dyn_cast<vo::AdamwOp>(op)) {
    for (Operation *user : adamw.getNewParam().getUsers())
      if (auto cast = dyn_cast<vo::CastOp>(user); cast && cast.getElementType().isBF16())
        copy = cast;
    if (copy)
      resultTypes.push_back(copy.getType());
  }
  auto launch = vrt::LaunchOp::create(
      b, loc, resultTypes, op->getName().stripDialect(), inputs,
      b.getDictionaryAttr(params), DenseI64ArrayAttr());
  mapping.map(op->getResults(), launch.getResults().take_front(op->getNumResults()));
  if (copy)
    mapping.map(copy.getResult(), launch.getResults().back());
  return success();
}

/// Moves each store up to just after the later of its value's producer and
/// the last reader of its state key: the function still reads every state as
/// it was at its start, and the stored value stops occupying the arena at
/// once (without this, an optimizer step would hold every updated parameter
/// and moment until its end).
void sinkStoresEarly(Block &body) {
  DenseMap<Operation *, int64_t> position;
  int64_t index = 0;
  for (Operation &op : body)
    position[&op] = index++;
  llvm::StringMap<Operation *> lastReader;
  for (auto read : body.getOps<vrt::StateOp>())
    for (Operation *user : read->getUsers()) {
      Operation *&last = lastReader[read.getKey()];
      if (!last || position[user] > position[last])
        last = user;
    }
  SmallVector<vrt::StoreOp> stores(body.getOps<vrt::StoreOp>());
  for (vrt::StoreOp store : stores) {
    Operation *after = store.getValue().getDefiningOp();
    if (Operation *reader = lastReader.lookup(store.getKey()))
      if (!after || position[reader] > position[after])
        after = reader;
    if (after && after != store.getOperation())
      store->moveAfter(after);
    else if (!after)
      store->moveBefore(&body.front());
  }
}

LogicalResult lowerFunction(func::FuncOp func) {
  Block &body = func.getBody().front();
  SmallVector<Operation *> ops;
  for (Operation &op : body.without_terminator())
    ops.push_back(&op);
  OpBuilder b(func.getContext());
  b.setInsertionPointToStart(&body);
  IRMapping mapping;

  // State arguments become reads; the others stay inputs.
  SmallVector<unsigned> stateArgs;
  for (BlockArgument arg : body.getArguments()) {
    auto key = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                 vo::kStateAttr);
    if (!key) {
      mapping.map(arg, arg);
      continue;
    }
    mapping.map(arg, vrt::StateOp::create(b, func.getLoc(), arg.getType(), key));
    stateArgs.push_back(arg.getArgNumber());
  }

  b.setInsertionPoint(body.getTerminator());
  for (Operation *op : ops)
    if (failed(lowerOp(b, op, mapping)))
      return failure();

  // State results become stores; the others stay results.
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  b.setInsertionPoint(ret);
  SmallVector<Value> results;
  SmallVector<DictionaryAttr> resultAttrs;
  for (auto [i, value] : llvm::enumerate(ret.getOperands())) {
    Value lowered = mapping.lookup(value);
    if (auto key = func.getResultAttrOfType<StringAttr>(i, vo::kStateAttr)) {
      vrt::StoreOp::create(b, ret.getLoc(), key, lowered);
      continue;
    }
    results.push_back(lowered);
    resultAttrs.push_back(func.getResultAttrDict(i));
  }
  func::ReturnOp::create(b, ret.getLoc(), results);
  ret.erase();
  for (Operation *op : llvm::reverse(ops)) {
    op->dropAllUses();
    op->erase();
  }
  sinkStoresEarly(body);
  SmallVector<DictionaryAttr> argAttrs;
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    if (!llvm::is_contained(stateArgs, i))
      argAttrs.push_back(func.getArgAttrDict(i));
  BitVector erase(body.getNumArguments());
  for (unsigned i : stateArgs)
    erase.set(i);
  body.eraseArguments(erase);
  func.setType(FunctionType::get(func.getContext(), body.getArgumentTypes(),
                                 ValueRange(results).getTypes()));
  func.setAllArgAttrs(argAttrs);
  func.setAllResultAttrs(resultAttrs);
  return success();
}

struct VoLowerToVrtPass : veomni::impl::VoLowerToVrtBase<VoLowerToVrtPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    for (auto func : llvm::make_early_inc_range(module.getOps<func::FuncOp>()))
      if (failed(lowerFunction(func)))
        return signalPassFailure();
  }
};

} // namespace
