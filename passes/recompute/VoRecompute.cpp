//===- VoRecompute.cpp - recompute activations in the backward ------------===//
//
// Chooses which activations saved for the backward are recomputed there
// instead (see Passes.td), on a simulation of the activation peak over the
// op order, and clones them before their first backward use.
//
//===----------------------------------------------------------------------===//

#include "dialects/vo/VoOps.h"
#include "passes/Passes.h"
#include "passes/recompute/DeviceFigures.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SetVector.h"

#include <algorithm>
#include <limits>

namespace veomni {
#define GEN_PASS_DEF_VORECOMPUTE
#include "passes/Passes.h.inc"
} // namespace veomni

using namespace mlir;
using namespace veomni::vo;

namespace {

int64_t bytesOf(Value value) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!type)
    return 0;
  unsigned bits = type.getElementType().getIntOrFloatBitWidth();
  return type.getNumElements() * (bits == 1 ? 1 : bits / 8);
}

int64_t elementsOf(Value value) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  return type ? type.getNumElements() : 0;
}

/// FLOPs of one vo op and whether they run on tensor cores: products for
/// matmul and attention, one operation per element otherwise.
std::pair<double, bool> opFlops(Operation *op) {
  if (auto matmul = dyn_cast<MatmulOp>(op)) {
    auto lhs = cast<RankedTensorType>(matmul.getLhs().getType()).getShape();
    int64_t k = matmul.getTransposeLhs() ? lhs[lhs.size() - 2] : lhs.back();
    return {2.0 * elementsOf(matmul.getResult()) * k, true};
  }
  if (auto attention = dyn_cast<AttentionOp>(op)) {
    auto q = cast<RankedTensorType>(attention.getQuery().getType()).getShape();
    auto k = cast<RankedTensorType>(attention.getKey().getType()).getShape();
    auto v = cast<RankedTensorType>(attention.getValue().getType()).getShape();
    double flops = 2.0 * q[0] * q[1] * q[2] * k[2] * (q[3] + v[3]);
    return {attention.getCausal() ? flops / 2 : flops, true};
  }
  double elements = 0;
  for (Value value : op->getOperands())
    elements = std::max<double>(elements, elementsOf(value));
  for (Value value : op->getResults())
    elements = std::max<double>(elements, elementsOf(value));
  return {elements, false};
}

/// Ops that may run a second time: pure vo compute with one result. MoE ops
/// stay (expert sharding gives each expert weight exactly one reader).
bool isRecomputable(Operation *op) {
  if (!op || op->getNumResults() != 1 || !isa<VoDialect>(op->getDialect()))
    return false;
  return !isa<ParamOp, ConstantOp, MoeGateOp, MoeExpertsOp>(op);
}

struct Candidate {
  Value value;
  SmallVector<Value> chain; // forward-only values recomputed with it
  double flops = 0, seconds = 0, roi = 0;
};

/// The op order of a function with some values recomputed, as liveness sees
/// it: each backward op is preceded by the recomputation of the recomputed
/// values it reads (chains first).
class PeakSimulator {
 public:
  PeakSimulator(ArrayRef<Operation *> ops, size_t firstBackward)
      : ops(ops), firstBackward(firstBackward) {}

  int64_t peak(const llvm::SmallPtrSetImpl<void *> &recomputed) const {
    // Value ids: originals by pointer, copies appended.
    llvm::DenseMap<Value, int> ids;
    std::vector<int64_t> bytes;
    std::vector<int> lastUse;
    std::vector<int> defAt;
    auto idOf = [&](Value value) {
      auto [it, inserted] = ids.try_emplace(value, static_cast<int>(bytes.size()));
      if (inserted) {
        Operation *def = value.getDefiningOp();
        bool counted = def && !isa<ParamOp, ConstantOp>(def);
        bytes.push_back(counted ? bytesOf(value) : 0);
        lastUse.push_back(-1);
        defAt.push_back(-1);
      }
      return it->second;
    };
    llvm::DenseMap<Value, int> copies;
    int step = 0;
    std::function<int(Value)> recompute = [&](Value value) -> int {
      if (auto it = copies.find(value); it != copies.end())
        return it->second;
      Operation *def = value.getDefiningOp();
      for (Value operand : def->getOperands()) {
        int id = recomputed.count(operand.getAsOpaquePointer())
                     ? recompute(operand)
                     : idOf(operand);
        lastUse[id] = step;
      }
      int copy = static_cast<int>(bytes.size());
      bytes.push_back(bytesOf(value));
      lastUse.push_back(step);
      defAt.push_back(step);
      copies[value] = copy;
      ++step;
      return copy;
    };
    for (size_t i = 0; i < ops.size(); ++i) {
      Operation *op = ops[i];
      bool backward = i >= firstBackward;
      SmallVector<int> operandIds;
      for (Value operand : op->getOperands())
        operandIds.push_back(backward && recomputed.count(operand.getAsOpaquePointer())
                                 ? recompute(operand)
                                 : idOf(operand));
      for (int id : operandIds)
        lastUse[id] = step;
      for (Value result : op->getResults()) {
        int id = idOf(result);
        defAt[id] = step;
        lastUse[id] = std::max(lastUse[id], step);
      }
      ++step;
    }
    std::vector<int64_t> delta(step + 1, 0);
    for (size_t id = 0; id < bytes.size(); ++id) {
      if (defAt[id] < 0 || bytes[id] == 0)
        continue; // block arguments, parameters, constants
      delta[defAt[id]] += bytes[id];
      delta[std::max(lastUse[id], defAt[id]) + 1] -= bytes[id];
    }
    int64_t live = 0, peak = 0;
    for (int64_t change : delta) {
      live += change;
      peak = std::max(peak, live);
    }
    return peak;
  }

 private:
  ArrayRef<Operation *> ops;
  size_t firstBackward;
};

struct VoRecomputePass : veomni::impl::VoRecomputeBase<VoRecomputePass> {
  using VoRecomputeBase::VoRecomputeBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (mode != "none" && mode != "full" && mode != "roi") {
      module.emitError() << "vo-recompute: mode must be none, full or roi, got '"
                         << mode << "'";
      return signalPassFailure();
    }
    const veomni::DeviceFigures *device = veomni::lookupDeviceFigures(deviceName);
    if (!device) {
      module.emitError() << "vo-recompute: device must be h100 or h200, got '"
                         << deviceName << "'";
      return signalPassFailure();
    }
    auto func = module.lookupSymbol<func::FuncOp>(functionName);
    if (!func || func.getBody().getBlocks().size() != 1) {
      module.emitError() << "vo-recompute: no single-block function @" << functionName;
      return signalPassFailure();
    }
    Block &block = func.getBody().front();
    auto ret = cast<func::ReturnOp>(block.getTerminator());
    Operation *lossOp = ret.getNumOperands() ? ret.getOperand(0).getDefiningOp() : nullptr;
    if (!lossOp) {
      func.emitError() << "vo-recompute expects @" << functionName
                       << " to return the loss, computed by an op, first";
      return signalPassFailure();
    }
    SmallVector<Operation *> ops;
    llvm::DenseMap<Operation *, size_t> position;
    for (Operation &op : block) {
      position[&op] = ops.size();
      ops.push_back(&op);
    }
    const size_t firstBackward = position[lossOp] + 1;
    auto isBackward = [&](Operation *user) {
      auto it = position.find(user);
      return it != position.end() && it->second >= firstBackward && user != ret;
    };

    // Candidates and their chains.
    auto isSaved = [&](Value value) {
      return llvm::any_of(value.getUsers(), isBackward);
    };
    std::vector<Candidate> candidates;
    for (size_t i = 0; i < firstBackward; ++i) {
      Operation *op = ops[i];
      if (!isRecomputable(op) || op == lossOp || !isSaved(op->getResult(0)))
        continue;
      Candidate candidate;
      candidate.value = op->getResult(0);
      bool ok = true;
      llvm::SetVector<Value> chain;
      SmallVector<Operation *> work = {op};
      while (!work.empty() && ok) {
        Operation *current = work.pop_back_val();
        auto [flops, tensorCores] = opFlops(current);
        double moved = 0;
        for (Value operand : current->getOperands())
          moved += bytesOf(operand);
        moved += bytesOf(current->getResult(0));
        candidate.flops += flops;
        candidate.seconds += device->seconds(flops, moved, tensorCores) + device->launchSeconds;
        for (Value operand : current->getOperands()) {
          Operation *def = operand.getDefiningOp();
          if (!def || isa<ParamOp, ConstantOp>(def) || isSaved(operand) || chain.contains(operand))
            continue; // available in the backward as it is
          if (!isRecomputable(def)) {
            ok = false;
            break;
          }
          chain.insert(operand);
          work.push_back(def);
        }
      }
      if (!ok)
        continue;
      candidate.chain.assign(chain.begin(), chain.end());
      candidate.roi = bytesOf(candidate.value) / std::max(candidate.seconds, 1e-12);
      candidates.push_back(std::move(candidate));
    }

    PeakSimulator simulator(ops, firstBackward);
    llvm::SmallPtrSet<void *, 32> none;
    const int64_t before = simulator.peak(none);
    // Whole-layer checkpointing: everything but the residual stream.
    llvm::SmallPtrSet<void *, 32> layerwise;
    for (const Candidate &c : candidates) {
      if (isa<AddOp, EmbeddingOp>(c.value.getDefiningOp()))
        continue;
      layerwise.insert(c.value.getAsOpaquePointer());
      for (Value v : c.chain)
        layerwise.insert(v.getAsOpaquePointer());
    }
    const int64_t layerwisePeak = simulator.peak(layerwise);

    // The chosen candidates, in the order they were taken.
    std::vector<const Candidate *> chosen;
    llvm::SmallPtrSet<void *, 32> recomputed;
    auto take = [&](const Candidate &c) {
      recomputed.insert(c.value.getAsOpaquePointer());
      for (Value v : c.chain)
        recomputed.insert(v.getAsOpaquePointer());
      chosen.push_back(&c);
    };
    auto takeLayerwise = [&] {
      recomputed.clear();
      chosen.clear();
      for (const Candidate &c : candidates)
        if (!isa<AddOp, EmbeddingOp>(c.value.getDefiningOp()))
          take(c);
    };
    int64_t peak = before;
    // The lowest peak found: recomputing values whose chains reach back to
    // other recomputed values re-runs the forward at once, so recomputing
    // every candidate is no lower than keeping layer boundaries.
    int64_t lowest = std::min(before, layerwisePeak);
    if (mode == "full") {
      takeLayerwise();
      peak = layerwisePeak;
    } else if (mode == "roi") {
      std::vector<const Candidate *> order;
      for (const Candidate &c : candidates)
        order.push_back(&c);
      std::stable_sort(order.begin(), order.end(),
                       [](const Candidate *a, const Candidate *b) { return a->roi > b->roi; });
      for (const Candidate *c : order) {
        if (peak <= activationBudget)
          break;
        llvm::SmallPtrSet<void *, 32> trial = recomputed;
        trial.insert(c->value.getAsOpaquePointer());
        for (Value v : c->chain)
          trial.insert(v.getAsOpaquePointer());
        int64_t trialPeak = simulator.peak(trial);
        if (trialPeak >= peak)
          continue; // frees nothing at the peak
        take(*c);
        peak = trialPeak;
      }
      lowest = std::min(lowest, peak);
      if (peak > activationBudget && layerwisePeak <= activationBudget) {
        takeLayerwise();
        peak = layerwisePeak;
      }
      if (peak > activationBudget) {
        func.emitError() << "vo-recompute: an activation budget of " << static_cast<int64_t>(activationBudget)
                         << " bytes cannot be met: the lowest activation peak found is "
                         << lowest << " bytes (" << candidates.size() << " candidates)";
        return signalPassFailure();
      }
    }

    // Clone each recomputed value (chain first) before its first backward
    // use, in order of those uses, and point the backward at the clones.
    OpBuilder builder(func.getContext());
    IRMapping clones;
    int64_t extraFlops = 0;
    std::function<Value(Value, Operation *)> materialize = [&](Value value,
                                                              Operation *before) -> Value {
      if (Value done = clones.lookupOrNull(value))
        return done;
      Operation *def = value.getDefiningOp();
      for (Value operand : def->getOperands())
        if (recomputed.count(operand.getAsOpaquePointer()))
          materialize(operand, before);
      builder.setInsertionPoint(before);
      Operation *copy = builder.clone(*def, clones);
      copy->setAttr("vo.recomputed", builder.getUnitAttr());
      extraFlops += static_cast<int64_t>(opFlops(def).first);
      return copy->getResult(0);
    };
    SmallVector<std::pair<size_t, Value>> roots;
    for (const Candidate *c : chosen) {
      size_t first = std::numeric_limits<size_t>::max();
      for (Operation *user : c->value.getUsers())
        if (isBackward(user))
          first = std::min(first, position[user]);
      roots.push_back({first, c->value});
    }
    llvm::sort(roots, [](const auto &a, const auto &b) { return a.first < b.first; });
    for (auto &[first, value] : roots) {
      Value copy = materialize(value, ops[first]);
      value.replaceUsesWithIf(copy, [&](OpOperand &use) { return isBackward(use.getOwner()); });
    }
    // Chain values read by backward ops of their own (none: they were
    // forward-only) keep their uses; nothing else changes.

    Builder attrs(func.getContext());
    module->setAttr("vo.recompute",
                    attrs.getDictionaryAttr({
                        attrs.getNamedAttr("mode", attrs.getStringAttr(mode)),
                        attrs.getNamedAttr("peak_before", attrs.getI64IntegerAttr(before)),
                        attrs.getNamedAttr("peak_after", attrs.getI64IntegerAttr(peak)),
                        attrs.getNamedAttr("lowest_peak", attrs.getI64IntegerAttr(lowest)),
                        attrs.getNamedAttr("recomputed",
                                           attrs.getI64IntegerAttr(recomputed.size())),
                        attrs.getNamedAttr("extra_flops", attrs.getI64IntegerAttr(extraFlops)),
                    }));
  }
};

} // namespace
