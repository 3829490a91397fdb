//===- Passes.h - veomni passes -------------------------------*- C++ -*-===//
#ifndef VEOMNI_PASSES_PASSES_H
#define VEOMNI_PASSES_PASSES_H

#include "dialects/vo/VoDialect.h"
#include "dialects/vrt/VrtDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace veomni {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

} // namespace veomni

#endif // VEOMNI_PASSES_PASSES_H
