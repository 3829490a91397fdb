//===- VoDialect.cpp - the vo graph dialect -------------------------------===//

#include "dialects/vo/VoDialect.h"
#include "dialects/vo/VoOps.h"

#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace veomni::vo;

#include "dialects/vo/VoDialect.cpp.inc"
#include "dialects/vo/VoEnums.cpp.inc"
#include "dialects/vo/VoInterfaces.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/vo/VoAttrs.cpp.inc"

void VoDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/vo/VoOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/vo/VoAttrs.cpp.inc"
      >();
}

Operation *VoDialect::materializeConstant(OpBuilder &builder, Attribute value,
                                          Type type, Location loc) {
  auto elements = dyn_cast<ElementsAttr>(value);
  if (!elements || elements.getType() != type)
    return nullptr;
  return ConstantOp::create(builder, loc, elements);
}

LogicalResult
InitRuleAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                     InitKind kind, APFloat stdValue) {
  double std = stdValue.convertToDouble();
  if (std < 0)
    return emitError() << "init std must be non-negative, got " << std;
  if (kind != InitKind::normal && std != 0)
    return emitError() << "init std applies only to 'normal', not '"
                       << stringifyInitKind(kind) << "'";
  return success();
}
