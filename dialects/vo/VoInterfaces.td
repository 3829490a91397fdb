//===- VoInterfaces.td - vo op interfaces ------------------*- tablegen -*-===//

#ifndef VEOMNI_DIALECTS_VO_VOINTERFACES_TD
#define VEOMNI_DIALECTS_VO_VOINTERFACES_TD

include "mlir/IR/OpBase.td"

def Vo_DifferentiableOpInterface : OpInterface<"DifferentiableOpInterface"> {
  let cppNamespace = "::veomni::vo";
  let description = [{
    The gradient rule of an op: given the gradient of its (single) result,
    emit the gradients of its operands. Reverse-mode autodiff (`vo-autodiff`)
    calls it for every op on a path from a parameter to the loss.
  }];
  let methods = [
    InterfaceMethod<[{
        Emits, at the builder's insertion point, the gradient of each operand
        whose entry in `needed` is true into `operandGrads` (one entry per
        operand, null where not needed). Fails with a diagnostic when the
        rule does not cover this op's configuration.
      }],
      "::llvm::LogicalResult", "emitGradients",
      (ins "::mlir::OpBuilder &":$builder, "::mlir::Value":$resultGrad,
           "::llvm::ArrayRef<bool>":$needed,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>
  ];
}

#endif // VEOMNI_DIALECTS_VO_VOINTERFACES_TD
