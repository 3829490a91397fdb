//===- veomni-compile.cpp - a vo model into a training artifact -----------===//
//
//   veomni-compile model.mlir -o model.vob [--grad-accum 4] [--lr 3e-4] ...
//
// Builds the training step (token-mean loss, backward, gradient
// accumulation, AdamW), lowers it to the runtime program, plans its memory
// and writes the artifact. --explain prints the memory plan.
//
//===----------------------------------------------------------------------===//

#include <cmath>
#include <optional>

#include "compiler/ArtifactWriter.h"
#include "compiler/CostModel.h"
#include "compiler/InitVeomni.h"
#include "dialects/vo/VoOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

using namespace llvm;
using namespace veomni;

namespace {
cl::OptionCategory compileCategory("veomni-compile options");

cl::opt<std::string> inputPath(cl::Positional, cl::Required,
                               cl::desc("<model.mlir>"),
                               cl::cat(compileCategory));
cl::opt<std::string> outputPath("o", cl::desc("Output artifact (.vob)"),
                                cl::value_desc("file"), cl::Required,
                                cl::cat(compileCategory));
cl::opt<std::string> recipe(
    "recipe", cl::desc("Parallel recipe, e.g. fsdp=8,sp=4 (keys dp fsdp sp "
                       "ep; default all 1)"),
    cl::init(""), cl::cat(compileCategory));
cl::opt<int64_t> seqLen("seq-len",
                        cl::desc("Sequence length; must match the imported "
                                 "model (re-import with --dim to change it)"),
                        cl::init(0), cl::cat(compileCategory));
cl::opt<int64_t> microBatch("micro-batch",
                            cl::desc("Sequences per micro-batch; must match "
                                     "the imported model"),
                            cl::init(0), cl::cat(compileCategory));
cl::opt<int64_t> gradAccum("grad-accum",
                           cl::desc("Micro-batches per optimizer step"),
                           cl::init(1), cl::cat(compileCategory));
cl::opt<std::string> tokenInput("token-input",
                                cl::desc("Model input fed with token ids"),
                                cl::init("input_ids"),
                                cl::cat(compileCategory));
cl::opt<std::string> labelInput("label-input",
                                cl::desc("Model input fed with labels"),
                                cl::init("labels"), cl::cat(compileCategory));
cl::opt<double> lr("lr", cl::desc("Peak learning rate"), cl::init(1e-3),
                   cl::cat(compileCategory));
cl::opt<double> beta1("beta1", cl::desc("AdamW beta1"), cl::init(0.9),
                      cl::cat(compileCategory));
cl::opt<double> beta2("beta2", cl::desc("AdamW beta2"), cl::init(0.999),
                      cl::cat(compileCategory));
cl::opt<double> eps("eps", cl::desc("AdamW epsilon"), cl::init(1e-8),
                    cl::cat(compileCategory));
cl::opt<double> weightDecay("weight-decay",
                            cl::desc("AdamW decoupled weight decay"),
                            cl::init(0.01), cl::cat(compileCategory));
cl::opt<double> maxGradNorm("max-grad-norm",
                            cl::desc("Clip to this global gradient norm "
                                     "(0: off)"),
                            cl::init(0.0), cl::cat(compileCategory));
cl::opt<std::string> lrSchedule("lr-schedule",
                                cl::desc("constant, or cosine (linear warmup "
                                         "then cosine decay to --min-lr)"),
                                cl::init("constant"),
                                cl::cat(compileCategory));
cl::opt<int64_t> warmupSteps("warmup-steps",
                             cl::desc("Linear warmup steps (cosine)"),
                             cl::init(0), cl::cat(compileCategory));
cl::opt<int64_t> trainSteps("train-steps",
                            cl::desc("Total steps the cosine schedule spans"),
                            cl::init(0), cl::cat(compileCategory));
cl::opt<double> minLr("min-lr", cl::desc("Final learning rate (cosine)"),
                      cl::init(0.0), cl::cat(compileCategory));
cl::opt<std::string> deviceModel(
    "device-model",
    cl::desc("The GPU whose figures --explain predicts the step time with: "
             "h100 or h200 (h100)"),
    cl::init("h100"), cl::cat(compileCategory));
cl::opt<std::string> kernelProfile(
    "kernel-profile",
    cl::desc("Kernel times measured by veomni-run --profile_out: --explain "
             "uses them per launch for the kernels they cover"),
    cl::value_desc("file.json"), cl::cat(compileCategory));
cl::opt<std::string> recomputeMode(
    "recompute",
    cl::desc("Which activations the backward recomputes instead of keeping: "
             "none, full (all but the residual stream: whole-layer "
             "checkpointing) or roi (by memory freed per second of recompute, "
             "until the plan fits --memory-budget)"),
    cl::init("none"), cl::cat(compileCategory));
cl::opt<int64_t> memoryBudget(
    "memory-budget",
    cl::desc("Bytes per GPU the plan must fit (parameters, gradients, "
             "optimizer state, constants and activations); with --recompute "
             "roi the recomputation is chosen to meet it"),
    cl::value_desc("bytes"), cl::init(0), cl::cat(compileCategory));
cl::opt<std::string> matmulOperands(
    "matmul-operands",
    cl::desc("What matmuls multiply: f32 (the runtime's --matmul_precision "
             "rounds on the GPU, per launch) or bf16 (mixed precision fixed "
             "here: every value is rounded once for all its matmuls, with f32 "
             "accumulation, and the backward keeps bf16 activations where "
             "nothing else reads them; vo-bf16-matmuls)"),
    cl::init("f32"), cl::cat(compileCategory));
cl::opt<std::string> bf16WeightCopies(
    "bf16-weight-copies",
    cl::desc("With --matmul-operands bf16: which weights keep a bf16 copy beside "
             "the f32 parameter, written by the optimizer step, instead of being "
             "rounded for each reader every step: none, experts (weights only MoE "
             "kernels read) or all; 2 bytes per copied parameter element "
             "(vo-keep-bf16-params)"),
    cl::init("none"), cl::cat(compileCategory));
cl::opt<std::string> moeProjections(
    "moe-projections",
    cl::desc("keep (the MoE backward reads the routed rows' gate/up projections "
             "the forward made: [tokens*k, 2*intermediate] f32 a layer, from the "
             "forward to the backward) or recompute (the backward redoes that "
             "GEMM, two thirds of the forward's FLOPs); expert-parallel layers "
             "always recompute (vo-keep-moe-projections)"),
    cl::init("keep"), cl::cat(compileCategory));
cl::opt<int64_t> gatherPrefetch(
    "gather-prefetch",
    cl::desc("How many gathers ahead each FSDP all-gather is issued, so the "
             "weight moves while earlier kernels compute (vo-prefetch-gathers; "
             "0: right before its use)"),
    cl::init(2), cl::cat(compileCategory));
cl::opt<bool> explain("explain",
                      cl::desc("Print the memory plan of the artifact"),
                      cl::cat(compileCategory));
cl::opt<std::string> emitMlir("emit-mlir",
                              cl::desc("Also write the planned runtime "
                                       "program (vrt) to this file"),
                              cl::value_desc("file"), cl::init(""),
                              cl::cat(compileCategory));

int fail(const Twine &message) {
  WithColor::error(errs(), "veomni-compile") << message << "\n";
  return 1;
}

/// Parses --recipe; checkExpertParallel and the passes check the degrees
/// against the model.
Error parseRecipe(StringRef text, ArtifactMetadata &meta) {
  SmallVector<StringRef> items;
  text.split(items, ',', -1, /*KeepEmpty=*/false);
  for (StringRef item : items) {
    auto [key, value] = item.split('=');
    key = key.trim();
    int degree;
    if (value.trim().getAsInteger(10, degree) || degree < 1)
      return createStringError(inconvertibleErrorCode(),
                               "--recipe: '" + item +
                                   "' is not key=N with N >= 1");
    if (key == "tp" || key == "pp")
      return createStringError(inconvertibleErrorCode(),
                               "--recipe: " + key +
                                   " (tensor/pipeline parallelism) is not "
                                   "supported; use dp, fsdp, sp and ep");
    int *slot = key == "dp"     ? &meta.dp
                : key == "fsdp" ? &meta.fsdp
                : key == "sp"   ? &meta.sp
                : key == "ep"   ? &meta.ep
                                : nullptr;
    if (!slot)
      return createStringError(inconvertibleErrorCode(),
                               "--recipe: unknown key '" + key +
                                   "' (expected dp, fsdp, sp, ep)");
    *slot = degree;
  }
  return Error::success();
}

/// Checks ep against the mesh and the model's MoE layers (DESIGN.md: ep
/// divides fsdp*sp and every layer's expert count) before any pass runs, so
/// the error names the recipe.
/// The smallest fsdp that, with the recipe's sp, makes room for its ep.
int smallestFsdp(const ArtifactMetadata &meta) {
  int fsdp = 1;
  while ((fsdp * meta.sp) % meta.ep != 0)
    ++fsdp;
  return fsdp;
}

Error checkExpertParallel(mlir::ModuleOp module, const ArtifactMetadata &meta) {
  if (meta.ep == 1)
    return Error::success();
  auto error = [](const Twine &message) {
    return createStringError(inconvertibleErrorCode(), "--recipe: " + message);
  };
  if ((meta.fsdp * meta.sp) % meta.ep != 0)
    return error("ep=" + Twine(meta.ep) + " does not divide fsdp*sp=" +
                 Twine(meta.fsdp * meta.sp) +
                 " (expert groups are carved from the fsdp x sp ranks; e.g. "
                 "fsdp=" + Twine(smallestFsdp(meta)) +
                 (meta.sp > 1 ? ",sp=" + Twine(meta.sp) : "") + ",ep=" + Twine(meta.ep) + ")");
  int layer = 0;
  Error found = Error::success();
  module.walk([&](vo::MoeExpertsOp experts) {
    ++layer;
    int64_t count =
        cast<mlir::RankedTensorType>(experts.getGateUp().getType()).getDimSize(0);
    if (!found && count % meta.ep != 0)
      found = error("ep=" + Twine(meta.ep) + " does not divide " + Twine(count) +
                    " experts in layer " + Twine(layer));
  });
  if (found)
    return found;
  if (layer == 0)
    return error("ep=" + Twine(meta.ep) +
                 ": the model has no MoE layer (vo.moe_experts) to split");
  return Error::success();
}

/// Finds the token and label inputs of @forward, checks their shapes against
/// the flags, and reads the vocabulary from the embedding of the tokens.
Error describeInputs(mlir::ModuleOp module, ArtifactMetadata &meta) {
  auto forward = module.lookupSymbol<mlir::func::FuncOp>("forward");
  if (!forward)
    return createStringError(inconvertibleErrorCode(),
                             "the module has no @forward (import a model "
                             "with veomni-import)");
  mlir::BlockArgument tokens, labels;
  for (mlir::BlockArgument arg : forward.getArguments()) {
    auto name = forward.getArgAttrOfType<mlir::StringAttr>(arg.getArgNumber(),
                                                           vo::kNameAttr);
    if (name && name.getValue() == meta.tokenInput)
      tokens = arg;
    if (name && name.getValue() == meta.labelInput)
      labels = arg;
  }
  for (auto [arg, what, flag] : {std::tuple(tokens, meta.tokenInput, "--token-input"),
                                 std::tuple(labels, meta.labelInput, "--label-input")})
    if (!arg)
      return createStringError(inconvertibleErrorCode(),
                               Twine("@forward has no input named '") + what +
                                   "' (set " + flag + ")");
  // The runtime feeds exactly these two; any other input would stay zero.
  for (mlir::BlockArgument arg : forward.getArguments())
    if (arg != tokens && arg != labels) {
      auto name = forward.getArgAttrOfType<mlir::StringAttr>(arg.getArgNumber(),
                                                             vo::kNameAttr);
      return createStringError(
          inconvertibleErrorCode(),
          "@forward input '" + (name ? name.getValue() : StringRef("?")) +
              "' is neither the token input ('" + meta.tokenInput +
              "') nor the label input ('" + meta.labelInput +
              "'); the runtime feeds only those (export without it, e.g. no "
              "attention_mask)");
    }
  auto type = cast<mlir::RankedTensorType>(tokens.getType());
  if (type.getRank() != 2 || labels.getType() != tokens.getType())
    return createStringError(
        inconvertibleErrorCode(),
        "expects token and label inputs of one shape [micro_batch, seq_len]");
  meta.microBatch = type.getDimSize(0);
  meta.seqLen = type.getDimSize(1);
  if (seqLen && seqLen != meta.seqLen)
    return createStringError(inconvertibleErrorCode(),
                             "--seq-len " + Twine(seqLen) +
                                 " differs from the model's " +
                                 Twine(meta.seqLen) +
                                 "; shapes are fixed at import: re-import "
                                 "with --dim (or re-export) for another length");
  if (microBatch && microBatch != meta.microBatch)
    return createStringError(inconvertibleErrorCode(),
                             "--micro-batch " + Twine(microBatch) +
                                 " differs from the model's " +
                                 Twine(meta.microBatch) +
                                 "; shapes are fixed at import: re-import "
                                 "with --dim (or re-export)");
  for (mlir::Operation *user : tokens.getUsers())
    if (auto embedding = dyn_cast<vo::EmbeddingOp>(user))
      meta.vocabSize =
          cast<mlir::RankedTensorType>(embedding.getTable().getType())
              .getDimSize(0);
  if (!meta.vocabSize)
    return createStringError(inconvertibleErrorCode(),
                             "input '" + meta.tokenInput +
                                 "' feeds no vo.embedding, so the vocabulary "
                                 "size is unknown");
  return Error::success();
}

std::string formatBytes(int64_t bytes) {
  char text[64];
  std::snprintf(text, sizeof(text), "%lld B (%.2f MiB)",
                static_cast<long long>(bytes), bytes / 1048576.0);
  return text;
}

} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(compileCategory);
  cl::ParseCommandLineOptions(
      argc, argv, "veomni-compile: a vo model into a training artifact\n");

  ArtifactMetadata meta;
  meta.tokenInput = tokenInput;
  meta.labelInput = labelInput;
  if (gradAccum < 1)
    return fail("--grad-accum must be >= 1, got " + Twine(gradAccum));
  meta.gradAccum = gradAccum;
  if (lrSchedule != "constant" && lrSchedule != "cosine")
    return fail("--lr-schedule must be constant or cosine, got '" +
                lrSchedule + "'");
  if (lrSchedule == "cosine" && trainSteps <= warmupSteps)
    return fail("--lr-schedule cosine needs --train-steps (" +
                Twine(trainSteps) + ") > --warmup-steps (" +
                Twine(warmupSteps) + ")");
  // Written as negations of what is valid, so NaN is rejected too; the
  // runtime checks the same ranges when it loads the artifact.
  if (!(lr > 0 && std::isfinite(lr)) || !(beta1 >= 0 && beta1 < 1) ||
      !(beta2 >= 0 && beta2 < 1) || !(eps > 0 && std::isfinite(eps)) ||
      !(weightDecay >= 0 && std::isfinite(weightDecay)) ||
      !(maxGradNorm >= 0 && std::isfinite(maxGradNorm)) ||
      !(minLr >= 0 && std::isfinite(minLr)))
    return fail("optimizer flags out of range: need lr > 0, 0 <= beta < 1, "
                "eps > 0, weight decay >= 0, max grad norm >= 0, min lr >= 0 "
                "(all finite)");
  meta.optimizer = {lr,         beta1,       beta2,      eps,
                    weightDecay, maxGradNorm, lrSchedule, warmupSteps,
                    trainSteps,  minLr};
  if (Error error = parseRecipe(recipe, meta))
    return fail(toString(std::move(error)));
  const DeviceFigures *device = lookupDeviceFigures(deviceModel);
  if (!device)
    return fail("--device-model " + deviceModel + ": expected h100 or h200");
  std::optional<KernelProfile> profile;
  if (!kernelProfile.empty()) {
    auto read = readKernelProfile(kernelProfile);
    if (!read)
      return fail(toString(read.takeError()));
    profile = std::move(*read);
  }

  mlir::DialectRegistry registry;
  registerAllDialects(registry);
  mlir::MLIRContext context(registry);
  SourceMgr sourceMgr;
  mlir::SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  std::string errorMessage;
  auto file = mlir::openInputFile(inputPath, &errorMessage);
  if (!file)
    return fail(errorMessage);
  sourceMgr.AddNewSourceBuffer(std::move(file), SMLoc());
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceFile<mlir::ModuleOp>(sourceMgr, &context);
  if (!module)
    return fail("cannot parse '" + inputPath + "' (see above)");
  if (Error error = describeInputs(*module, meta))
    return fail(toString(std::move(error)));
  if (Error error = checkExpertParallel(*module, meta))
    return fail(toString(std::move(error)));

  // The whole pipeline, source to planned runtime program, with the given
  // recomputation; `module` is changed in place.
  auto compile = [&](mlir::ModuleOp module, StringRef mode,
                     int64_t activationBudget) -> Error {
    mlir::PassManager pm(&context);
    pm.addPass(createVoShardSequence(
        VoShardSequenceOptions{meta.sp, meta.tokenInput}));
    pm.addPass(createVoTokenMeanLoss());
    pm.addPass(createVoAutodiff());
    // Before the roundings, which it would otherwise have to see through.
    pm.addPass(createVoShardExperts(VoShardExpertsOptions{meta.ep}));
    if (moeProjections == "keep")
      pm.addPass(createVoKeepMoeProjections());
    // Before recomputation, which then weighs the bf16 activations.
    if (matmulOperands == "bf16")
      pm.addPass(createVoBf16Matmuls());
    pm.addPass(createVoRecompute(VoRecomputeOptions{
        "forward_backward", mode.str(), activationBudget, deviceModel}));
    pm.addPass(createVoShardFsdp(
        VoShardFsdpOptions{meta.dp, meta.fsdp, meta.sp, meta.ep}));
    pm.addPass(createVoOptimizer(VoOptimizerOptions{
        beta1, beta2, eps, weightDecay, maxGradNorm, meta.gradAccum}));
    pm.addPass(mlir::createCanonicalizerPass());
    pm.addPass(mlir::createCSEPass());
    // Again: CSE merged the per-use roundings of each weight.
    if (matmulOperands == "bf16")
      pm.addPass(createVoBf16Matmuls());
    if (matmulOperands == "bf16" && bf16WeightCopies != "none")
      pm.addPass(createVoKeepBf16Params(VoKeepBf16ParamsOptions{bf16WeightCopies}));
    pm.addPass(createVoPrefetchGathers(VoPrefetchGathersOptions{gatherPrefetch}));
    if (mlir::failed(pm.run(module)))
      return createStringError(inconvertibleErrorCode(),
                               "building the training step failed (see above)");
    // The runtime needs only the entry points it calls.
    for (StringRef name : {"forward", "forward_backward"})
      if (auto func = module.lookupSymbol<mlir::func::FuncOp>(name))
        func.erase();
    mlir::PassManager lower(&context);
    lower.addPass(createVoLowerToVrt());
    lower.addPass(createVrtForwardStores());
    lower.addPass(createVrtPlanMemory());
    if (mlir::failed(lower.run(module)))
      return createStringError(inconvertibleErrorCode(),
                               "lowering to the runtime failed (see above)");
    return Error::success();
  };
  auto simulatedPeak = [](mlir::ModuleOp module, StringRef key) -> int64_t {
    auto report = module->getAttrOfType<mlir::DictionaryAttr>("vo.recompute");
    auto value = report ? report.getAs<mlir::IntegerAttr>(key) : nullptr;
    return value ? value.getInt() : 0;
  };
  auto plannedTotal = [](const MemoryReport &report) {
    int64_t arena = 0;
    for (auto &[name, bytes] : report.arenas)
      arena = std::max(arena, bytes);
    return report.parameters + report.parameterCopies + report.gradients +
           report.optimizerState +
           report.constants + arena;
  };

  if (matmulOperands != "f32" && matmulOperands != "bf16")
    return fail("--matmul-operands must be f32 or bf16, got '" + matmulOperands + "'");
  if (moeProjections != "keep" && moeProjections != "recompute")
    return fail("--moe-projections must be keep or recompute, got '" + moeProjections + "'");
  if (bf16WeightCopies != "none" && bf16WeightCopies != "experts" && bf16WeightCopies != "all")
    return fail("--bf16-weight-copies must be none, experts or all, got '" +
                bf16WeightCopies + "'");
  if (bf16WeightCopies != "none" && matmulOperands != "bf16")
    return fail("--bf16-weight-copies needs --matmul-operands bf16 (f32 matmuls read no "
                "bf16 weights)");
  if (gatherPrefetch < 0)
    return fail("--gather-prefetch must be >= 0, got " + std::to_string(gatherPrefetch));
  if (recomputeMode != "none" && recomputeMode != "full" && recomputeMode != "roi")
    return fail("--recompute must be none, full or roi, got '" + recomputeMode + "'");
  if (recomputeMode == "roi" && memoryBudget <= 0)
    return fail("--recompute roi needs --memory-budget (bytes per GPU)");
  int64_t activationBudget = 0;
  if (recomputeMode == "roi") {
    // The budget is for everything a GPU holds; the pass sees activations
    // only, on a simulation. Probes compile without recomputation and with
    // whole-layer checkpointing (the lowest plan there is); then the
    // activation budget is lowered until the exact plan fits.
    auto plan = [&](StringRef mode, int64_t budget, int64_t &total,
                    int64_t &simulated) -> Error {
      mlir::OwningOpRef<mlir::ModuleOp> probe = module->clone();
      if (Error error = compile(*probe, mode, budget))
        return error;
      auto report = measureArtifact(*probe);
      if (!report)
        return report.takeError();
      total = plannedTotal(*report);
      simulated = simulatedPeak(*probe, "peak_after");
      return Error::success();
    };
    int64_t noneTotal = 0, noneSimulated = 0, fullTotal = 0, fullSimulated = 0;
    if (Error error = plan("none", 0, noneTotal, noneSimulated))
      return fail(toString(std::move(error)));
    if (Error error = plan("full", 0, fullTotal, fullSimulated))
      return fail(toString(std::move(error)));
    int64_t lowest = std::min(noneTotal, fullTotal);
    if (memoryBudget < lowest)
      return fail("--memory-budget " + Twine(memoryBudget) +
                  " bytes cannot be met: the lowest peak recomputation reaches is " +
                  Twine(lowest) + " bytes per GPU (" + formatBytes(lowest) +
                  ", whole-layer checkpointing; without recomputation " +
                  formatBytes(noneTotal) + ")" +
                  (moeProjections == "keep" ? "; --moe-projections recompute keeps less" : ""));
    activationBudget = noneTotal <= memoryBudget
                           ? noneSimulated
                           : noneSimulated - (noneTotal - memoryBudget);
    bool fits = false;
    for (int attempt = 0; attempt < 8 && !fits; ++attempt) {
      // Below what whole-layer checkpointing simulates, the pass takes that.
      activationBudget = std::max(activationBudget, fullSimulated);
      int64_t total = 0, simulated = 0;
      if (Error error = plan("roi", activationBudget, total, simulated))
        return fail(toString(std::move(error)));
      fits = total <= memoryBudget;
      if (fits || activationBudget == fullSimulated)
        break;
      activationBudget -= total - memoryBudget;
    }
    if (!fits) {
      // ROI's choices plan worse than layer boundaries here; those fit.
      outs() << "recomputation: roi found no plan within the budget; using full\n";
      recomputeMode = "full";
    }
  }
  if (Error error = compile(*module, recomputeMode, activationBudget))
    return fail(toString(std::move(error)));
  if (memoryBudget > 0) {
    auto report = measureArtifact(*module);
    if (!report)
      return fail(toString(report.takeError()));
    if (plannedTotal(*report) > memoryBudget)
      return fail("the plan needs " + Twine(plannedTotal(*report)) +
                  " bytes per GPU, over --memory-budget " + Twine(memoryBudget) +
                  " (the recompute pass estimated activations at " +
                  Twine(simulatedPeak(*module, "peak_after")) +
                  " bytes); lower the budget passed to it or use --recompute full" +
                  (moeProjections == "keep" ? " (or --moe-projections recompute)" : ""));
  }

  if (!emitMlir.empty()) {
    auto out = mlir::openOutputFile(emitMlir, &errorMessage);
    if (!out)
      return fail(errorMessage);
    (*module)->print(out->os());
    out->keep();
  }
  if (explain) {
    auto report = measureArtifact(*module);
    if (!report)
      return fail(toString(report.takeError()));
    outs() << "memory plan (per rank, exact; " << meta.dp * meta.fsdp * meta.sp
           << " rank" << (meta.dp * meta.fsdp * meta.sp > 1 ? "s" : "")
           << "):\n"
           << "  parameters (fp32 master)   " << formatBytes(report->parameters)
           << "\n";
    if (report->parameterCopies)
      outs() << "  bf16 weight copies         " << formatBytes(report->parameterCopies)
             << "\n";
    outs()
           << "  gradient accumulators      " << formatBytes(report->gradients)
           << "\n"
           << "  optimizer state (m, v)     "
           << formatBytes(report->optimizerState) << "\n"
           << "  constants                  " << formatBytes(report->constants)
           << "\n";
    int64_t peakArena = 0;
    for (auto &[name, bytes] : report->arenas) {
      outs() << "  arena @" << name;
      outs().indent(std::max<int>(1, 24 - name.size()));
      outs() << formatBytes(bytes) << "\n";
      peakArena = std::max(peakArena, bytes);
    }
    int64_t total = report->parameters + report->parameterCopies + report->gradients +
                    report->optimizerState + report->constants + peakArena;
    GpuExtras extras = gpuExtras(*module);
    outs() << "  peak activations (largest arena) " << formatBytes(peakArena)
           << "\n  total                      " << formatBytes(total) << "\n"
           << "  on a GPU also: cuBLASLt workspace " << formatBytes(extras.cublasWorkspace)
           << ", collective scratch " << formatBytes(extras.collectiveScratch)
           << ", kernel scratch about " << formatBytes(extras.kernelScratch())
           << " (the largest of MoE's " << formatBytes(extras.moeScratch)
           << ", bf16 attention's " << formatBytes(extras.attentionScratch)
           << " and bf16 matmul's " << formatBytes(extras.matmulScratch) << ")";
    if (extras.expertExchange > 0)
      outs() << ", expert-parallel exchange buffers about "
             << formatBytes(extras.expertExchange) << " (balanced routing)";
    outs()
           << "\n  total on a GPU (without the CUDA context) "
           << formatBytes(total + extras.total()) << "\n";
    if (!report->collectives.empty()) {
      // The runtime calls count_tokens and micro_step once per micro-batch.
      outs() << "collectives per optimizer step (per rank):\n";
      int64_t calls = 0, bytes = 0;
      for (auto &c : report->collectives) {
        int64_t times = c.function == "optimizer_step" ? 1 : meta.gradAccum;
        outs() << "  @" << c.function << " x" << times << "  " << c.kind
               << " over (" << c.axes << "): " << c.calls * times << " calls, "
               << formatBytes(c.bytes * times) << "\n";
        calls += c.calls * times;
        bytes += c.bytes * times;
      }
      outs() << "  total " << calls << " calls, " << formatBytes(bytes) << "\n";
    }
  }
  if (explain) {
    if (auto report = (*module)->getAttrOfType<mlir::DictionaryAttr>("vo.recompute")) {
      auto get = [&](StringRef key) {
        auto value = report.getAs<mlir::IntegerAttr>(key);
        return value ? value.getInt() : int64_t{0};
      };
      outs() << "recomputation (" << recomputeMode << "): " << get("recomputed")
             << " values; extra " << llvm::format("%.6e", double(get("extra_flops")) * meta.gradAccum)
             << " FLOP per optimizer step; activation peak (simulated) "
             << formatBytes(get("peak_before")) << " -> " << formatBytes(get("peak_after"))
             << "\n";
    }
    StepEstimate step = estimateStep(*module, *device, meta.gradAccum,
                                     profile ? &*profile : nullptr);
    outs() << llvm::format("compute per optimizer step (per rank): %.3f TFLOP; "
                           "predicted %.1f ms on %s",
                           step.flops / 1e12, step.seconds * 1e3,
                           device->name.c_str())
           << (profile ? " (measured kernel times where profiled)" : "")
           << "\n";
    for (size_t i = 0; i < step.kernels.size(); ++i) {
      const KernelEstimate &k = step.kernels[i];
      outs() << llvm::format("  %-20s %7lld launches  %.6e FLOP  %9.2f ms  %5.1f%%\n",
                             k.kernel.c_str(), static_cast<long long>(k.launches),
                             k.flops, k.seconds * 1e3,
                             100 * k.seconds / std::max(step.seconds, 1e-30));
    }
  }
  if (Error error = writeArtifact(*module, meta, outputPath))
    return fail(toString(std::move(error)));
  return 0;
}
