//===- VoOps.td - vo operations ----------------------------*- tablegen -*-===//
//
// Shape rules live in each op's inferReturnTypes (VoOps.cpp): the verifier,
// the builders and the parser all use that one rule.
//
//===----------------------------------------------------------------------===//

#ifndef VEOMNI_DIALECTS_VO_VOOPS_TD
#define VEOMNI_DIALECTS_VO_VOOPS_TD

include "dialects/vo/VoDialect.td"
include "dialects/vo/VoInterfaces.td"
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
def Vo_F32Tensor : StaticShapeTensorOf<[F32]>;
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

def Vo_ParamBf16Op : Vo_Op<"param_bf16",
    [Pure, DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "Reads the bf16 copy of a parameter that the optimizer keeps";
  let description = [{
    The value of `vo.cast` of `vo.param @name` to bf16, kept as its own state
    (`param_bf16:<name>`): the optimizer step writes it with each update of
    the f32 parameter (vo-keep-bf16-params), and the runtime makes it from
    the initial parameter. Readers then skip rounding the weight each step.
  }];
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
    : Vo_Op<mnemonic, traits # [Pure, InferTypeOpAdaptor, DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let arguments = (ins operandType:$lhs, operandType:$rhs);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs)";
}

def Vo_AddOp : Vo_BroadcastBinaryOp<"add", Vo_NumericTensor, [Commutative]> {
  let summary = "Elementwise sum with broadcasting";
  let hasFolder = 1;
}
def Vo_SubOp : Vo_BroadcastBinaryOp<"sub", Vo_NumericTensor> {
  let summary = "Elementwise difference with broadcasting";
}
def Vo_MulOp : Vo_BroadcastBinaryOp<"mul", Vo_NumericTensor, [Commutative]> {
  let summary = "Elementwise product with broadcasting";
  let hasFolder = 1;
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
  let arguments = (ins Vo_CmpPredicate:$predicate, Vo_NumericTensor:$lhs,
                       Vo_NumericTensor:$rhs);
  let results = (outs Vo_BoolTensor:$result);
  let assemblyFormat =
      "$predicate `,` $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs)";
}

def Vo_SelectOp : Vo_Op<"select", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "Elementwise choice: cond ? on_true : on_false, broadcasting";
  let arguments = (ins Vo_BoolTensor:$cond, Vo_Tensor:$on_true,
                       Vo_Tensor:$on_false);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "$cond `,` $on_true `,` $on_false attr-dict `:` "
                       "type($cond) `,` type($on_true) `,` type($on_false)";
}

class Vo_UnaryOp<string mnemonic, Type operandType, list<Trait> traits = []>
    : Vo_Op<mnemonic, traits # [Pure, InferTypeOpAdaptor, DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
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
def Vo_GeluOp : Vo_Op<"gelu", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "Gaussian error linear unit, exact or tanh-approximated";
  let arguments = (ins Vo_FloatTensor:$input,
      DefaultValuedAttr<Vo_GeluApproximation,
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

def Vo_CastOp : Vo_Op<"cast", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "Converts the element type";
  let description = [{
    Canonicalization moves a narrowing float cast (f32 to bf16) above the
    data movement that feeds only it (reshape, transpose, all_gather, and a
    slice that keeps at least half its input),
    so that movement carries the narrower elements: FSDP then gathers bf16
    weights, as FSDP2's bf16 `param_dtype` does. Rounding each element
    commutes with moving it, so the values are unchanged.
  }];
  let arguments = (ins Vo_Tensor:$input, TypeAttr:$element_type);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `to` $element_type";
  let hasFolder = 1;
  let hasCanonicalizer = 1;
}

//===----------------------------------------------------------------------===//
// Contractions and reductions
//===----------------------------------------------------------------------===//

def Vo_MatmulOp : Vo_Op<"matmul", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "Batched matrix product with optional transposes";
  let description = [{
    `lhs` is [..., M, K] (or [..., K, M] with `transpose_lhs`), `rhs` is
    [..., K, N] (or [..., N, K] with `transpose_rhs`); leading batch dims
    broadcast. A linear layer `x @ W^T` is `vo.matmul %x, %w transpose_rhs`.
    The result has the operands' element type; with `f32_result` the
    operands are bf16 and the result f32, as tensor cores
    accumulate (mixed precision: `vo-bf16-matmuls` makes these after
    autodiff, so they have no gradient rule).
  }];
  let hasCanonicalizer = 1;
  let arguments = (ins Vo_FloatTensor:$lhs, Vo_FloatTensor:$rhs,
                       UnitAttr:$transpose_lhs, UnitAttr:$transpose_rhs,
                       UnitAttr:$f32_result);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs (`transpose_lhs` $transpose_lhs^)? "
                       "(`transpose_rhs` $transpose_rhs^)? "
                       "(`f32_result` $f32_result^)? attr-dict `:` "
                       "type($lhs) `,` type($rhs)";
}

class Vo_ReduceOp<string mnemonic, Type operandType>
    : Vo_Op<mnemonic, [Pure, InferTypeOpAdaptor, DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let arguments = (ins operandType:$input, DenseI64ArrayAttr:$axes,
                       UnitAttr:$keep_dims);
  let results = (outs Vo_NumericTensor:$result);
  let assemblyFormat = "$input `axes` `=` $axes (`keep_dims` $keep_dims^)? "
                       "attr-dict `:` type($input)";
}

def Vo_ReduceSumOp : Vo_ReduceOp<"reduce_sum", Vo_NumericTensor> {
  let summary = "Sum over axes";
}
def Vo_ReduceSumSquaresOp : Vo_ReduceOp<"reduce_sum_squares", Vo_F32Tensor> {
  let summary = "Sum of squares over axes";
  let description = [{
    `reduce_sum(x * x)` in one pass over `x`, without the squares in memory
    (the gradient norm's reduction: one read of every gradient). f32 only,
    as its kernels: each square is taken and summed in double.
  }];
}
def Vo_ReduceMeanOp : Vo_ReduceOp<"reduce_mean", Vo_FloatTensor> {
  let summary = "Mean over axes";
}
def Vo_ReduceMaxOp : Vo_ReduceOp<"reduce_max", Vo_NumericTensor> {
  let summary = "Maximum over axes";
}

def Vo_SoftmaxOp : Vo_Op<"softmax", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "exp(x) / sum(exp(x)) along one axis";
  let arguments = (ins Vo_FloatTensor:$input, I64Attr:$axis);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$input `axis` `=` $axis attr-dict `:` type($input)";
}

def Vo_LogSoftmaxOp : Vo_Op<"log_softmax", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "x - log(sum(exp(x))) along one axis";
  let arguments = (ins Vo_FloatTensor:$input, I64Attr:$axis);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$input `axis` `=` $axis attr-dict `:` type($input)";
}

//===----------------------------------------------------------------------===//
// Shape manipulation
//===----------------------------------------------------------------------===//

def Vo_ReshapeOp : Vo_Op<"reshape", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "Same elements in row-major order, another shape";
  let arguments = (ins Vo_Tensor:$input, DenseI64ArrayAttr:$shape);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "$input `to` $shape attr-dict `:` type($input)";
  let hasFolder = 1;
}

def Vo_TransposeOp : Vo_Op<"transpose", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "Permutes dimensions: result dim i is input dim perm[i]";
  let arguments = (ins Vo_Tensor:$input, DenseI64ArrayAttr:$permutation);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat =
      "$input `perm` `=` $permutation attr-dict `:` type($input)";
  let hasFolder = 1;
}

def Vo_SliceOp : Vo_Op<"slice", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "Strided window [start, limit) per dimension";
  let arguments = (ins Vo_Tensor:$input, DenseI64ArrayAttr:$start,
                       DenseI64ArrayAttr:$limit, DenseI64ArrayAttr:$stride);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "$input `start` `=` $start `limit` `=` $limit "
                       "`stride` `=` $stride attr-dict `:` type($input)";
  let hasFolder = 1;
}

def Vo_ConcatOp : Vo_Op<"concat", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "Joins tensors along one axis";
  let arguments = (ins Variadic<Vo_Tensor>:$inputs, I64Attr:$axis);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "$inputs `axis` `=` $axis attr-dict `:` type($inputs)";
  let hasFolder = 1;
}

def Vo_BroadcastToOp : Vo_Op<"broadcast_to", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "Numpy broadcast to a shape";
  let arguments = (ins Vo_Tensor:$input, DenseI64ArrayAttr:$shape);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "$input `to` $shape attr-dict `:` type($input)";
  let hasFolder = 1;
}

//===----------------------------------------------------------------------===//
// Model ops
//===----------------------------------------------------------------------===//

def Vo_EmbeddingOp : Vo_Op<"embedding", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "Rows of a [vocab, hidden] table picked by token ids";
  let arguments = (ins Vo_FloatTensor:$table, Vo_IntTensor:$ids);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$table `,` $ids attr-dict `:` type($table) `,` type($ids)";
}

def Vo_RmsNormOp : Vo_Op<"rms_norm", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "x / sqrt(mean(x^2, last axis) + epsilon) * weight";
  let arguments = (ins Vo_FloatTensor:$input, Vo_FloatTensor:$weight,
                       F64Attr:$epsilon);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$input `,` $weight `epsilon` `=` $epsilon attr-dict "
                       "`:` type($input) `,` type($weight)";
}

def Vo_RopeOp : Vo_Op<"rope", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
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

def Vo_SwigluOp : Vo_Op<"swiglu", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "silu(gate) * up";
  let arguments = (ins Vo_FloatTensor:$gate, Vo_FloatTensor:$up);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` type($gate) `,` type($up)";
}

def Vo_AttentionOp : Vo_Op<"attention", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
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

def Vo_CrossEntropyOp : Vo_Op<"cross_entropy", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "Softmax cross-entropy of logits [..., V] against labels [...]";
  let description = [{
    Labels equal to `ignore_index` contribute nothing; `mean` divides by the
    number of the other labels.
  }];
  let arguments = (ins Vo_FloatTensor:$logits, Vo_IntTensor:$labels,
                       DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
                       DefaultValuedAttr<Vo_Reduction,
                                         "Reduction::mean">:$reduction);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$logits `,` $labels "
                       "(`ignore_index` `=` $ignore_index^)? "
                       "(`reduction` `=` $reduction^)? attr-dict `:` "
                       "type($logits) `,` type($labels)";
}

//===----------------------------------------------------------------------===//
// Gradient ops: emitted by the gradient rules of the fused ops, where an
// expansion into primitives would be slower or less exact.
//===----------------------------------------------------------------------===//

def Vo_RmsNormGradOp : Vo_Op<"rms_norm_grad", [Pure, InferTypeOpAdaptor,
    AllTypesMatch<["input", "result_grad"]>]> {
  let summary = "Gradients of vo.rms_norm w.r.t. its input and weight";
  let arguments = (ins Vo_FloatTensor:$input, Vo_FloatTensor:$weight,
                       Vo_FloatTensor:$result_grad, F64Attr:$epsilon);
  let results = (outs Vo_FloatTensor:$input_grad,
                      Vo_FloatTensor:$weight_grad);
  let assemblyFormat = "$input `,` $weight `,` $result_grad `epsilon` `=` "
                       "$epsilon attr-dict `:` type($input) `,` type($weight)";
}

def Vo_RopeGradOp : Vo_Op<"rope_grad", [Pure, InferTypeOpAdaptor,
    AllTypesMatch<["cos", "sin"]>]> {
  let summary = "Gradient of vo.rope w.r.t. its input";
  let description = [{
    The exact transpose of vo.rope for any cos/sin tables:
    dy * cos + rotate_half^T(dy * sin), rotate_half^T([g1, g2]) = [g2, -g1].
  }];
  let arguments = (ins Vo_FloatTensor:$result_grad, Vo_FloatTensor:$cos,
                       Vo_FloatTensor:$sin);
  let results = (outs Vo_FloatTensor:$input_grad);
  let assemblyFormat = "$result_grad `,` $cos `,` $sin attr-dict `:` "
                       "type($result_grad) `,` type($cos)";
}

def Vo_SwigluGradOp : Vo_Op<"swiglu_grad", [Pure, InferTypeOpAdaptor,
    AllTypesMatch<["gate", "up"]>]> {
  let summary = "Gradients of vo.swiglu w.r.t. gate and up";
  let description = [{
    The gradients have the result gradient's type. Gate and up share a type,
    the result gradient's or, kept in bf16 by `vo-bf16-matmuls`, bf16 beside
    an f32 result gradient.
  }];
  let arguments = (ins Vo_FloatTensor:$gate, Vo_FloatTensor:$up,
                       Vo_FloatTensor:$result_grad);
  let results = (outs Vo_FloatTensor:$gate_grad, Vo_FloatTensor:$up_grad);
  let assemblyFormat = "$gate `,` $up `,` $result_grad attr-dict `:` "
                       "type($gate) `,` type($result_grad)";
}

def Vo_AttentionGradOp : Vo_Op<"attention_grad", [Pure, InferTypeOpAdaptor]> {
  let summary = "Gradients of vo.attention w.r.t. query, key and value";
  let description = [{
    Recomputes the attention probabilities from q and k; key/value gradients
    sum over the query heads that share a kv head.
  }];
  let arguments = (ins Vo_FloatTensor:$query, Vo_FloatTensor:$key,
                       Vo_FloatTensor:$value, Vo_FloatTensor:$result_grad,
                       Optional<Vo_IntTensor>:$cu_seqlens,
                       F64Attr:$scale, UnitAttr:$causal);
  let results = (outs Vo_FloatTensor:$query_grad, Vo_FloatTensor:$key_grad,
                      Vo_FloatTensor:$value_grad);
  let assemblyFormat = "$query `,` $key `,` $value `,` $result_grad "
                       "(`,` $cu_seqlens^)? `scale` `=` $scale "
                       "(`causal` $causal^)? attr-dict `:` type($query) `,` "
                       "type($key) `,` type($value) `,` type($result_grad) "
                       "(`,` type($cu_seqlens)^)?";
}

def Vo_CrossEntropyGradOp : Vo_Op<"cross_entropy_grad",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "Gradient of vo.cross_entropy w.r.t. the logits";
  let description = [{
    The gradient has the logits' type; with `bf16_result` (f32 logits only)
    it is computed in f32 and returned rounded to bf16, for matmuls that
    multiply bf16 anyway (vo-bf16-matmuls): the [tokens, vocab] gradient is
    then written once, at half the bytes.
  }];
  let arguments = (ins Vo_FloatTensor:$logits, Vo_IntTensor:$labels,
                       Vo_FloatTensor:$result_grad,
                       DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
                       DefaultValuedAttr<Vo_Reduction,
                                         "Reduction::mean">:$reduction,
                       UnitAttr:$bf16_result);
  let results = (outs Vo_FloatTensor:$logits_grad);
  let assemblyFormat = "$logits `,` $labels `,` $result_grad "
                       "(`ignore_index` `=` $ignore_index^)? "
                       "(`reduction` `=` $reduction^)? "
                       "(`bf16_result` $bf16_result^)? attr-dict `:` "
                       "type($logits) `,` type($labels) `,` type($result_grad)";
}

def Vo_EmbeddingGradOp : Vo_Op<"embedding_grad", [Pure, InferTypeOpAdaptor]> {
  let summary = "Gradient of vo.embedding w.r.t. its table: a scatter-add";
  let arguments = (ins Vo_IntTensor:$ids, Vo_FloatTensor:$result_grad,
                       I64Attr:$vocab);
  let results = (outs Vo_FloatTensor:$table_grad);
  let assemblyFormat = "$ids `,` $result_grad `vocab` `=` $vocab attr-dict "
                       "`:` type($ids) `,` type($result_grad)";
}

//===----------------------------------------------------------------------===//
// Optimizer
//===----------------------------------------------------------------------===//

def Vo_AdamwOp : Vo_Op<"adamw", [Pure, InferTypeOpAdaptor,
    AllTypesMatch<["param", "grad", "exp_avg", "exp_avg_sq"]>]> {
  let summary = "One AdamW update of a parameter and its moments";
  let description = [{
    As torch.optim.AdamW: g = grad * grad_scale; p *= 1 - lr * weight_decay;
    m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
    p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps). `hyper` holds
    [lr, bc1, bc2] of this step (bc = 1 - beta^step, from the runtime's
    schedule); `grad_scale` is the global-norm clipping factor (or 1). With
    `sum_squares`, a fourth result is the sum of grad^2 (unscaled) as
    f32[]: the gradient norm read in the same pass over grad, when no
    clipping needs it before the update.
  }];
  let arguments = (ins Vo_FloatTensor:$param, Vo_FloatTensor:$grad,
                       Vo_FloatTensor:$exp_avg, Vo_FloatTensor:$exp_avg_sq,
                       Vo_FloatTensor:$hyper, Vo_FloatTensor:$grad_scale,
                       F64Attr:$beta1, F64Attr:$beta2, F64Attr:$eps,
                       F64Attr:$weight_decay, UnitAttr:$sum_squares);
  let results = (outs Vo_FloatTensor:$new_param, Vo_FloatTensor:$new_exp_avg,
                      Vo_FloatTensor:$new_exp_avg_sq,
                      Optional<Vo_F32Tensor>:$grad_sum_squares);
  let assemblyFormat = "$param `,` $grad `,` $exp_avg `,` $exp_avg_sq `,` "
                       "$hyper `,` $grad_scale `beta1` `=` $beta1 `beta2` `=` "
                       "$beta2 `eps` `=` $eps `weight_decay` `=` $weight_decay "
                       "attr-dict `:` type($param) `,` type($hyper) `,` "
                       "type($grad_scale)";
}

//===----------------------------------------------------------------------===//
// Distribution: sharded parameters and collectives over mesh axes
//===----------------------------------------------------------------------===//

def Vo_ParamShardOp : Vo_Op<"param_shard",
    [Pure, DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "Reads this rank's shard of a sharded parameter";
  let description = [{
    The parameter carries a `vo.shard` attribute (set by `vo-shard-fsdp`):
    flattened and zero-padded to `group_size * elements`, each member of the
    sharding group along `mesh_axes` holds `elements` consecutive values.
  }];
  let arguments = (ins FlatSymbolRefAttr:$name);
  let results = (outs Vo_FloatTensor:$result);
  let assemblyFormat = "$name attr-dict `:` type($result)";
}

// Communication: every rank of the mesh executes the same collectives in
// the same order (SPMD). Not Pure, so CSE keeps per-use gathers apart.
class Vo_CollectiveOp<string mnemonic>
    : Vo_Op<mnemonic, [InferTypeOpAdaptor,
                       MemoryEffects<[MemRead, MemWrite]>]> {
  let results = (outs Vo_Tensor:$result);
}

def Vo_AllGatherOp : Vo_CollectiveOp<"all_gather"> {
  let summary = "Concatenates the group members' tensors along a dim";
  let arguments = (ins Vo_Tensor:$input, StrArrayAttr:$mesh_axes,
                       I64Attr:$group_size, I64Attr:$dim);
  let assemblyFormat = "$input `over` $mesh_axes `group_size` `=` $group_size "
                       "`dim` `=` $dim attr-dict `:` type($input)";
}

def Vo_ReduceScatterOp : Vo_CollectiveOp<"reduce_scatter"> {
  let summary = "Sums over the group and keeps this member's chunk of a dim";
  let arguments = (ins Vo_FloatTensor:$input, StrArrayAttr:$mesh_axes,
                       I64Attr:$group_size, I64Attr:$dim);
  let assemblyFormat = "$input `over` $mesh_axes `group_size` `=` $group_size "
                       "`dim` `=` $dim attr-dict `:` type($input)";
}

def Vo_AllReduceOp : Vo_CollectiveOp<"all_reduce"> {
  let summary = "Sums over the group";
  let arguments = (ins Vo_FloatTensor:$input, StrArrayAttr:$mesh_axes,
                       I64Attr:$group_size);
  let assemblyFormat = "$input `over` $mesh_axes `group_size` `=` $group_size "
                       "attr-dict `:` type($input)";
}

def Vo_AllToAllOp : Vo_CollectiveOp<"all_to_all"> {
  let summary = "Splits a dim across the group and concatenates another";
  let description = [{
    Each member splits its input into group_size chunks along `split_dim`,
    sends chunk j to member j, and concatenates what it receives, in member
    order, along `concat_dim`. Ulysses: [B, H, S/sp, D] with split_dim 1 and
    concat_dim 2 gives [B, H/sp, S, D].
  }];
  let arguments = (ins Vo_Tensor:$input, StrArrayAttr:$mesh_axes,
                       I64Attr:$group_size, I64Attr:$split_dim,
                       I64Attr:$concat_dim);
  let assemblyFormat = "$input `over` $mesh_axes `group_size` `=` $group_size "
                       "`split_dim` `=` $split_dim `concat_dim` `=` $concat_dim "
                       "attr-dict `:` type($input)";
  let traits = [InferTypeOpAdaptor, MemoryEffects<[MemRead, MemWrite]>,
                DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>];
}

def Vo_ShardSliceOp : Vo_Op<"shard_slice", [Pure, InferTypeOpAdaptor]> {
  let summary = "This rank's chunk of a dim, by its index in a group";
  let description = [{
    The input, the same on every member of the group, is split into
    group_size equal chunks along `dim`; member g keeps chunk g. Used for
    tensors indexed by sequence position (RoPE tables) under Ulysses.
  }];
  let arguments = (ins Vo_Tensor:$input, StrArrayAttr:$mesh_axes,
                       I64Attr:$group_size, I64Attr:$dim);
  let results = (outs Vo_Tensor:$result);
  let assemblyFormat = "$input `over` $mesh_axes `group_size` `=` $group_size "
                       "`dim` `=` $dim attr-dict `:` type($input)";
}

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

def Vo_TopKOp : Vo_Op<"top_k", [Pure, InferTypeOpAdaptor]> {
  let summary = "The k largest values along the last axis, and their indices";
  let description = [{
    Sorted descending; ties keep the lower index first. Imported from ONNX
    TopK; vo-raise folds a router's softmax + top_k into vo.moe_gate, which
    has a gradient rule (top_k itself has none).
  }];
  let arguments = (ins Vo_FloatTensor:$input, I64Attr:$k);
  let results = (outs Vo_FloatTensor:$values, Vo_IntTensor:$indices);
  let assemblyFormat = "$input `k` `=` $k attr-dict `:` type($input)";
}

def Vo_MoeGateOp : Vo_Op<"moe_gate", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "Router: softmax over experts, top-k, optional renormalization";
  let description = [{
    logits [T, E] -> weights [T, k] (the top_k softmax probabilities,
    divided by their sum when `normalize`) and experts [T, k] (i64, sorted by
    weight). Qwen3-MoE's router with norm_topk_prob.
  }];
  let arguments = (ins Vo_FloatTensor:$logits, I64Attr:$top_k,
                       UnitAttr:$normalize);
  let results = (outs Vo_FloatTensor:$weights, Vo_IntTensor:$experts);
  let assemblyFormat = "$logits `top_k` `=` $top_k (`normalize` $normalize^)? "
                       "attr-dict `:` type($logits)";
}

def Vo_MoeExpertsOp : Vo_Op<"moe_experts", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Vo_DifferentiableOpInterface>]> {
  let summary = "Routed SwiGLU experts, weighted and summed over a token's k";
  let description = [{
    x [T, H], experts [T, k], weights [T, k], gate_up [E, 2I, H] (gate rows
    first, then up), down [E, H, I] -> [T, H]:
    y_t = sum_j weights[t, j] * down[e] (silu(g) * u), [g; u] = gate_up[e] x_t,
    e = experts[t, j]. Dropless: every token reaches its k experts.

    Expert parallel (set by vo-shard-experts): with `mesh_axes` and
    `group_size` = G, gate_up and down hold only this member's E/G experts
    (member g owns g*E/G ..); expert ids stay global, and each (token, slot)
    is computed by its expert's owner in the group.

    With `keep_projected` (not expert parallel), a second result holds the
    routed rows' [g; u] = gate_up[e] x_t, [T*k, 2I] in x's type, row r the
    r-th (token, slot) in expert order (stable: by expert, then by position
    t*k + j); vo.moe_experts_grad reads it instead of recomputing it
    (vo-keep-moe-projections).
  }];
  let arguments = (ins Vo_FloatTensor:$input, Vo_IntTensor:$experts,
                       Vo_FloatTensor:$weights, Vo_FloatTensor:$gate_up,
                       Vo_FloatTensor:$down,
                       OptionalAttr<StrArrayAttr>:$mesh_axes,
                       OptionalAttr<I64Attr>:$group_size,
                       UnitAttr:$keep_projected);
  let results = (outs Vo_FloatTensor:$result, Optional<Vo_FloatTensor>:$projected);
  let assemblyFormat = "$input `,` $experts `,` $weights `,` $gate_up `,` $down "
                       "(`keep_projected` $keep_projected^)? "
                       "attr-dict `:` type($input) `,` type($experts) `,` "
                       "type($weights) `,` type($gate_up) `,` type($down)";
}

def Vo_MoeGateGradOp : Vo_Op<"moe_gate_grad", [Pure, InferTypeOpAdaptor]> {
  let summary = "Gradient of vo.moe_gate's weights w.r.t. the logits";
  let arguments = (ins Vo_FloatTensor:$logits, Vo_IntTensor:$experts,
                       Vo_FloatTensor:$weights_grad, UnitAttr:$normalize);
  let results = (outs Vo_FloatTensor:$logits_grad);
  let assemblyFormat = "$logits `,` $experts `,` $weights_grad "
                       "(`normalize` $normalize^)? attr-dict `:` type($logits) "
                       "`,` type($experts) `,` type($weights_grad)";
}

def Vo_MoeExpertsGradOp : Vo_Op<"moe_experts_grad", [Pure, InferTypeOpAdaptor,
    AllTypesMatch<["input", "result_grad"]>]> {
  let summary = "Gradients of vo.moe_experts";
  let description = [{
    Expert parallel like vo.moe_experts when `mesh_axes` and `group_size`
    are set: gate_up_grad and down_grad are this member's experts' sums over
    every (token, slot) of the group routed to them. `projected`, when
    given, is the forward's second result (not expert parallel): the GPU
    kernel reads it instead of recomputing the gate/up projection.
  }];
  let arguments = (ins Vo_FloatTensor:$input, Vo_IntTensor:$experts,
                       Vo_FloatTensor:$weights, Vo_FloatTensor:$gate_up,
                       Vo_FloatTensor:$down, Vo_FloatTensor:$result_grad,
                       Optional<Vo_FloatTensor>:$projected,
                       OptionalAttr<StrArrayAttr>:$mesh_axes,
                       OptionalAttr<I64Attr>:$group_size);
  let results = (outs Vo_FloatTensor:$input_grad, Vo_FloatTensor:$weights_grad,
                      Vo_FloatTensor:$gate_up_grad, Vo_FloatTensor:$down_grad);
  let assemblyFormat = "$input `,` $experts `,` $weights `,` $gate_up `,` $down "
                       "`,` $result_grad (`projected` `(` $projected^ `:` type($projected) `)`)? "
                       "attr-dict `:` type($input) `,` "
                       "type($experts) `,` type($weights) `,` type($gate_up) `,` "
                       "type($down)";
}

#endif // VEOMNI_DIALECTS_VO_VOOPS_TD
