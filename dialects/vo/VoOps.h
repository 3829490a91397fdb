//===- VoOps.h - vo operations --------------------------------*- C++ -*-===//
#ifndef VEOMNI_DIALECTS_VO_VOOPS_H
#define VEOMNI_DIALECTS_VO_VOOPS_H

#include "dialects/vo/VoDialect.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/vo/VoInterfaces.h.inc"

#define GET_OP_CLASSES
#include "dialects/vo/VoOps.h.inc"

#endif // VEOMNI_DIALECTS_VO_VOOPS_H
