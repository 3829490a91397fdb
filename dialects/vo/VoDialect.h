//===- VoDialect.h - the vo graph dialect ---------------------*- C++ -*-===//
#ifndef VEOMNI_DIALECTS_VO_VODIALECT_H
#define VEOMNI_DIALECTS_VO_VODIALECT_H

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectImplementation.h"

#include "dialects/vo/VoEnums.h.inc"

#include "dialects/vo/VoDialect.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/vo/VoAttrs.h.inc"

#endif // VEOMNI_DIALECTS_VO_VODIALECT_H
