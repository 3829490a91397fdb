//===- veomni-import.cpp - exported model graphs into the vo dialect ------===//
//
//   veomni-import model.onnx -o model.mlir [--dim seq=4096] [--no-raise]
//
// Imports the graph, then fuses exporter patterns (vo-raise) so the output is
// what veomni-compile plans for. Every failure is one line on stderr and a
// non-zero exit.
//
//===----------------------------------------------------------------------===//

#include "compiler/InitVeomni.h"
#include "frontends/onnx/OnnxImporter.h"
#ifdef VEOMNI_HAVE_TORCHSCRIPT
#include "frontends/torch/TorchScriptImporter.h"
#endif
#include "passes/Passes.h"

#include "mlir/Bytecode/BytecodeWriter.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

using namespace llvm;

namespace {
cl::OptionCategory importCategory("veomni-import options");

cl::opt<std::string> inputPath(cl::Positional, cl::Required,
                               cl::desc("<model.onnx>"),
                               cl::cat(importCategory));
cl::opt<std::string> outputPath("o", cl::desc("Output file (default: stdout)"),
                                cl::value_desc("file"), cl::init("-"),
                                cl::cat(importCategory));
cl::list<std::string>
    dimBindings("dim",
                cl::desc("Bind a symbolic input dim, e.g. --dim seq=4096 "
                         "(repeatable)"),
                cl::value_desc("name=N"), cl::cat(importCategory));
cl::opt<std::string> trainableRegex(
    "trainable",
    cl::desc("Train exactly the float initializers whose names match this "
             "regex, instead of the exporter's parameter metadata"),
    cl::value_desc("regex"), cl::cat(importCategory));
cl::opt<double> randomInit(
    "random-init",
    cl::desc("Declare parameters with init rules instead of the file's values, "
             "which are not read: rank-1 weights ones, the rest normal with "
             "this standard deviation (e.g. 0.02, as HF initializes); for "
             "models exported only for their shapes"),
    cl::value_desc("std"), cl::init(0.0), cl::cat(importCategory));
cl::list<std::string>
    torchInputs("input",
                cl::desc("TorchScript (.pt): a forward input's shape and element "
                         "type, e.g. --input x=2x32xf32 or input_ids=2x32xi64 "
                         "(repeatable; TorchScript keeps no static shapes)"),
                cl::value_desc("name=SHAPExTYPE"), cl::cat(importCategory));
cl::opt<bool> noRaise("no-raise",
                      cl::desc("Keep the exporter's primitive ops (skip "
                               "vo-raise and canonicalization)"),
                      cl::cat(importCategory));
cl::opt<bool> emitBytecode("emit-bytecode",
                           cl::desc("Write MLIR bytecode instead of text"),
                           cl::cat(importCategory));

int fail(const Twine &message) {
  WithColor::error(errs(), "veomni-import") << message << "\n";
  return 1;
}
} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(importCategory);
  cl::ParseCommandLineOptions(
      argc, argv, "veomni-import: exported model graphs into the vo dialect\n");

  veomni::OnnxImportOptions options;
  options.trainableRegex = trainableRegex;
  if (randomInit < 0) {
    llvm::errs() << "veomni-import: error: --random-init must be a positive "
                    "standard deviation\n";
    return 1;
  }
  options.randomInitStd = randomInit;
  for (const std::string &binding : dimBindings) {
    auto [name, value] = StringRef(binding).split('=');
    int64_t size;
    if (name.empty() || value.getAsInteger(10, size) || size <= 0)
      return fail("--dim expects name=N with N > 0, got '" + binding + "'");
    options.dims[name.str()] = size;
  }

  StringRef extension = sys::path::extension(inputPath);
#ifdef VEOMNI_HAVE_TORCHSCRIPT
  const bool torchScript = extension == ".pt";
  const bool torchExport = extension == ".pt2";
#else
  const bool torchScript = false, torchExport = false;
  if (extension == ".pt" || extension == ".pt2")
    return fail("'" + inputPath + "': the TorchScript (.pt) and torch.export (.pt2) "
                "frontends are not part of this build (no torch wheel was found when it "
                "was configured)");
#endif
  if (extension != ".onnx" && !torchScript && !torchExport)
    return fail("'" + inputPath + "': unknown model format '" + extension +
                "' (expected .onnx, .pt or .pt2)");
  if ((torchScript || torchExport) &&
      (randomInit != 0.0 || !dimBindings.empty() || !trainableRegex.empty()))
    return fail("--random-init, --dim and --trainable are for ONNX models; TorchScript and "
                "torch.export models name their parameters and carry their values");
  if (!torchInputs.empty() && !torchScript)
    return fail("--input is for TorchScript (.pt) models; ONNX and torch.export models "
                "carry their shapes (bind symbolic ONNX dims with --dim)");

  mlir::DialectRegistry registry;
  veomni::registerAllDialects(registry);
  mlir::MLIRContext context(registry);
  // MLIR diagnostics (verifier, passes) print as one line each.
  mlir::ScopedDiagnosticHandler diagnostics(
      &context, [](mlir::Diagnostic &diag) {
        if (diag.getSeverity() == mlir::DiagnosticSeverity::Error)
          WithColor::error(errs(), "veomni-import")
              << diag.getLocation() << ": " << diag.str() << "\n";
        return mlir::success();
      });

  llvm::Expected<mlir::OwningOpRef<mlir::ModuleOp>> module =
      mlir::OwningOpRef<mlir::ModuleOp>();
#ifdef VEOMNI_HAVE_TORCHSCRIPT
  if (torchScript) {
    veomni::TorchScriptImportOptions torchOptions;
    for (const std::string &spec : torchInputs) {
      auto [name, rest] = StringRef(spec).split('=');
      SmallVector<StringRef> parts;
      rest.split(parts, 'x');
      veomni::TorchScriptInput input;
      bool ok = !name.empty() && parts.size() >= 2;
      for (size_t i = 0; ok && i + 1 < parts.size(); ++i) {
        int64_t dim;
        ok = !parts[i].getAsInteger(10, dim) && dim > 0;
        input.shape.push_back(dim);
      }
      if (ok) {
        input.element = parts.back().str();
        ok = input.element == "f32" || input.element == "i64" || input.element == "i32";
      }
      if (!ok)
        return fail("--input expects name=SHAPExTYPE with TYPE f32, i64 or i32, e.g. "
                    "x=2x32xf32; got '" + spec + "'");
      torchOptions.inputs[name.str()] = input;
    }
    module = veomni::importTorchScriptFile(context, inputPath, torchOptions);
  } else if (torchExport) {
    module = veomni::importTorchExportFile(context, inputPath);
  } else
#endif
  {
    module = veomni::importOnnxFile(context, inputPath, options);
  }
  if (!module)
    return fail(toString(module.takeError()));

  if (!noRaise) {
    mlir::PassManager pm(&context);
    pm.addPass(mlir::createCanonicalizerPass());
    pm.addPass(veomni::createVoRaise());
    pm.addPass(mlir::createCanonicalizerPass());
    pm.addPass(mlir::createCSEPass());
    if (mlir::failed(pm.run(**module)))
      return fail("raising the imported graph failed");
  }

  std::string errorMessage;
  auto output = mlir::openOutputFile(outputPath, &errorMessage);
  if (!output)
    return fail(errorMessage);
  if (emitBytecode) {
    if (mlir::failed(mlir::writeBytecodeToFile(**module, output->os())))
      return fail("cannot write bytecode");
  } else {
    (*module)->print(output->os());
    output->os() << "\n";
  }
  output->keep();
  return 0;
}
