//===- InitVeomni.cpp -----------------------------------------------------===//

#include "compiler/InitVeomni.h"

#include "dialects/vo/VoDialect.h"
#include "dialects/vrt/VrtDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Transforms/Passes.h"

void veomni::registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<vo::VoDialect, vrt::VrtDialect, mlir::func::FuncDialect>();
}

void veomni::registerAllPasses() {
  registerVeomniPasses();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerSymbolDCEPass();
}
