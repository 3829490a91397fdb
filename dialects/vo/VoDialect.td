//===- VoDialect.td - the vo graph dialect -----------------*- tablegen -*-===//
//
// `vo` holds an exported model graph with value semantics: statically shaped
// tensors, trainable parameters as module-level symbols, and the fused ops a
// decoder LLM trains with (rms_norm, rope, swiglu, attention, cross_entropy).
//
//===----------------------------------------------------------------------===//

#ifndef VEOMNI_DIALECTS_VO_VODIALECT_TD
#define VEOMNI_DIALECTS_VO_VODIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Vo_Dialect : Dialect {
  let name = "vo";
  let cppNamespace = "::veomni::vo";
  let summary = "Training graphs of LLMs and omni-modal models";
  let description = [{
    Tensors have value semantics and static shapes: symbolic dimensions of an
    exported model are bound when it is imported. Parameters are module-level
    `vo.parameter` symbols carrying their name, type and initial values (or an
    init rule); functions read them with `vo.param`.
  }];
  let useDefaultAttributePrinterParser = 1;
  let hasConstantMaterializer = 1;
}

class Vo_Op<string mnemonic, list<Trait> traits = []>
    : Op<Vo_Dialect, mnemonic, traits>;

class Vo_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Vo_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Vo_InitKind : I32EnumAttr<"InitKind", "parameter initialization rule", [
    I32EnumAttrCase<"zeros", 0>,
    I32EnumAttrCase<"ones", 1>,
    I32EnumAttrCase<"normal", 2>
  ]> {
  let cppNamespace = "::veomni::vo";
  let genSpecializedAttr = 0;
}

def Vo_Reduction : I32EnumAttr<"Reduction", "loss reduction", [
    I32EnumAttrCase<"mean", 0>,
    I32EnumAttrCase<"sum", 1>,
    I32EnumAttrCase<"none", 2>
  ]> {
  let cppNamespace = "::veomni::vo";
}

def Vo_CmpPredicate : I32EnumAttr<"CmpPredicate", "elementwise comparison", [
    I32EnumAttrCase<"eq", 0>,
    I32EnumAttrCase<"ne", 1>,
    I32EnumAttrCase<"lt", 2>,
    I32EnumAttrCase<"le", 3>,
    I32EnumAttrCase<"gt", 4>,
    I32EnumAttrCase<"ge", 5>
  ]> {
  let cppNamespace = "::veomni::vo";
}

def Vo_GeluApproximation : I32EnumAttr<"GeluApproximation",
    "gelu approximation", [
    I32EnumAttrCase<"none", 0>,
    I32EnumAttrCase<"tanh", 1>
  ]> {
  let cppNamespace = "::veomni::vo";
}

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

// An f64 written as a plain number (`0.02`), zero when omitted.
def Vo_StdParameter : AttrOrTypeParameter<"::llvm::APFloat",
                                          "standard deviation"> {
  let comparator = "$_lhs.bitwiseIsEqual($_rhs)";
  let parser = [{ [&]() -> ::mlir::FailureOr<::llvm::APFloat> {
    double value;
    if ($_parser.parseFloat(value))
      return ::mlir::failure();
    return ::llvm::APFloat(value);
  }() }];
  let printer = [{ $_printer << $_self.convertToDouble() }];
  let defaultValue = "::llvm::APFloat(0.0)";
}

def Vo_InitRuleAttr : Vo_Attr<"InitRule", "init"> {
  let summary = "How the runtime initializes a parameter without values";
  let description = [{
    `#vo.init<zeros>`, `#vo.init<ones>` or `#vo.init<normal, std = 0.02>`
    (mean zero). Used when a model is imported without its weights.
  }];
  let parameters = (ins "InitKind":$kind,
                        Vo_StdParameter:$std);
  let assemblyFormat = "`<` $kind (`,` `std` `=` $std^)? `>`";
  let genVerifyDecl = 1;
}

#endif // VEOMNI_DIALECTS_VO_VODIALECT_TD
