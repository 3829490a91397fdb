//===- VrtPlanMemory.cpp - static arena offsets from liveness -------------===//
//
// Functions are straight-line, so liveness is an interval of op indices per
// value. Placing intervals largest-first at the lowest free offset is the
// classic greedy-by-size heuristic (TFLite's and IREE's planners use the
// same idea); it is exact about peaks it reports, not always optimal.
//
// A reshape's result shares its input's bytes (the kernels skip a copy onto
// itself): the two are one interval, from the input's op to the last use of
// either, so no copy is made and no second buffer is held.
//
// A collective over several ranks runs on the communicator's stream while
// the kernels after it compute; a kernel that touches its bytes waits for
// it. So its inputs stay allocated until the runtime waits for it anyway:
// the first reader of its result, or, for one nothing here reads (a
// gradient shard written into the state), the next collective of its kind,
// so one such transfer overlaps the kernels between the two. Freed at once,
// the next kernel would take those bytes and wait for the transfer.
//
//===----------------------------------------------------------------------===//

#include "dialects/vrt/VrtDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace veomni {
#define GEN_PASS_DEF_VRTPLANMEMORY
#include "passes/Passes.h.inc"
} // namespace veomni

using namespace mlir;
using namespace veomni;

namespace {

struct Interval {
  Value value;
  int64_t first, last; // op indices, inclusive
  int64_t bytes;
  int64_t offset = -1;
};

int64_t alignUp(int64_t bytes) {
  return (bytes + vrt::kArenaAlignment - 1) / vrt::kArenaAlignment *
         vrt::kArenaAlignment;
}

/// A collective the runtime leaves running on the communicator's stream
/// (Executor::Deferrable) over a group of several ranks.
bool runsAside(vrt::LaunchOp launch) {
  auto group = launch.getParams().getAs<IntegerAttr>("group_size");
  return group && group.getInt() > 1 &&
         llvm::is_contained({"all_gather", "reduce_scatter", "all_reduce", "all_to_all"},
                            launch.getKernel());
}

/// Where the runtime waits for `collective` at the latest: see the header.
int64_t joinIndex(vrt::LaunchOp collective, DenseMap<Operation *, int64_t> &index,
                  int64_t end) {
  int64_t first = end;
  for (Value result : collective.getResults())
    for (Operation *user : result.getUsers()) {
      // The runtime waits at none of these: the function's end, a store
      // written by the launch itself, a collective queued behind this one.
      auto store = dyn_cast<vrt::StoreOp>(user);
      auto next = dyn_cast<vrt::LaunchOp>(user);
      if (!isa<func::ReturnOp>(user) && !(store && store.getForwarded()) &&
          !(next && runsAside(next)))
        first = std::min(first, index[user]);
    }
  if (first < end)
    return first;
  for (Operation *op = collective->getNextNode(); op; op = op->getNextNode())
    if (auto next = dyn_cast<vrt::LaunchOp>(op);
        next && next.getKernel() == collective.getKernel() && runsAside(next))
      return index[op];
  return end;
}

FailureOr<int64_t> tensorBytes(Value value) {
  auto type = cast<RankedTensorType>(value.getType());
  unsigned bits = type.getElementType().getIntOrFloatBitWidth();
  int64_t elementBytes = bits == 1 ? 1 : bits / 8;
  return type.getNumElements() * elementBytes;
}

LogicalResult planFunction(func::FuncOp func) {
  Block &body = func.getBody().front();
  DenseMap<Operation *, int64_t> index;
  int64_t position = 0;
  for (Operation &op : body)
    index[&op] = position++;
  int64_t end = position;

  SmallVector<Interval> intervals;
  // The interval (index into `intervals`) of each arena value; a reshape's
  // result maps to its input's.
  DenseMap<Value, size_t> intervalOf;
  for (Operation &op : body) {
    auto launch = dyn_cast<vrt::LaunchOp>(op);
    if (!launch)
      continue;
    for (Value result : launch.getResults()) {
      if (vrt::getForwardedStore(result))
        continue;  // written into the state (vrt-forward-stores)
      int64_t last = index[&op];
      for (Operation *user : result.getUsers())
        last = std::max(last, isa<func::ReturnOp>(user) ? end : index[user]);
      auto bytes = tensorBytes(result);
      if (failed(bytes))
        return launch.emitOpError("has a result of unknown size");
      if (launch.getKernel() == "reshape" && launch.getInputs().size() == 1) {
        auto source = intervalOf.find(launch.getInputs()[0]);
        if (source != intervalOf.end() && intervals[source->second].bytes == alignUp(*bytes)) {
          Interval &shared = intervals[source->second];
          shared.last = std::max(shared.last, last);
          intervalOf[result] = source->second;
          continue;
        }
      }
      intervalOf[result] = intervals.size();
      intervals.push_back({result, index[&op], last, alignUp(*bytes)});
    }
  }

  for (auto launch : body.getOps<vrt::LaunchOp>()) {
    if (!runsAside(launch))
      continue;
    int64_t join = joinIndex(launch, index, end);
    for (Value input : launch.getInputs())
      if (auto found = intervalOf.find(input); found != intervalOf.end())
        intervals[found->second].last = std::max(intervals[found->second].last, join);
  }

  SmallVector<Interval *> order;
  for (Interval &interval : intervals)
    order.push_back(&interval);
  llvm::stable_sort(order, [](Interval *a, Interval *b) {
    return a->bytes > b->bytes;
  });
  int64_t arenaBytes = 0;
  SmallVector<Interval *> placed;
  for (Interval *current : order) {
    // Ranges taken by placed values live at the same time, by offset.
    SmallVector<std::pair<int64_t, int64_t>> taken;
    for (Interval *other : placed)
      if (other->first <= current->last && current->first <= other->last)
        taken.push_back({other->offset, other->offset + other->bytes});
    llvm::sort(taken);
    int64_t offset = 0;
    for (auto [begin, limit] : taken) {
      if (offset + current->bytes <= begin)
        break;
      offset = std::max(offset, limit);
    }
    current->offset = offset;
    arenaBytes = std::max(arenaBytes, offset + current->bytes);
    placed.push_back(current);
  }

  OpBuilder b(func.getContext());
  for (auto launch : body.getOps<vrt::LaunchOp>()) {
    SmallVector<int64_t> resultOffsets;
    for (Value result : launch.getResults())
      resultOffsets.push_back(vrt::getForwardedStore(result) ? -1
                                                  : intervals[intervalOf[result]].offset);
    launch.setOffsetsAttr(b.getDenseI64ArrayAttr(resultOffsets));
  }
  func->setAttr(vrt::kArenaBytesAttr, b.getI64IntegerAttr(arenaBytes));
  return success();
}

struct VrtPlanMemoryPass : veomni::impl::VrtPlanMemoryBase<VrtPlanMemoryPass> {
  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.getBody().getBlocks().size() != 1) {
        func.emitError("vrt-plan-memory expects straight-line functions");
        return signalPassFailure();
      }
      if (failed(planFunction(func)))
        return signalPassFailure();
    }
  }
};

} // namespace
