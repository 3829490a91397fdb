//===- VrtForwardStores.cpp - write stored values into the state ----------===//
//
// A store is a copy from the arena into the state. When the launch making
// the stored value could have written the state buffer itself, the copy and
// the arena buffer are waste: an optimizer step would copy every parameter
// and both moments once more, and hold them in its arena meanwhile. Writing
// into the state early is safe when nothing reads the old value afterwards;
// a launch that reads the old value itself must be elementwise.
//
//===----------------------------------------------------------------------===//

#include "dialects/vrt/VrtDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/StringSet.h"

namespace veomni {
#define GEN_PASS_DEF_VRTFORWARDSTORES
#include "passes/Passes.h.inc"
} // namespace veomni

using namespace mlir;
using namespace veomni;

namespace {

/// Kernels that read each element of an input before writing the same
/// element of a same-shaped output (runtime/kernels/{cpu,cuda}), so an
/// output may share that input's buffer.
bool isElementwiseInPlace(StringRef kernel) {
  return llvm::is_contained({"adamw", "add", "sub", "mul", "div"}, kernel);
}

void forwardStores(func::FuncOp func) {
  Block &body = func.getBody().front();
  // A launch without operands (a fill) that several stores share, as CSE
  // leaves the zeroing of same-shaped gradients, is cloned per store: a
  // fill costs what a copy does, and each clone can write its state.
  for (auto store : llvm::to_vector(body.getOps<vrt::StoreOp>())) {
    auto launch = store.getValue().getDefiningOp<vrt::LaunchOp>();
    if (!launch || launch.getNumOperands() != 0 || launch->getNumResults() != 1 ||
        store.getValue().hasOneUse())
      continue;
    OpBuilder b(store);
    Operation *clone = b.clone(*launch.getOperation());
    store.getValueMutable().assign(clone->getResult(0));
  }
  llvm::StringMap<int> storesOfKey;
  DenseMap<Value, int> storesOfValue;
  for (auto store : body.getOps<vrt::StoreOp>()) {
    ++storesOfKey[store.getKey()];
    ++storesOfValue[store.getValue()];
  }
  // The ops that read each key's old value.
  llvm::StringMap<SmallVector<Operation *>> readers;
  for (auto read : body.getOps<vrt::StateOp>())
    for (Operation *user : read->getUsers())
      readers[read.getKey()].push_back(user);

  SmallVector<vrt::StoreOp> stores(body.getOps<vrt::StoreOp>());
  for (vrt::StoreOp store : stores) {
    auto launch = store.getValue().getDefiningOp<vrt::LaunchOp>();
    if (!launch || launch.getKernel() == "reshape" || storesOfKey[store.getKey()] != 1 ||
        storesOfValue[store.getValue()] != 1)
      continue;
    // The last op other than the launch that reads the old value. A
    // returned old value is read after every launch: never forwarded.
    Operation *lastReader = nullptr;
    bool readByLaunch = false;
    SmallVector<Operation *> keyReaders = readers.lookup(store.getKey());
    if (llvm::any_of(keyReaders,
                     [](Operation *op) { return op->hasTrait<OpTrait::IsTerminator>(); }))
      continue;
    for (Operation *reader : keyReaders) {
      if (reader == launch.getOperation()) {
        readByLaunch = true;
        continue;
      }
      if (!lastReader || lastReader->isBeforeInBlock(reader))
        lastReader = reader;
    }
    if (readByLaunch && !isElementwiseInPlace(launch.getKernel()))
      continue;
    if (lastReader && launch->isBeforeInBlock(lastReader)) {
      // Only a launch without operands moves later, past the last reader,
      // and only when every other user of its value comes after it.
      if (launch.getNumOperands() != 0 || readByLaunch)
        continue;
      bool usersAfter = llvm::all_of(launch->getUsers(), [&](Operation *user) {
        return user == store.getOperation() || lastReader->isBeforeInBlock(user);
      });
      if (!usersAfter)
        continue;
      launch->moveAfter(lastReader);
      if (store->isBeforeInBlock(launch))
        store->moveAfter(launch);
    }
    store.setForwarded(true);
  }
}

struct VrtForwardStoresPass
    : veomni::impl::VrtForwardStoresBase<VrtForwardStoresPass> {
  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.getBody().getBlocks().size() != 1) {
        func.emitError("vrt-forward-stores expects straight-line functions");
        return signalPassFailure();
      }
      forwardStores(func);
    }
  }
};

} // namespace
