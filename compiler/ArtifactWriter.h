//===- ArtifactWriter.h - serialize a planned vrt module ------*- C++ -*-===//
#ifndef VEOMNI_COMPILER_ARTIFACTWRITER_H
#define VEOMNI_COMPILER_ARTIFACTWRITER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>

namespace veomni {

struct OptimizerConfig {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weightDecay = 0.01, maxGradNorm = 0.0;
  std::string schedule = "constant"; // or "cosine"
  int64_t warmupSteps = 0, totalSteps = 0;
  double minLr = 0.0;
};

struct ArtifactMetadata {
  std::string tokenInput, labelInput;
  int64_t vocabSize = 0, microBatch = 0, seqLen = 0, gradAccum = 1;
  OptimizerConfig optimizer;
  int dp = 1, fsdp = 1, sp = 1, ep = 1;
};

/// Byte counts of a planned module, for --explain.
struct MemoryReport {
  int64_t parameters = 0, gradients = 0, optimizerState = 0, constants = 0;
  /// The bf16 copies of parameters (--bf16-weight-copies).
  int64_t parameterCopies = 0;
  /// Arena bytes per function, in module order.
  std::vector<std::pair<std::string, int64_t>> arenas;
  /// Collectives per call of each function, grouped by kind and mesh axes.
  struct Collectives {
    std::string function, kind, axes;
    int64_t calls = 0, bytes = 0; // bytes each rank sends or receives
  };
  std::vector<Collectives> collectives;
};

/// Bytes the runtime stores for a tensor of `type` (i1 as one byte each).
int64_t tensorBytes(mlir::RankedTensorType type);

/// Bytes of the state and constants of a lowered, planned module.
llvm::Expected<MemoryReport> measureArtifact(mlir::ModuleOp module);

/// Writes the artifact for a module lowered to vrt and memory-planned, with
/// its vo.parameter declarations still present.
llvm::Error writeArtifact(mlir::ModuleOp module, const ArtifactMetadata &meta,
                          llvm::StringRef path);

} // namespace veomni

#endif // VEOMNI_COMPILER_ARTIFACTWRITER_H
