//===- VoOps.td - vo operations ----------------------------*- tablegen -*-===//
//
// Shape rules live in each op's inferReturnTypes (VoOps.cpp): the verifier,
// the builders and the parser all use that one rule.
//
//===----------------------------------------------------------------------===//

#ifndef VEOMNI_DIALECTS_VO_VOOPS_TD
#define VEOMNI_DIALECTS_VO_VOOPS_TD

include "dialects/vo/VoDialect.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

def Vo_FloatElement : AnyTypeOf<[F32, BF16, F16]>;
def Vo_IntElement : AnyTypeOf<[I64, I32]>;
def Vo_FloatTensor : StaticShapeTensorOf<[F32, BF16, F16]>;
def Vo_IntTensor : StaticShapeTensorOf<[I64, I32]>;
def Vo_BoolTensor : StaticShapeTensorOf<[I1]>;
def Vo_NumericTensor : StaticShapeTensorOf<[F32, BF16, F16, I64, I32]>;
def Vo_Tensor : StaticShapeTensorOf<[F32, BF16, F16, I64, I32, I1]>;

//===----------------------------------------------------------------------===//
// Parameters and constants
//===----------------------------------------------------------------------===//

def Vo_ParameterOp : Vo_Op<"parameter", [Symbol]> {
  let summary = "A trainable parameter of the model";
  let description = [{
    Declares a parameter by name with its type and either its initial values
    (`= dense_resource<...>` / `= dense<...>`) or an init rule
    (`init #vo.init<normal, std = 0.02>`).

    ```mlir
    vo.parameter @model.norm.weight : tensor<64xf32> = dense<1.0>
    vo.parameter @lm_head.weight : tensor<256x64xf32> init #vo.init<normal, std = 0.02>
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name,
                       TypeAttrOf<Vo_FloatTensor>:$type,
                       OptionalAttr<ElementsAttr>:$initial_value,
                       OptionalAttr<Vo_InitRuleAttr>:$init);
  let hasCustomAssemblyFormat = 1;
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    ::mlir::RankedTensorType getTensorType() {
      return ::llvm::cast<::mlir::RankedTensorType>(getType());
    }
  }];
}

def Vo_ParamOp : Vo_Op<"param",
    [Pure, DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "Reads a parameter declared by vo.parameter";
  let arguments = (ins FlatSymbolRefAttr:$name);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$name attr-dict `:` type($result)";
}

def Vo_ConstantOp : Vo_Op<"constant",
    [ConstantLike, Pure, InferTypeOpAdaptor]> {
  let summary = "A constant tensor";
  let arguments = (ins ElementsAttr:$value);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "attr-dict $value";
  let hasFolder = 1;
}

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

// Numpy broadcasting of both operands; one element type.
class Vo_BroadcastBinaryOp<string mnemonic, Type operandType,
                           list<Trait> traits = []>
    : Vo_Op<mnemonic, traits # [Pure, InferTypeOpAdaptor]> {
  let arguments = (ins operandType:$lhs, operandType:$rhs);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs)";
}

def Vo_AddOp : Vo_BroadcastBinaryOp<"add", Vo_NumericTensor, [Commutative]> {
  let summary = "Elementwise sum with broadcasting";
}
def Vo_SubOp : Vo_BroadcastBinaryOp<"sub", Vo_NumericTensor> {
  let summary = "Elementwise difference with broadcasting";
}
def Vo_MulOp : Vo_BroadcastBinaryOp<"mul", Vo_NumericTensor, [Commutative]> {
  let summary = "Elementwise product with broadcasting";
}
def Vo_DivOp : Vo_BroadcastBinaryOp<"div", Vo_NumericTensor> {
  let summary = "Elementwise quotient with broadcasting";
}
def Vo_PowOp : Vo_BroadcastBinaryOp<"pow", Vo_FloatTensor> {
  let summary = "Elementwise power with broadcasting";
}
def Vo_MaximumOp : Vo_BroadcastBinaryOp<"maximum", Vo_NumericTensor,
                                        [Commutative]> {
  let summary = "Elementwise maximum with broadcasting";
}
def Vo_MinimumOp : Vo_BroadcastBinaryOp<"minimum", Vo_NumericTensor,
                                        [Commutative]> {
  let summary = "Elementwise minimum with broadcasting";
}

def Vo_CmpOp : Vo_Op<"cmp", [Pure, InferTypeOpAdaptor]> {
  let summary = "Elementwise comparison with broadcasting, giving i1";
  let arguments = (ins Vo_CmpPredicateAttr:$predicate, Vo_NumericTensor:$lhs,
                       Vo_NumericTensor:$rhs);
  let results = (outs Vo_BoolTensor:$result);
  let assemblyFormat =
      "$predicate `,` $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs)";
}

def Vo_SelectOp : Vo_Op<"select", [Pure, InferTypeOpAdaptor]> {
  let summary = "Elementwise choice: cond ? on_true : on_false, broadcasting";
  let arguments = (ins Vo_BoolTensor:$cond, Vo_Tensor:$on_true,
                       Vo_Tensor:$on_false);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "$cond `,` $on_true `,` $on_false attr-dict `:` "
                       "type($cond) `,` type($on_true) `,` type($on_false)";
}

class Vo_UnaryOp<string mnemonic, Type operandType, list<Trait> traits = []>
    : Vo_Op<mnemonic, traits # [Pure, InferTypeOpAdaptor]> {
  let arguments = (ins operandType:$input);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

def Vo_NegOp : Vo_UnaryOp<"neg", Vo_NumericTensor> { let summary = "-x"; }
def Vo_ExpOp : Vo_UnaryOp<"exp", Vo_FloatTensor> { let summary = "e^x"; }
def Vo_LogOp : Vo_UnaryOp<"log", Vo_FloatTensor> { let summary = "ln x"; }
def Vo_SqrtOp : Vo_UnaryOp<"sqrt", Vo_FloatTensor> { let summary = "sqrt(x)"; }
def Vo_RsqrtOp : Vo_UnaryOp<"rsqrt", Vo_FloatTensor> {
  let summary = "1 / sqrt(x)";
}
def Vo_ReciprocalOp : Vo_UnaryOp<"reciprocal", Vo_FloatTensor> {
  let summary = "1 / x";
}
def Vo_TanhOp : Vo_UnaryOp<"tanh", Vo_FloatTensor> { let summary = "tanh(x)"; }
def Vo_ErfOp : Vo_UnaryOp<"erf", Vo_FloatTensor> { let summary = "erf(x)"; }
def Vo_CosOp : Vo_UnaryOp<"cos", Vo_FloatTensor> { let summary = "cos(x)"; }
def Vo_SinOp : Vo_UnaryOp<"sin", Vo_FloatTensor> { let summary = "sin(x)"; }
def Vo_SigmoidOp : Vo_UnaryOp<"sigmoid", Vo_FloatTensor> {
  let summary = "1 / (1 + e^-x)";
}
def Vo_SiluOp : Vo_UnaryOp<"silu", Vo_FloatTensor> {
  let summary = "x * sigmoid(x)";
}
def Vo_GeluOp : Vo_Op<"gelu", [Pure, InferTypeOpAdaptor]> {
  let summary = "Gaussian error linear unit, exact or tanh-approximated";
  let arguments = (ins Vo_FloatTensor:$input,
      DefaultValuedAttr<Vo_GeluApproximationAttr,
                        "GeluApproximation::none">:$approximate);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat =
      "$input (`approximate` `=` $approximate^)? attr-dict `:` type($input)";
}

def Vo_IsNanOp : Vo_Op<"is_nan", [Pure, InferTypeOpAdaptor]> {
  let summary = "Elementwise x != x";
  let arguments = (ins Vo_FloatTensor:$input);
  let results = (outs Vo_BoolTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

def Vo_CastOp : Vo_Op<"cast", [Pure, InferTypeOpAdaptor]> {
  let summary = "Converts the element type";
  let arguments = (ins Vo_Tensor:$input, TypeAttr:$element_type);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `to` $element_type";
  let hasFolder = 1;
}

//===----------------------------------------------------------------------===//
// Contractions and reductions
//===----------------------------------------------------------------------===//

def Vo_MatmulOp : Vo_Op<"matmul", [Pure, InferTypeOpAdaptor]> {
  let summary = "Batched matrix product with optional transposes";
  let description = [{
    `lhs` is [..., M, K] (or [..., K, M] with `transpose_lhs`), `rhs` is
    [..., K, N] (or [..., N, K] with `transpose_rhs`); leading batch dims
    broadcast. A linear layer `x @ W^T` is `vo.matmul %x, %w transpose_rhs`.
  }];
  let hasCanonicalizer = 1;
  let arguments = (ins Vo_FloatTensor:$lhs, Vo_FloatTensor:$rhs,
                       UnitAttr:$transpose_lhs, UnitAttr:$transpose_rhs);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs (`transpose_lhs` $transpose_lhs^)? "
                       "(`transpose_rhs` $transpose_rhs^)? attr-dict `:` "
                       "type($lhs) `,` type($rhs)";
}

class Vo_ReduceOp<string mnemonic, Type operandType>
    : Vo_Op<mnemonic, [Pure, InferTypeOpAdaptor]> {
  let arguments = (ins operandType:$input, DenseI64ArrayAttr:$axes,
                       UnitAttr:$keep_dims);
  let results = (outs Vo_NumericTensor:$result);
  let assemblyFormat = "$input `axes` `=` $axes (`keep_dims` $keep_dims^)? "
                       "attr-dict `:` type($input)";
}

def Vo_ReduceSumOp : Vo_ReduceOp<"reduce_sum", Vo_NumericTensor> {
  let summary = "Sum over axes";
}
def Vo_ReduceMeanOp : Vo_ReduceOp<"reduce_mean", Vo_FloatTensor> {
  let summary = "Mean over axes";
}
def Vo_ReduceMaxOp : Vo_ReduceOp<"reduce_max", Vo_NumericTensor> {
  let summary = "Maximum over axes";
}

def Vo_SoftmaxOp : Vo_Op<"softmax", [Pure, InferTypeOpAdaptor]> {
  let summary = "exp(x) / sum(exp(x)) along one axis";
  let arguments = (ins Vo_FloatTensor:$input, I64Attr:$axis);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$input `axis` `=` $axis attr-dict `:` type($input)";
}

def Vo_LogSoftmaxOp : Vo_Op<"log_softmax", [Pure, InferTypeOpAdaptor]> {
  let summary = "x - log(sum(exp(x))) along one axis";
  let arguments = (ins Vo_FloatTensor:$input, I64Attr:$axis);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$input `axis` `=` $axis attr-dict `:` type($input)";
}

//===----------------------------------------------------------------------===//
// Shape manipulation
//===----------------------------------------------------------------------===//

def Vo_ReshapeOp : Vo_Op<"reshape", [Pure, InferTypeOpAdaptor]> {
  let summary = "Same elements in row-major order, another shape";
  let arguments = (ins Vo_Tensor:$input, DenseI64ArrayAttr:$shape);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "$input `to` $shape attr-dict `:` type($input)";
  let hasFolder = 1;
}

def Vo_TransposeOp : Vo_Op<"transpose", [Pure, InferTypeOpAdaptor]> {
  let summary = "Permutes dimensions: result dim i is input dim perm[i]";
  let arguments = (ins Vo_Tensor:$input, DenseI64ArrayAttr:$permutation);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat =
      "$input `perm` `=` $permutation attr-dict `:` type($input)";
  let hasFolder = 1;
}

def Vo_SliceOp : Vo_Op<"slice", [Pure, InferTypeOpAdaptor]> {
  let summary = "Strided window [start, limit) per dimension";
  let arguments = (ins Vo_Tensor:$input, DenseI64ArrayAttr:$start,
                       DenseI64ArrayAttr:$limit, DenseI64ArrayAttr:$stride);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "$input `start` `=` $start `limit` `=` $limit "
                       "`stride` `=` $stride attr-dict `:` type($input)";
  let hasFolder = 1;
}

def Vo_ConcatOp : Vo_Op<"concat", [Pure, InferTypeOpAdaptor]> {
  let summary = "Joins tensors along one axis";
  let arguments = (ins Variadic<Vo_Tensor>:$inputs, I64Attr:$axis);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "$inputs `axis` `=` $axis attr-dict `:` type($inputs)";
  let hasFolder = 1;
}

def Vo_BroadcastToOp : Vo_Op<"broadcast_to", [Pure, InferTypeOpAdaptor]> {
  let summary = "Numpy broadcast to a shape";
  let arguments = (ins Vo_Tensor:$input, DenseI64ArrayAttr:$shape);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "$input `to` $shape attr-dict `:` type($input)";
  let hasFolder = 1;
}

//===----------------------------------------------------------------------===//
// Model ops
//===----------------------------------------------------------------------===//

def Vo_EmbeddingOp : Vo_Op<"embedding", [Pure, InferTypeOpAdaptor]> {
  let summary = "Rows of a [vocab, hidden] table picked by token ids";
  let arguments = (ins Vo_FloatTensor:$table, Vo_IntTensor:$ids);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$table `,` $ids attr-dict `:` type($table) `,` type($ids)";
}

def Vo_RmsNormOp : Vo_Op<"rms_norm", [Pure, InferTypeOpAdaptor]> {
  let summary = "x / sqrt(mean(x^2, last axis) + epsilon) * weight";
  let arguments = (ins Vo_FloatTensor:$input, Vo_FloatTensor:$weight,
                       F64Attr:$epsilon);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$input `,` $weight `epsilon` `=` $epsilon attr-dict "
                       "`:` type($input) `,` type($weight)";
}

def Vo_RopeOp : Vo_Op<"rope", [Pure, InferTypeOpAdaptor]> {
  let summary = "Rotary embedding: x * cos + rotate_half(x) * sin";
  let description = [{
    rotate_half([x1, x2]) = [-x2, x1] over the halves of the last axis.
    `cos` and `sin` broadcast to the shape of `x`.
  }];
  let arguments = (ins Vo_FloatTensor:$input, Vo_FloatTensor:$cos,
                       Vo_FloatTensor:$sin);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$input `,` $cos `,` $sin attr-dict `:` type($input) "
                       "`,` type($cos) `,` type($sin)";
}

def Vo_SwigluOp : Vo_Op<"swiglu", [Pure, InferTypeOpAdaptor]> {
  let summary = "silu(gate) * up";
  let arguments = (ins Vo_FloatTensor:$gate, Vo_FloatTensor:$up);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` type($gate) `,` type($up)";
}

def Vo_AttentionOp : Vo_Op<"attention", [Pure, InferTypeOpAdaptor]> {
  let summary = "Scaled dot-product attention with grouped-query heads";
  let description = [{
    q [B, Hq, S, D], k [B, Hkv, Sk, D], v [B, Hkv, Sk, Dv] -> [B, Hq, S, Dv];
    query head h reads kv head h / (Hq / Hkv). `causal` masks keys after the
    query. `cu_seqlens` ([N+1] offsets into the B*S token axis) keeps
    attention inside each packed document.
  }];
  let arguments = (ins Vo_FloatTensor:$query, Vo_FloatTensor:$key,
                       Vo_FloatTensor:$value,
                       Optional<Vo_IntTensor>:$cu_seqlens,
                       F64Attr:$scale, UnitAttr:$causal);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$query `,` $key `,` $value (`,` $cu_seqlens^)? "
                       "`scale` `=` $scale (`causal` $causal^)? attr-dict "
                       "`:` type($query) `,` type($key) `,` type($value) "
                       "(`,` type($cu_seqlens)^)?";
}

def Vo_CrossEntropyOp : Vo_Op<"cross_entropy", [Pure, InferTypeOpAdaptor]> {
  let summary = "Softmax cross-entropy of logits [..., V] against labels [...]";
  let description = [{
    Labels equal to `ignore_index` contribute nothing; `mean` divides by the
    number of the other labels.
  }];
  let arguments = (ins Vo_FloatTensor:$logits, Vo_IntTensor:$labels,
                       DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
                       DefaultValuedAttr<Vo_ReductionAttr,
                                         "Reduction::mean">:$reduction);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$logits `,` $labels "
                       "(`ignore_index` `=` $ignore_index^)? "
                       "(`reduction` `=` $reduction^)? attr-dict `:` "
                       "type($logits) `,` type($labels)";
}

#endif // VEOMNI_DIALECTS_VO_VOOPS_TD
