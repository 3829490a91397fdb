//===- CostModel.cpp - FLOPs, bytes and time of a lowered step ------------===//

#include "compiler/CostModel.h"

#include "compiler/ArtifactWriter.h"
#include "dialects/vrt/VrtDialect.h"
#include "runtime/kernels/MatmulCopies.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <algorithm>
#include <map>

using namespace mlir;
using namespace veomni;

namespace {

RankedTensorType typeOf(Value value) {
  return cast<RankedTensorType>(value.getType());
}

int64_t intParam(vrt::LaunchOp launch, StringRef name, int64_t fallback) {
  if (auto attr = launch.getParams().getAs<IntegerAttr>(name))
    return attr.getInt();
  return fallback;
}

/// softmax(q k^T) v over [B, Hq, S, D] queries and [B, Hkv, Sk, D] keys:
/// two products of 2 * B * Hq * S * Sk * D FLOPs, half of them under a
/// causal mask (the baseline's count).
double attentionFlops(vrt::LaunchOp launch) {
  auto q = typeOf(launch.getInputs()[0]).getShape();
  auto k = typeOf(launch.getInputs()[1]).getShape();
  auto v = typeOf(launch.getInputs()[2]).getShape();
  if (q.size() != 4 || k.size() != 4 || v.size() != 4)
    return 0;
  double flops = 2.0 * q[0] * q[1] * q[2] * k[2] * (q[3] + v[3]);
  return intParam(launch, "causal", 0) ? flops / 2 : flops;
}

/// How the GPU's bf16 matmul rounds this launch's operands
/// (runtime/kernels/cuda/Matmul.cpp): false when it keeps them f32.
bool matmulCopies(vrt::LaunchOp launch, runtime::MatmulCopyPlan &plan) {
  auto lhs = typeOf(launch.getInputs()[0]);
  auto rhs = typeOf(launch.getInputs()[1]);
  auto out = typeOf(launch.getResult(0)).getShape();
  // bf16 operands (vo-bf16-matmuls) are multiplied as they are.
  if (lhs.getRank() < 2 || out.size() < 2 || !lhs.getElementType().isF32())
    return false;
  int64_t m = out[out.size() - 2], n = out.back();
  int64_t k = intParam(launch, "transpose_lhs", 0) ? lhs.getShape()[lhs.getRank() - 2]
                                                   : lhs.getShape().back();
  if (m * n == 0 || k == 0)
    return false;
  int64_t count = typeOf(launch.getResult(0)).getNumElements() / (m * n);
  if (count == 1)
    return runtime::PlanMatmulCopies(m, n, k, runtime::kMatmulCopyBytes, &plan);
  // A batch is rounded whole or not at all.
  int64_t whole = runtime::AlignedCopyBytes(lhs.getNumElements()) +
                  runtime::AlignedCopyBytes(rhs.getNumElements());
  if (whole > runtime::kMatmulCopyBytes)
    return false;
  plan = {m, n, k, whole, lhs.getNumElements() + rhs.getNumElements(), 0};
  return true;
}

} // namespace

LaunchWork veomni::launchWork(Operation *op) {
  auto launch = cast<vrt::LaunchOp>(op);
  LaunchWork work;
  // A reshape of an arena value shares its bytes (vrt-plan-memory), and the
  // kernel skips a copy onto itself: only the launch costs.
  if (launch.getKernel() == "reshape" && launch.getInputs().size() == 1 &&
      launch.getOffsetsAttr() && !vrt::getForwardedStore(launch.getResult(0))) {
    Value input = launch.getInputs()[0];
    auto producer = input.getDefiningOp<vrt::LaunchOp>();
    if (producer && producer.getOffsetsAttr() && !vrt::getForwardedStore(input)) {
      unsigned index = cast<OpResult>(input).getResultNumber();
      if (producer.getOffsetsAttr()[index] == launch.getOffsetsAttr()[0])
        return work;
    }
  }
  for (Value value : launch.getInputs())
    work.bytes += tensorBytes(typeOf(value));
  for (Value value : launch.getResults())
    work.bytes += tensorBytes(typeOf(value));
  StringRef kernel = launch.getKernel();
  if (llvm::is_contained({"all_gather", "reduce_scatter", "all_reduce", "all_to_all"},
                         kernel)) {
    // What one rank moves: the larger side.
    work.collective = true;
    work.bytes = std::max(tensorBytes(typeOf(launch.getInputs()[0])),
                          tensorBytes(typeOf(launch.getResult(0))));
    return work;
  }
  if (kernel == "matmul") {
    auto lhs = typeOf(launch.getInputs()[0]).getShape();
    int64_t contracted =
        intParam(launch, "transpose_lhs", 0) ? lhs[lhs.size() - 2] : lhs.back();
    work.flops = 2.0 * typeOf(launch.getResult(0)).getNumElements() * contracted;
    work.tensorCores = true;
    // At bf16 (the GPU's training precision) the f32 operands are first
    // rounded into bf16 copies, 4 bytes read and 2 written per element, in
    // pieces when whole copies would pass the scratch limit.
    runtime::MatmulCopyPlan plan;
    if (matmulCopies(launch, plan))
      work.prepareBytes = 6.0 * plan.rounded_elements + 8.0 * plan.reread_outputs;
  } else if (kernel == "attention") {
    work.flops = attentionFlops(launch);
    work.tensorCores = true;
    work.engine = LaunchWork::Engine::kAttention;
  } else if (kernel == "attention_grad") {
    // dq, dk, dv, dp and the recomputed scores: five products to two.
    work.flops = 2.5 * attentionFlops(launch);
    work.tensorCores = true;
    work.engine = LaunchWork::Engine::kAttentionGrad;
  } else if (kernel == "moe_experts" || kernel == "moe_experts_grad") {
    // x [T, H], indices [T, k], gate_up [E, 2I, H]: per routed row a
    // [H] x [H, 2I] and an [I] x [I, H] product.
    auto x = typeOf(launch.getInputs()[0]).getShape();
    auto indices = typeOf(launch.getInputs()[1]).getShape();
    auto gateUp = typeOf(launch.getInputs()[3]).getShape();
    if (x.size() == 2 && indices.size() == 2 && gateUp.size() == 3) {
      double rows = static_cast<double>(x[0]) * indices[1];
      double forward = 2.0 * rows * x[1] * (gateUp[1] + gateUp[1] / 2);
      // The backward recomputes the forward and takes two products per one;
      // given the forward's gate/up projection (a 7th operand), all but it.
      double kept = launch.getInputs().size() == 7 ? 2.0 * rows * x[1] * gateUp[1] : 0.0;
      work.flops = kernel == "moe_experts" ? forward : 3.0 * forward - kept;
      work.tensorCores = true;
      work.engine = LaunchWork::Engine::kGroupedGemm;
      // f32 weights are rounded into bf16 copies by every launch (4 bytes
      // read, 2 written per element); bf16 ones (vo-bf16-matmuls) are read
      // as they are.
      if (typeOf(launch.getInputs()[3]).getElementType().isF32())
        work.prepareBytes = 6.0 * (typeOf(launch.getInputs()[3]).getNumElements() +
                                   typeOf(launch.getInputs()[4]).getNumElements());
    }
  } else {
    // Elementwise, reductions, norms: about one operation per element of
    // the larger side (a reduction reads many elements into few).
    double in = 0, out = 0;
    for (Value value : launch.getInputs())
      in = std::max<double>(in, typeOf(value).getNumElements());
    for (Value value : launch.getResults())
      out += typeOf(value).getNumElements();
    work.flops = std::max(in, out);
  }
  return work;
}

double veomni::launchSeconds(const LaunchWork &work, const DeviceFigures &device) {
  if (work.collective)
    return work.bytes / device.ncclBytes;
  double rate = device.matmulFlops;
  switch (work.engine) {
  case LaunchWork::Engine::kGemm: break;
  case LaunchWork::Engine::kAttention: rate = device.attentionFlops; break;
  case LaunchWork::Engine::kAttentionGrad: rate = device.attentionGradFlops; break;
  case LaunchWork::Engine::kGroupedGemm: rate = device.groupedGemmFlops; break;
  }
  double compute = work.tensorCores ? work.flops / rate : work.flops / device.vectorFlops;
  return std::max(compute, work.bytes / device.memoryBytes) +
         work.prepareBytes / device.memoryBytes;
}

llvm::Expected<KernelProfile> veomni::readKernelProfile(StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return llvm::createStringError(buffer.getError(),
                                   "cannot read profile '" + path + "'");
  auto parsed = llvm::json::parse((*buffer)->getBuffer());
  if (!parsed)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "profile '" + path + "' is not JSON: " +
                                       llvm::toString(parsed.takeError()));
  const llvm::json::Object *kernels = parsed->getAsObject();
  if (!kernels)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "profile '" + path + "' is not a JSON object");
  KernelProfile profile;
  for (const auto &[name, entry] : *kernels) {
    const llvm::json::Object *fields = entry.getAsObject();
    std::optional<int64_t> launches = fields ? fields->getInteger("launches") : std::nullopt;
    std::optional<double> seconds = fields ? fields->getNumber("seconds") : std::nullopt;
    if (!launches || !seconds || *launches <= 0 || *seconds < 0)
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "profile '" + path + "': kernel '" + name.str() +
              "' needs a positive \"launches\" and \"seconds\" >= 0");
    profile[name.str()] = {*launches, *seconds};
  }
  return profile;
}

StepEstimate veomni::estimateStep(ModuleOp module, const DeviceFigures &device,
                                  int64_t gradAccum, const KernelProfile *measured) {
  std::map<std::string, KernelEstimate> byKernel;
  for (auto func : module.getOps<func::FuncOp>()) {
    StringRef name = func.getSymName();
    int64_t times = name == "optimizer_step" ? 1 : gradAccum;
    func.walk([&](vrt::LaunchOp launch) {
      LaunchWork work = launchWork(launch);
      double seconds = launchSeconds(work, device);
      KernelEstimate &entry = byKernel[launch.getKernel().str()];
      entry.kernel = launch.getKernel().str();
      entry.launches += times;
      entry.flops += work.flops * times;
      entry.seconds += (seconds + device.launchSeconds) * times;
    });
  }
  StepEstimate step;
  for (auto &[kernel, entry] : byKernel) {
    if (measured) {
      auto found = measured->find(kernel);
      // The profile's time per launch of this kernel, times this step's launches.
      if (found != measured->end())
        entry.seconds = found->second.second / found->second.first * entry.launches;
    }
    step.flops += entry.flops;
    step.seconds += entry.seconds;
    step.kernels.push_back(entry);
  }
  llvm::sort(step.kernels, [](const KernelEstimate &a, const KernelEstimate &b) {
    return a.seconds > b.seconds;
  });
  return step;
}

GpuExtras veomni::gpuExtras(ModuleOp module) {
  GpuExtras extras;
  extras.cublasWorkspace = int64_t{32} << 20; // CudaDevice's kCublasLtWorkspaceBytes
  module.walk([&](vrt::LaunchOp launch) {
    StringRef kernel = launch.getKernel();
    int64_t group = intParam(launch, "group_size", 1);
    if (group > 1 && (kernel == "all_gather" || kernel == "reduce_scatter")) {
      auto in = typeOf(launch.getInputs()[0]);
      int64_t dim = intParam(launch, "dim", 0);
      if (dim < 0)
        dim += in.getRank();
      int64_t outer = 1;
      for (int64_t d = 0; d < dim && d < in.getRank(); ++d)
        outer *= in.getDimSize(d);
      if (outer > 1)
        extras.collectiveScratch = std::max(
            extras.collectiveScratch,
            tensorBytes(in) * (kernel == "all_gather" ? group : 1));
    } else if (group > 1 && kernel == "all_to_all") {
      extras.collectiveScratch =
          std::max(extras.collectiveScratch, 2 * tensorBytes(typeOf(launch.getInputs()[0])));
    } else if (kernel == "matmul") {
      runtime::MatmulCopyPlan plan;
      if (matmulCopies(launch, plan))
        extras.matmulScratch = std::max(extras.matmulScratch, plan.scratch_bytes);
    } else if (kernel == "attention" || kernel == "attention_grad") {
      // q [B, Hq, S, D], k and v [B, Hkv, Sk, D].
      auto q = typeOf(launch.getInputs()[0]).getShape();
      auto k = typeOf(launch.getInputs()[1]).getShape();
      if (q.size() == 4 && k.size() == 4) {
        int64_t qCount = q[0] * q[1] * q[2] * q[3], kvCount = k[0] * k[1] * k[2] * k[3];
        int64_t bytes = kernel == "attention"
                            ? 2 * (2 * qCount + 2 * kvCount)
                            : 2 * (4 * qCount + 4 * kvCount) + 4 * q[0] * q[1] * q[2] +
                                  4 * qCount;
        extras.attentionScratch = std::max(extras.attentionScratch, bytes);
      }
    } else if (kernel == "moe_experts" || kernel == "moe_experts_grad") {
      auto x = typeOf(launch.getInputs()[0]).getShape();
      auto indices = typeOf(launch.getInputs()[1]).getShape();
      auto gateUp = typeOf(launch.getInputs()[3]).getShape();
      if (x.size() == 2 && indices.size() == 2 && gateUp.size() == 3) {
        int64_t rows = x[0] * indices[1], inner = gateUp[1] / 2;
        int64_t experts = gateUp[0], hidden = x[1];
        bool grad = kernel == "moe_experts_grad";
        // Both launches take the backward's scratch (MoeExpertsScratchBytes):
        // f32 rows, and at bf16 (the GPU's training precision) rounded
        // copies of the routed rows and both weights, rows padded to 8.
        int64_t perRow = 4 * inner + hidden;
        auto pad = [](int64_t count) { return (count + 7) / 8 * 8; };
        int64_t bf16PerRow = 3 * pad(hidden) + pad(inner) + pad(2 * inner);
        // bf16 weights (vo-bf16-matmuls rounded them) are read in place.
        bool weightsBf16 = typeOf(launch.getInputs()[3]).getElementType().isBF16();
        int64_t bf16Weights =
            weightsBf16 ? 0 : experts * (2 * inner * pad(hidden) + hidden * pad(inner));
        // The routing's i32 arrays: a rank, the order and the position per
        // row, a count per 256-row chunk and expert, and the offsets.
        int64_t routing = 4 * (3 * rows + (rows + 255) / 256 * experts + 2 * (experts + 1));
        extras.moeScratch =
            std::max(extras.moeScratch,
                     4 * rows * perRow + 2 * (rows * bf16PerRow + bf16Weights) + routing);
        if (intParam(launch, "group_size", 1) > 1) {
          // Expert parallelism on a GPU (MoeExpertsExpertParallelOnDevice):
          // f32 rows of H sent, received, computed, returned and gathered
          // for the combine (x, and y_grad and x_grad in the backward), and
          // i64 index and f32 weight columns. Routing decides the counts;
          // this takes the balanced case, every member receiving the rows
          // it sends.
          int64_t floatRows = grad ? 7 : 5, columns = grad ? 56 : 48;
          extras.expertExchange = std::max(extras.expertExchange,
                                           rows * (4 * floatRows * x[1] + columns));
        }
      }
    }
  });
  return extras;
}
