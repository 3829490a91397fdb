//===- TorchScriptImporter.h - TorchScript into vo --------------*- C++ -*-===//
//
// Loads a TorchScript module (.pt) with LibTorch, inlines its forward, and
// walks the ATen ops into vo: parameters (the module's, by their dotted
// names; tied ones once) become vo.parameter with their values, the graph's
// other inputs function arguments of the shapes the caller gives (TorchScript
// keeps no static shapes). Nodes whose operands are all constants run on
// LibTorch and become constants (masks, positions, RoPE tables); the rest map
// to vo's primitive ops, which vo-raise fuses as it does the ONNX import's.
// An op outside the set is an error naming it and its traced source line
// (docs/frontends.md).
//
//===----------------------------------------------------------------------===//
#ifndef VEOMNI_FRONTENDS_TORCH_TORCHSCRIPTIMPORTER_H
#define VEOMNI_FRONTENDS_TORCH_TORCHSCRIPTIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace veomni {

struct TorchScriptInput {
  std::vector<int64_t> shape;
  std::string element; // "f32", "i64" or "i32"
};

struct TorchScriptImportOptions {
  /// Shape and element type of each graph input by name (`x`, `input_ids`).
  std::map<std::string, TorchScriptInput> inputs;
};

llvm::Expected<mlir::OwningOpRef<mlir::ModuleOp>>
importTorchScriptFile(mlir::MLIRContext &context, llvm::StringRef path,
                      const TorchScriptImportOptions &options);

/// A torch.export archive (.pt2, torch.export.save): its ExportedProgram's
/// graph (schema version 8, static shapes) walked through the same ATen
/// mapping, parameters and buffers from the archive's weights.
llvm::Expected<mlir::OwningOpRef<mlir::ModuleOp>>
importTorchExportFile(mlir::MLIRContext &context, llvm::StringRef path);

} // namespace veomni

#endif // VEOMNI_FRONTENDS_TORCH_TORCHSCRIPTIMPORTER_H
