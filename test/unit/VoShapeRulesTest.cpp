//===- VoShapeRulesTest.cpp - vo result-type inference through builders ---===//
//
// Builds ops with OpBuilder (types inferred, as the importers do) and checks
// the inferred shapes against the op definitions worked out by hand.
//
//===----------------------------------------------------------------------===//

#include "dialects/vo/VoOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Verifier.h"

#include "gtest/gtest.h"

using namespace mlir;
using namespace veomni::vo;

namespace {

class VoShapeRules : public ::testing::Test {
protected:
  VoShapeRules() : builder(&context) {
    context.loadDialect<VoDialect, func::FuncDialect>();
    module = ModuleOp::create(builder.getUnknownLoc());
    builder.setInsertionPointToEnd(module->getBody());
    auto func = func::FuncOp::create(builder, builder.getUnknownLoc(), "f",
                                     builder.getFunctionType({}, {}));
    builder.setInsertionPointToEnd(func.addEntryBlock());
  }

  Value arg(llvm::ArrayRef<int64_t> shape, Type element = {}) {
    auto type = RankedTensorType::get(shape, element ? element : builder.getF32Type());
    // A constant stands in for a function argument of that type.
    return ConstantOp::create(builder, builder.getUnknownLoc(),
                              DenseElementsAttr::get(type, builder.getZeroAttr(type.getElementType())));
  }

  static llvm::SmallVector<int64_t> shapeOf(Value value) {
    auto shape = cast<RankedTensorType>(value.getType()).getShape();
    return {shape.begin(), shape.end()};
  }

  MLIRContext context;
  OpBuilder builder;
  OwningOpRef<ModuleOp> module;
};

using Shape = llvm::SmallVector<int64_t>;

TEST_F(VoShapeRules, MatmulTransposesAndBroadcastsBatch) {
  Location loc = builder.getUnknownLoc();
  Value x = arg({2, 5, 8}), w = arg({4, 8});
  EXPECT_EQ(shapeOf(MatmulOp::create(builder, loc, x, w, false, true)), Shape({2, 5, 4}));
  Value a = arg({3, 1, 8, 5}), b = arg({6, 8, 7});
  EXPECT_EQ(shapeOf(MatmulOp::create(builder, loc, a, b, true, false)), Shape({3, 6, 5, 7}));
}

TEST_F(VoShapeRules, AttentionKeepsQueryHeadsAndValueDim) {
  Location loc = builder.getUnknownLoc();
  Value q = arg({2, 8, 16, 64}), k = arg({2, 2, 16, 64}), v = arg({2, 2, 16, 32});
  auto op = AttentionOp::create(builder, loc, q, k, v, Value(),
                                builder.getF64FloatAttr(0.125), builder.getUnitAttr());
  EXPECT_EQ(shapeOf(op), Shape({2, 8, 16, 32}));
}

TEST_F(VoShapeRules, ReductionsDropOrKeepAxes) {
  Location loc = builder.getUnknownLoc();
  Value x = arg({2, 3, 4});
  EXPECT_EQ(shapeOf(ReduceSumOp::create(builder, loc, x, {0, 2}, false)), Shape({3}));
  EXPECT_EQ(shapeOf(ReduceMeanOp::create(builder, loc, x, {1}, true)), Shape({2, 1, 4}));
}

TEST_F(VoShapeRules, CrossEntropyReductions) {
  Location loc = builder.getUnknownLoc();
  Value logits = arg({4, 7, 32}), labels = arg({4, 7}, builder.getI64Type());
  auto mean = CrossEntropyOp::create(builder, loc, logits, labels, -100, Reduction::mean);
  auto none = CrossEntropyOp::create(builder, loc, logits, labels, -100, Reduction::none);
  EXPECT_EQ(shapeOf(mean), Shape({}));
  EXPECT_EQ(shapeOf(none), Shape({4, 7}));
}

TEST_F(VoShapeRules, EmbeddingAppendsHidden) {
  Value table = arg({100, 16}), ids = arg({3, 5}, builder.getI64Type());
  EXPECT_EQ(shapeOf(EmbeddingOp::create(builder, builder.getUnknownLoc(), table, ids)),
            Shape({3, 5, 16}));
}

TEST_F(VoShapeRules, ShapeOpsInferFromAttributes) {
  Location loc = builder.getUnknownLoc();
  Value x = arg({2, 6});
  EXPECT_EQ(shapeOf(SliceOp::create(builder, loc, x, {0, 1}, {2, 6}, {1, 2})), Shape({2, 3}));
  EXPECT_EQ(shapeOf(TransposeOp::create(builder, loc, x, {1, 0})), Shape({6, 2}));
  EXPECT_EQ(shapeOf(ConcatOp::create(builder, loc, ValueRange{x, x}, 0)), Shape({4, 6}));
  EXPECT_EQ(shapeOf(BroadcastToOp::create(builder, loc, x, {3, 2, 6})), Shape({3, 2, 6}));
  func::ReturnOp::create(builder, loc);
  EXPECT_TRUE(succeeded(verify(*module)));
}

TEST_F(VoShapeRules, InvalidOperandsFailInference) {
  // Without a location the rule fails quietly; the op cannot be built.
  llvm::SmallVector<Type> types;
  Value a = arg({2, 3}), b = arg({4});
  EXPECT_TRUE(failed(AddOp::inferReturnTypes(
      &context, std::nullopt, ValueRange{a, b}, DictionaryAttr::get(&context),
      nullptr, {}, types)));
}

} // namespace
