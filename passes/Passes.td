//===- Passes.td - veomni passes ---------------------------*- tablegen -*-===//

#ifndef VEOMNI_PASSES_PASSES_TD
#define VEOMNI_PASSES_PASSES_TD

include "mlir/Pass/PassBase.td"

def VoRaise : Pass<"vo-raise", "mlir::ModuleOp"> {
  let summary = "Raise exporter-decomposed patterns into fused vo ops";
  let description = [{
    Rewrites the primitive chains that exporters emit into the ops the rest
    of the compiler plans for:
    - RMSNorm: x * rsqrt(mean(x^2) + eps) * w (pow/reduce_mean/add/sqrt/
      reciprocal or rsqrt forms) -> vo.rms_norm
    - SiLU and SwiGLU: x * sigmoid(x) -> vo.silu; silu(g) * u -> vo.swiglu
    - RoPE: x * cos + concat(-x2, x1) * sin -> vo.rope
    - attention: softmax(q k^T * scale + causal mask) v, with grouped-query
      kv expansion -> vo.attention
    A pattern applies only when every constant it absorbs (the mask, the
    scale, the exponent) has exactly the value the fused op assumes.
  }];
  let dependentDialects = ["::veomni::vo::VoDialect"];
}

#endif // VEOMNI_PASSES_PASSES_TD
