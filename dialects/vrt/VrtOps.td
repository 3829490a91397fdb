//===- VrtOps.td - the runtime-program dialect -------------*- tablegen -*-===//
//
// `vrt` is what the runtime executes: kernel launches from its registry on
// statically planned buffers, reads and writes of persistent state, and
// constants shipped in the artifact. One function per entry point
// (count_tokens, micro_step, optimizer_step, ...).
//
//===----------------------------------------------------------------------===//

#ifndef VEOMNI_DIALECTS_VRT_VRTOPS_TD
#define VEOMNI_DIALECTS_VRT_VRTOPS_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Vrt_Dialect : Dialect {
  let name = "vrt";
  let cppNamespace = "::veomni::vrt";
  let summary = "The program the veomni runtime executes";
  let description = [{
    Values are tensors that the memory planner (`vrt-plan-memory`) places in
    one arena per function: each `vrt.launch` gets the arena offsets of its
    results in `offsets`, and the function its arena size in
    `vrt.arena_bytes`. Persistent state (parameters, gradient accumulators,
    optimizer moments) lives outside the arena and is named by key.
  }];
}

class Vrt_Op<string mnemonic, list<Trait> traits = []>
    : Op<Vrt_Dialect, mnemonic, traits>;

def Vrt_StateOp : Vrt_Op<"state", [Pure]> {
  let summary = "Reads persistent state by key";
  let arguments = (ins StrAttr:$key);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$key attr-dict `:` type($result)";
}

def Vrt_StoreOp : Vrt_Op<"store", [MemoryEffects<[MemWrite]>]> {
  let summary = "Overwrites persistent state with a value";
  let description = [{
    Stores come after every read of their state in a function, so a function
    sees the state as it was when it started. A `forwarded` store costs
    nothing at run time: the launch that makes its value writes it straight
    into the state (`vrt-forward-stores` decides when that is safe), and the
    value takes no arena space.
  }];
  let arguments = (ins StrAttr:$key, AnyRankedTensor:$value, UnitAttr:$forwarded);
  let hasVerifier = 1;
  let assemblyFormat = "$key `,` $value attr-dict `:` type($value)";
}

def Vrt_ConstantOp : Vrt_Op<"constant",
    [ConstantLike, Pure, AllTypesMatch<["value", "result"]>]> {
  let summary = "A constant tensor stored in the artifact";
  let arguments = (ins ElementsAttr:$value);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "attr-dict $value";
}

def Vrt_LaunchOp : Vrt_Op<"launch", [Pure]> {
  let summary = "Runs a kernel of the runtime's registry";
  let description = [{
    `kernel` names a runtime kernel; `params` are its attributes (integers,
    floats, integer arrays). After memory planning, `offsets` holds each
    result's byte offset in the function's arena, or -1 for a result that a
    forwarded store writes into the state instead.
  }];
  let arguments = (ins StrAttr:$kernel, Variadic<AnyRankedTensor>:$inputs,
                       DictionaryAttr:$params,
                       OptionalAttr<DenseI64ArrayAttr>:$offsets);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = "$kernel `(` $inputs `)` $params attr-dict `:` "
                       "functional-type($inputs, $results)";
  let hasVerifier = 1;
}

#endif // VEOMNI_DIALECTS_VRT_VRTOPS_TD
