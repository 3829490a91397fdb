//===- VrtDialect.cpp - the runtime-program dialect -----------------------===//

#include "dialects/vrt/VrtDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace veomni::vrt;

#include "dialects/vrt/VrtDialect.cpp.inc"

void VrtDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/vrt/VrtOps.cpp.inc"
      >();
}

LogicalResult LaunchOp::verify() {
  if (getKernel().empty())
    return emitOpError("expects a kernel name");
  for (NamedAttribute param : getParams()) {
    Attribute value = param.getValue();
    if (!isa<IntegerAttr, FloatAttr, DenseI64ArrayAttr>(value))
      return emitOpError("param '")
             << param.getName().getValue()
             << "' must be an integer, a float or an i64 array, got " << value;
  }
  if (auto offsets = getOffsetsAttr()) {
    if (offsets.size() != static_cast<int64_t>(getNumResults()))
      return emitOpError("has ")
             << offsets.size() << " offsets for " << getNumResults()
             << " results";
    for (auto [offset, result] : llvm::zip(offsets.asArrayRef(), getResults())) {
      // -1: a forwarded store writes this result into the state.
      if (offset == -1 && getForwardedStore(result))
        continue;
      if (offset < 0 || offset % kArenaAlignment != 0)
        return emitOpError("offset ")
               << offset << " is not a non-negative multiple of "
               << kArenaAlignment
               << (offset == -1 ? " (-1 is for results of forwarded stores)" : "");
    }
  }
  return success();
}

StoreOp veomni::vrt::getForwardedStore(Value value) {
  for (Operation *user : value.getUsers())
    if (auto store = dyn_cast<StoreOp>(user); store && store.getForwarded())
      return store;
  return nullptr;
}

LogicalResult StoreOp::verify() {
  if (!getForwarded())
    return success();
  // Only a launch's own result can be written in place; the artifact drops
  // the store's copy, so anything else would never reach the state.
  auto launch = getValue().getDefiningOp<LaunchOp>();
  if (!launch || launch.getKernel() == "reshape")
    return emitOpError("is forwarded, but its value is not a launch's own result");
  for (Operation *user : getValue().getUsers())
    if (auto other = dyn_cast<StoreOp>(user); other && other != *this)
      return emitOpError("is forwarded, but its value is stored twice");
  return success();
}

#define GET_OP_CLASSES
#include "dialects/vrt/VrtOps.cpp.inc"
