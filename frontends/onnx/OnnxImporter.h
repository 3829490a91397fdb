//===- OnnxImporter.h - ONNX models into the vo dialect -------*- C++ -*-===//
#ifndef VEOMNI_FRONTENDS_ONNX_ONNXIMPORTER_H
#define VEOMNI_FRONTENDS_ONNX_ONNXIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <string>

namespace veomni {

struct OnnxImportOptions {
  /// Values for symbolic input dims, by their ONNX dim_param name.
  std::map<std::string, int64_t> dims;
  /// When set, exactly the float initializers whose names match this regex
  /// are trainable; otherwise the exporter's metadata decides (see docs).
  std::string trainableRegex;
  /// When positive, parameters are declared with init rules instead of the
  /// file's values, which are never read (a model exported only for its
  /// shapes, as benchmarks use): rank-1 weights (norms) start at ones, the
  /// rest normal with this standard deviation, as HF models initialize.
  double randomInitStd = 0;
};

/// Reads an ONNX model file and returns a module holding one `vo.parameter`
/// per trainable initializer and `func.func @forward` with the graph's
/// computation in primitive vo ops (run `vo-raise` to fuse them).
llvm::Expected<mlir::OwningOpRef<mlir::ModuleOp>>
importOnnxFile(mlir::MLIRContext &context, llvm::StringRef path,
               const OnnxImportOptions &options);

} // namespace veomni

#endif // VEOMNI_FRONTENDS_ONNX_ONNXIMPORTER_H
