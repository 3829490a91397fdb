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

def VoTokenMeanLoss : Pass<"vo-token-mean-loss", "mlir::ModuleOp"> {
  let summary = "Make the loss a global token mean: sum times a loss scale";
  let description = [{
    The loss of a step is the mean over every valid token of the global
    batch, across micro-batches and ranks, exactly as one GPU over the whole
    batch computes it. The forward's mean `vo.cross_entropy` becomes a sum
    multiplied by a new scalar argument `loss_scale` (the runtime passes one
    over the global count of valid labels), and a new function
    `@count_tokens` computes a micro-batch's valid-label count from the same
    inputs. The forward must return a mean cross-entropy.
  }];
  let options = [
    Option<"functionName", "function", "std::string", [{"forward"}],
           "The loss function to rewrite">
  ];
}

def VoAutodiff : Pass<"vo-autodiff", "mlir::ModuleOp"> {
  let summary = "Reverse-mode autodiff: the loss function's parameter gradients";
  let description = [{
    Builds `@<function>_backward` returning the loss and the gradient of every
    parameter with a differentiable path to the loss (in declaration order;
    result attribute `vo.name = "grad.<parameter>"`); the others get none and
    so no update, as in PyTorch. Gradients flow through the values that
    both depend on a parameter and reach the loss; each op's rule comes from
    its DifferentiableOpInterface. An op on that path without a rule is an
    error.
  }];
  let options = [
    Option<"functionName", "function", "std::string", [{"forward"}],
           "The scalar loss function to differentiate">
  ];
}

def VoBf16Matmuls : Pass<"vo-bf16-matmuls", "mlir::ModuleOp"> {
  let summary = "Mixed precision: f32 matmuls multiply bf16 roundings of their operands";
  let description = [{
    Every f32 `vo.matmul` becomes an `f32_result` matmul of bf16 operands
    (f32 accumulation and result), each operand rounded by a `vo.cast`. The
    GPU's bf16 matmul rounds the same way inside its kernel, once per launch;
    here a value is rounded once for all the matmuls that read it (looking
    through `vo.reshape`), and the backward keeps the bf16 rounding instead of
    the f32 value where nothing else reads that:
    - a value of an op is rounded right after the op, shared by its matmuls,
      when its other readers are done in the first half of its life (its f32
      bytes then free early); otherwise right before each matmul;
    - a parameter (`vo.param`, its FSDP shard, or a function argument) or a
      constant, which stays in memory anyway, is rounded right before each
      reader; a rounding of one that several ops read (CSE merges the
      per-use roundings; veomni-compile runs the pass again after CSE) is
      made again before each of them.
    SwiGLU's gate and up projections, when only the swiglu and its gradient
    read them and only matmuls read the swiglu, return bf16 (matmuls of bf16
    operands without `f32_result`), and the swiglu reads and returns bf16: the
    backward keeps both projections at half the bytes, and `vo.swiglu_grad`
    reads them beside the f32 output gradient.
    A `vo.cross_entropy_grad` that only matmuls read (through reshapes)
    returns its bf16 rounding itself (`bf16_result`), whatever its size, so
    the output projection's gradients multiply it with no copy. An embedding
    of an f32 parameter looks rows up in the table's rounding (made right
    before it) and widens them to f32: the rows the output projection's
    rounding multiplies with, and FSDP gathers a tied table in bf16. The
    expert weights of `vo.moe_experts(_grad)` that are parameters are
    rounded right before each of them, like a matmul's weights.
    A matmul with an activation whose bf16 rounding would pass
    `max-operand-bytes` (the output projection's [tokens, vocab] gradient)
    stays f32: the GPU kernel rounds such operands in bounded pieces. A
    persistent operand (a weight) is rounded whatever its size: the copy is
    no larger than the parameter, and FSDP then gathers it in bf16. Runs after autodiff (the
    new matmuls have no gradient rule) and vo-shard-experts (whose expert
    weights are parameter reads), and before recomputation, which then
    weighs the bf16 activations; the sharding passes after it gather and
    slice what the roundings read. Only a function's top-level blocks are
    rewritten (vo has no ops with regions).
  }];
  let options = [
    Option<"maxOperandBytes", "max-operand-bytes", "int64_t", "268435456",
           "Largest bf16 activation operand (bytes) this pass rounds; the "
           "matmuls of larger ones stay f32 (> 0)">
  ];
  let dependentDialects = ["::veomni::vo::VoDialect"];
}

def VoOptimizer : Pass<"vo-optimizer", "mlir::ModuleOp"> {
  let summary = "Build the micro-step (gradient accumulation) and AdamW step";
  let description = [{
    From `@forward_backward`, builds `@micro_step`, which adds a micro-batch's
    gradients into the gradient accumulators, and `@optimizer_step`, which
    clips by global norm (when `max-grad-norm` > 0), applies AdamW to every
    parameter and clears the accumulators. The global norm is always
    returned (`grad_norm`): with clipping from a `vo.reduce_sum_squares` of
    each gradient before the updates, without from the sums of squares the
    `vo.adamw` ops return (`sum_squares`), which read each gradient anyway. With `grad-accum=1` (one
    micro-batch a step) the micro-step stores its gradients instead of adding
    them and nothing clears the accumulators. Persistent state (parameters,
    accumulators, moments) is named by `vo.state` argument and result
    attributes: `param:<name>`, `grad:<name>`, `exp_avg:<name>`,
    `exp_avg_sq:<name>`; a result tagged with a state name overwrites it.
    The learning rate and bias corrections of each step come in through the
    `hyper` argument ([lr, 1 - beta1^t, 1 - beta2^t]), computed by the runtime
    from the schedule.
  }];
  let options = [
    Option<"beta1", "beta1", "double", "0.9", "AdamW beta1">,
    Option<"beta2", "beta2", "double", "0.999", "AdamW beta2">,
    Option<"eps", "eps", "double", "1e-8", "AdamW epsilon">,
    Option<"weightDecay", "weight-decay", "double", "0.01",
           "AdamW decoupled weight decay">,
    Option<"maxGradNorm", "max-grad-norm", "double", "0.0",
           "Clip gradients to this global L2 norm (0: no clipping)">,
    Option<"gradAccum", "grad-accum", "int64_t", "1",
           "Micro-batches per optimizer step (>= 1). With 1, @micro_step "
           "writes its gradients over the accumulators and @optimizer_step "
           "leaves them, since the next micro-step overwrites them: no add "
           "and no clearing pass over every gradient">
  ];
}

def VoShardSequence : Pass<"vo-shard-sequence", "mlir::ModuleOp"> {
  let summary = "Ulysses: split @forward along the sequence over sp ranks";
  let description = [{
    Re-types @forward for a contiguous S/sp chunk of the sequence per rank:
    every input shaped like the token input is split along dim 1, and each op
    is rebuilt for the local chunk. Around each vo.attention an all-to-all
    turns [B, H, S/sp, D] into [B, H/sp, S, D] for q, k and v (kv heads
    replicated when fewer than sp) and one turns the output back; the label
    shift takes the next rank's first label; position-indexed constant
    tables become each rank's slice. Runs before vo-token-mean-loss, whose
    count and loss vo-shard-fsdp then sums over all ranks. Errors name ops
    that reduce, slice or concatenate along the sequence, and head counts sp
    does not divide.
  }];
  let options = [
    Option<"sp", "sp", "int64_t", "1", "Sequence-parallel degree">,
    Option<"tokenInput", "token-input", "std::string", [{"input_ids"}],
           "The input of token ids, whose dim 1 is the sequence">
  ];
}

def VoShardExperts : Pass<"vo-shard-experts", "mlir::ModuleOp"> {
  let summary = "Expert parallelism: split MoE expert weights over ep";
  let description = [{
    After vo-autodiff and before vo-shard-fsdp. Each member of an ep group
    (ep consecutive ranks of a (fsdp, sp) group) owns E/ep consecutive
    experts of every MoE layer: the expert weight parameters get
    `vo.expert_shard = {group_size = ep}` and their reads become this
    member's [E/ep, ...] block; every vo.moe_experts and vo.moe_experts_grad
    gets `mesh_axes = ["ep"]` and `group_size = ep`, so the runtime sends
    each (token, slot) to its expert's owner and back; the expert weight
    gradients become the member's block. Routing stays local.

    Rejects (naming the op or parameter): ep not dividing a layer's expert
    count, expert weights that are not parameters, and expert parameters
    read by anything but one vo.moe_experts and its gradient.
  }];
  let options = [
    Option<"ep", "ep", "int64_t", "1", "Expert-parallel degree">
  ];
}

def VoShardFsdp : Pass<"vo-shard-fsdp", "mlir::ModuleOp"> {
  let summary = "FSDP/HSDP: shard parameters, gradients and optimizer state";
  let description = [{
    On `@forward_backward` (after vo-autodiff), for a mesh dp x fsdp x sp:
    every parameter is flattened, zero-padded to a multiple of G = fsdp*sp
    and split into G shards (`vo.shard` on the vo.parameter); each read of a
    parameter becomes this rank's shard (`vo.param_shard`) and an all-gather
    over (fsdp, sp) right before each use, so the full tensor lives only as
    long as that use; each gradient is reduce-scattered into this rank's
    shard; the loss (and @count_tokens' count) is summed over all ranks. The
    module records the mesh in `vo.mesh`, from which vo-optimizer adds the
    all-reduce over dp and the global gradient norm.
  }];
  let options = [
    Option<"dp", "dp", "int64_t", "1", "Replicate degree (HSDP outer axis)">,
    Option<"fsdp", "fsdp", "int64_t", "1", "Shard degree">,
    Option<"sp", "sp", "int64_t", "1", "Sequence-parallel degree">,
    Option<"ep", "ep", "int64_t", "1",
           "Expert-parallel degree (as given to vo-shard-experts): expert "
           "weights shard over the fsdp*sp/ep ranks (ep_fsdp) that own the "
           "same experts">
  ];
}

def VoKeepBf16Params : Pass<"vo-keep-bf16-params", "mlir::ModuleOp"> {
  let summary = "Keep bf16 copies of weights, written by the optimizer step";
  let description = [{
    After vo-bf16-matmuls each reader of a weight reads a `vo.cast` of
    `vo.param` to bf16, rounded every step: per reader, a read of the f32
    parameter and a write of half its bytes. This pass replaces those casts
    (in every function but `@optimizer_step`) with `vo.param_bf16`, a state
    of its own (`param_bf16:<name>`), and makes `@optimizer_step` return the
    bf16 rounding of each such parameter's update into it (the lowering
    fuses that rounding into the `adamw` kernel, which then writes the copy
    as it writes the parameter). The runtime makes the first copy from the
    initial parameter. The copy is what the casts computed, so training is
    unchanged; the cost is its bytes, 2 per parameter element, for the run.
    `weights=experts` keeps copies only of weights that only MoE kernels
    read (rounded twice a step, forward and backward, and the largest
    weights of an MoE model, looking through FSDP's gathers); `all` of every
    weight read in bf16. An FSDP-sharded parameter keeps a copy of this
    rank's shard, which its gathers then read (bf16 state sharded as the
    parameter). Runs after vo-optimizer and the second vo-bf16-matmuls.
  }];
  let options = [
    Option<"weights", "weights", "std::string", "\"experts\"",
           "Which weights keep a bf16 copy: experts or all">
  ];
}

def VoKeepMoeProjections : Pass<"vo-keep-moe-projections", "mlir::ModuleOp"> {
  let summary = "MoE backward reads the forward's gate/up projections";
  let description = [{
    `vo.moe_experts_grad` recomputes the routed rows' gate/up projection
    (two thirds of the forward's FLOPs) unless given it. For each gradient
    whose forward (`vo.moe_experts` of the same five operands, earlier in
    the same block) is not expert parallel, the forward keeps the
    projection (`keep_projected`: a second result, [T*k, 2I] in x's type)
    and the gradient reads it (`projected`): its bytes live from the
    forward to the backward. Expert-parallel layers recompute: their rows
    are exchanged by routing, so no static tensor holds them. Runs after
    vo-shard-experts (which marks expert parallelism) and before
    vo-recompute (which then weighs the kept projection).
  }];
}

def VoPrefetchGathers : Pass<"vo-prefetch-gathers", "mlir::ModuleOp"> {
  let summary = "Issue each all-gather ahead of the reader of an earlier one";
  let description = [{
    vo-shard-fsdp gathers a parameter right before its use. The runtime runs
    collectives on a stream of their own and makes a kernel wait only for
    the collectives whose bytes it touches, so a gather issued earlier moves
    the weight while the kernels before its use compute. This pass moves each
    `vo.all_gather` of a function's top-level block, with the pure ops that
    make its input there (the shard's bf16 rounding, a reshape), right
    before the first reader of the gather `depth` places earlier in the
    block. A reader is the first op that reads the gathered value other than
    through vo.reshape, vo.slice, vo.transpose and vo.cast. A gather whose
    input needs an op that is not pure (another collective) or more than
    eight ops moves only up to there. Gathered weights live the longer by
    those kernels; `depth=0` leaves the program as it is. Runs last before
    lowering (the optimizer, canonicalization and CSE keep op order).
  }];
  let options = [
    Option<"depth", "depth", "int64_t", "2",
           "How many gathers earlier each gather is issued, counted by their "
           "readers (>= 0; 0: none)">
  ];
}

def VoRecompute : Pass<"vo-recompute", "mlir::ModuleOp"> {
  let summary = "Recompute activations in the backward instead of keeping them";
  let description = [{
    Runs on the autodiff's `@<function>` (forward, then backward). The
    candidates are the forward values that backward ops read (the
    activations saved for backward) whose producer can run again: a vo op
    other than a parameter, constant or MoE op. Recomputing a value also
    recomputes the forward-only values its producer reads (its chain), so
    its cost is the chain's time on the device figures (`device`) and its
    ROI is its bytes over that time. Each recomputed value is cloned, with
    its chain, before its first backward use, and backward ops read the
    clone; forward uses keep the original, which then dies early.

    - `none`: nothing is recomputed (the peak is still measured).
    - `full`: every candidate except the residual stream (vo.add and
      vo.embedding results), as whole-layer checkpointing keeps only layer
      boundaries.
    - `roi`: candidates by descending ROI, each kept only if it lowers the
      activation peak, until the peak is at most `activation-budget` bytes
      (if they cannot, and `full` can, `full`); a budget neither meets is an
      error that states the lowest peak found.

    The activation peak is simulated on the op order: every non-parameter
    value lives from its op to its last use. The module gets
    `vo.recompute = {mode, peak_before, peak_after, lowest_peak,
    recomputed, extra_flops}` for veomni-compile --explain, and every clone
    `vo.recomputed`.
  }];
  let options = [
    Option<"functionName", "function", "std::string", [{"forward_backward"}],
           "The function holding forward and backward">,
    Option<"mode", "mode", "std::string", [{"none"}], "none, full or roi">,
    Option<"activationBudget", "activation-budget", "int64_t", "0",
           "roi: the activation peak to reach, in bytes">,
    Option<"deviceName", "device", "std::string", [{"h100"}],
           "The GPU whose figures give each op's time: h100 or h200">
  ];
}

def VoLowerToVrt : Pass<"vo-lower-to-vrt", "mlir::ModuleOp"> {
  let summary = "Lower vo functions to runtime programs (vrt)";
  let description = [{
    Every vo op becomes a `vrt.launch` of the runtime kernel of the same name,
    its attributes becoming kernel params (unit and boolean attributes as
    0/1, enums as their integer values). `vo.param` reads become
    `vrt.state "param:<name>"`; arguments and results tagged `vo.state`
    become `vrt.state` reads and `vrt.store` writes, so a function's
    signature keeps only its named inputs and outputs. Each store goes right
    after the last read of its key, so its value leaves the arena at once. Splat constants become
    `fill` launches; other constants stay in the artifact.
  }];
  let dependentDialects = ["::veomni::vrt::VrtDialect"];
}

def VrtForwardStores : Pass<"vrt-forward-stores", "mlir::ModuleOp"> {
  let summary = "Let launches write stored values straight into the state";
  let description = [{
    Marks a `vrt.store` `forwarded` when the launch that makes its value can
    write it into the state buffer itself: the value is that launch's own
    result (not a reshape's alias), it is the key's only store and the
    value's, and nothing reads the key's old value once the launch starts,
    except the launch itself when it is elementwise (adamw, add, sub, mul,
    div: each element is read before it is written). A `fill` that comes
    before the old value's last read (zeroing a gradient accumulator at the
    start of an optimizer step) moves after that read first. This saves the
    store's copy and the value's arena buffer: an optimizer step then
    updates parameters and moments in place.
  }];
}

def VrtPlanMemory : Pass<"vrt-plan-memory", "mlir::ModuleOp"> {
  let summary = "Place every launch result at a static offset in one arena";
  let description = [{
    Computes each launch result's live range (definition to last use, or the
    function's end when returned) and places the results, largest first, at
    the lowest 64-byte-aligned offset that overlaps no result live at the
    same time. A kernel's outputs never share memory with its inputs. The
    function's `vrt.arena_bytes` is the exact peak. Results of forwarded
    stores live in the state and get offset -1. The inputs of a collective
    over several ranks (all_gather, reduce_scatter, all_reduce, all_to_all:
    the runtime runs them beside the kernels) live until the first reader of
    its result, or, when nothing in the function reads it, until the next
    collective of its kind: freed earlier, the next kernel would take those
    bytes and wait for the transfer.
  }];
}

#endif // VEOMNI_PASSES_PASSES_TD
