//===- InitVeomni.h - register the dialects and passes of veomni-compile --===//
#ifndef VEOMNI_COMPILER_INITVEOMNI_H
#define VEOMNI_COMPILER_INITVEOMNI_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace veomni {
/// The dialects a veomni module may contain.
void registerAllDialects(mlir::DialectRegistry &registry);
/// Our passes plus the upstream ones the pipelines use.
void registerAllPasses();
} // namespace veomni

#endif // VEOMNI_COMPILER_INITVEOMNI_H
