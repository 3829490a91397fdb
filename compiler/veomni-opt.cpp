//===- veomni-opt.cpp - mlir-opt with the veomni dialects and passes ------===//

#include "compiler/InitVeomni.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  veomni::registerAllDialects(registry);
  veomni::registerAllPasses();
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "veomni-opt: run veomni passes on vo IR\n", registry));
}
