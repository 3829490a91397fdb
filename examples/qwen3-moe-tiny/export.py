#!/usr/bin/env python3
"""Export a tiny HF Qwen3-MoE causal-LM training loss to ONNX and build a PyTorch reference.

Same files, keys and conventions as examples/qwen3-tiny/export.py (read that first); the
differences are the model (every decoder layer a sparse MoE block) and the experts
implementation.

Outputs (in --out DIR, default: this script's directory):
  model.onnx              static-shape ONNX graph  loss = f(input_ids[2,32], labels[2,32])
                          (torch.onnx.export(dynamo=True, optimize=False), then the exporter's
                          default onnxscript optimizer with every parameter temporarily marked
                          as a graph input, so each parameter stays its own HF-named
                          initializer; initializers inline, no external data)
  reference.safetensors   fp32 PyTorch reference (see KEYS below)
  reference.json          config, optimizer hyper-parameters, versions, HF->ONNX name mapping,
                          experts-implementation check

EXPERTS IMPLEMENTATION (torch 2.11, transformers 5.17). Qwen3MoeExperts dispatches on
config._experts_implementation; this script checks all three every run (--skip-impl-check
skips it) and records the outcome in reference.json:
  * default (config value None, resolved to "grouped_mm" at model init): under torch.export
    the fp32 path calls the custom op transformers::grouped_mm_fallback, for which the ONNX
    exporter has no translation (DispatchError: No ONNX function found).
  * "eager": a Python loop over the experts hit (one_hot -> nonzero -> for): torch.export
    fails with GuardOnDataDependentSymNode (data-dependent number of loop iterations).
  * "batched_mm" (used here): every (token, k) pair gathers its expert's weights
    (gate_up_proj[expert_ids], down_proj[expert_ids] -> GatherND) and runs a batched MatMul;
    weighted outputs are summed over k with reshape + ReduceSum. Exports fine.
  The check also computes loss and gradients with the default and with "eager" experts
  (same initial weights) and compares them with batched_mm (max abs differences in
  reference.json["experts_implementation_check"]).

ROUTER AUX LOSS: output_router_logits=False, so the loss is the causal-LM cross-entropy only;
the load-balancing term (router_aux_loss_coef * aux_loss) is NOT part of the exported loss.
norm_topk_prob=True is set explicitly: the released Qwen3-MoE checkpoints (e.g. Qwen3-30B-A3B)
use it, but Qwen3MoeConfig's own default is False.

KEYS in reference.safetensors (identical meaning to qwen3-tiny)
  input_ids, labels                 [2,32] int64 fixed batch
  loss                              [1] f32   model(input_ids, labels=labels).loss
  steps.input_ids, steps.labels     [20,2,32] int64
  -- semantics of model.onnx as exported (keys = ONNX initializer names) --
  init.<onnx>, grad.<onnx>, final.<onnx>   layout = ONNX initializer layout; with the default
                                    (parameter-preserving) export every initializer is one HF
                                    parameter in HF layout, named "model." + HF name, and the
                                    tied embedding/lm_head is "model.lm_head.weight"
  steps.loss                        [20] f32  loss before each AdamW step (ONNX semantics)
  -- semantics of the original HF model (keys = HF parameter names, HF layout) --
  hf.init.<hf>, hf.grad.<hf>, hf.final.<hf>, hf.steps.loss
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from reference_training import (  # noqa: E402  (shared with the other examples)
    BATCH, BATCH_SEED, IGNORE_TAIL, NUM_STEPS, OPT, PARAM_KIND, SEQ, STEPS_SEED, LossWrapper,
    build_mapping, export_static, fixed_batch, loss_and_grads, onnx_float_initializers,
    setup_determinism, step_batches, tie_like_onnx, to_onnx_layout, train)

HERE = os.path.dirname(os.path.abspath(__file__))

ATTN_IMPLEMENTATION = "eager"
EXPERTS_IMPLEMENTATION = "batched_mm"  # the only one torch.onnx.export handles (see above)
CONFIG = dict(
    num_hidden_layers=2,
    hidden_size=64,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    vocab_size=256,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
    rope_theta=10000.0,
    tie_word_embeddings=True,
    use_cache=False,  # no DynamicCache in the traced training forward
    attn_implementation=ATTN_IMPLEMENTATION,
    # MoE
    num_experts=8,
    num_experts_per_tok=2,
    moe_intermediate_size=32,
    norm_topk_prob=True,  # Qwen3MoeConfig's default is False; Qwen3-MoE checkpoints use True
    decoder_sparse_step=1,  # every layer is a sparse MoE block ...
    mlp_only_layers=[],  # ... none is a dense MLP
    intermediate_size=128,  # dense-MLP width: unused (no dense MLP layer)
    output_router_logits=False,  # no load-balancing aux loss in the loss
    router_aux_loss_coef=0.001,  # Qwen3MoeConfig default; unused (output_router_logits=False)
)
MODEL_SEED = 0


def build_model(experts_implementation: str | None = EXPERTS_IMPLEMENTATION):
    """experts_implementation None = Qwen3MoeConfig's default (resolved at model init)."""
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeExperts

    cfg = Qwen3MoeConfig(**CONFIG)
    if experts_implementation is not None:
        cfg._experts_implementation = experts_implementation
    torch.manual_seed(MODEL_SEED)
    model = Qwen3MoeForCausalLM(cfg).to(torch.float32)
    model.train()  # training semantics; all dropouts are 0.0 anyway
    assert model.config._attn_implementation == ATTN_IMPLEMENTATION
    assert model.lm_head.weight is model.model.embed_tokens.weight
    experts = [m for m in model.modules() if isinstance(m, Qwen3MoeExperts)]
    assert len(experts) == CONFIG["num_hidden_layers"]  # every layer is MoE
    impls = {m.config._experts_implementation for m in experts}
    assert len(impls) == 1, impls
    if experts_implementation is not None:
        assert impls == {experts_implementation}, impls
    return model


def try_export(model, ids, labels):
    """torch.onnx.export without writing a file; returns a short, deterministic outcome."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            warnings.simplefilter("ignore")
            torch.onnx.export(LossWrapper(model), (ids, labels), dynamo=True, optimize=False,
                              verbose=False)
        return {"ok": True}
    except Exception as e:  # expected for the default and "eager" experts
        msg = str(e)
        cause = next((ln.strip() for ln in msg.splitlines() if ln.startswith("<class '")),
                     msg.splitlines()[0] if msg else "")
        return {"ok": False, "error": type(e).__name__, "cause": cause[:400]}


def onnx_parameter_marks(m):
    """ONNX initializer name -> InputSpec.kind from value_info metadata."""
    marks = {}
    for vi in m.graph.value_info:
        for p in vi.metadata_props:
            if p.key == PARAM_KIND:
                marks[vi.name] = p.value
    return marks


def experts_impl_check(ids, labels, steps_ids, steps_labels, init_state, loss0, grads, steps_loss):
    """Export outcome of every experts implementation, and the numerical agreement of the
    default and "eager" experts with batched_mm (loss, gradients, 20-step training losses)."""
    report = {}
    for label, impl in (("default", None), ("eager", "eager"),
                        (EXPERTS_IMPLEMENTATION, EXPERTS_IMPLEMENTATION)):
        model = build_model(impl)
        resolved = model.model.layers[0].mlp.experts.config._experts_implementation
        for n, p in model.named_parameters():
            assert torch.equal(p.detach(), init_state[n]), f"{label}: initial weights differ at {n}"
        entry = {"resolved": resolved, "onnx_export": try_export(model, ids, labels)}
        if impl != EXPERTS_IMPLEMENTATION:
            l_, g_ = loss_and_grads(model, ids, labels)
            per_param = {n: float((g_[n] - grads[n]).abs().max()) for n in grads}
            worst = max(per_param, key=per_param.get)
            entry.update({
                "vs": EXPERTS_IMPLEMENTATION,
                "loss": float(l_),
                "loss_max_abs_diff": float((l_ - loss0).abs()),
                "grad_max_abs_diff": per_param[worst],
                "grad_max_abs_diff_param": worst,
                "grad_max_rel_diff": max(float((g_[n] - grads[n]).abs().max() / grads[n].abs().max())
                                         for n in grads),
                "grad_max_abs": max(float(g.abs().max()) for g in grads.values()),
                "steps_loss_max_abs_diff": float(np.abs(train(model, steps_ids, steps_labels)
                                                        - steps_loss).max()),
            })
        report[label] = entry
        del model
    return report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--keep-stack-traces", action="store_true")
    ap.add_argument("--skip-impl-check", action="store_true",
                    help="skip exporting/comparing the default and 'eager' experts implementations")
    ap.add_argument("--exporter-default-optimize", action="store_true",
                    help="use the exporter's default optimization, which folds transposed "
                         "weights into unnamed constants and merges identical initializers "
                         "(veomni-import rejects such a file); default: optimize like the "
                         "exporter but keep every parameter as its own HF-named initializer")
    args = ap.parse_args()
    args.preserve_params = not args.exporter_default_optimize
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    setup_determinism()

    import onnx
    import transformers
    from safetensors.numpy import save_file

    ids, labels = fixed_batch()
    steps_ids, steps_labels = step_batches()

    model = build_model()
    init_state = {n: p.detach().clone() for n, p in model.named_parameters()}

    # ---- export -------------------------------------------------------------------------
    onnx_path = os.path.join(args.out, "model.onnx")
    _, m = export_static(model, ids, labels, onnx_path, args.keep_stack_traces,
                         args.preserve_params)
    opset = {o.domain or "ai.onnx": o.version for o in m.opset_import}
    # export must not have modified the weights
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), init_state[n]), n

    mapping, groups = build_mapping(model, m)
    marks = onnx_parameter_marks(m)
    print("HF parameter -> ONNX initializer")
    for hf, e in mapping.items():
        print(f"  {hf:50s} {str(e['hf_shape']):12s} -> {e['onnx']:50s} {str(e['onnx_shape']):12s}"
              f"{' T' if e['transposed'] else ''}{' shared' if e['shared_with'] else ''}"
              f" {marks.get(e['onnx'], 'NO-MARK')}")
    if args.preserve_params:
        unmarked = [on for on in groups if marks.get(on) != "PARAMETER"]
        assert not unmarked, f"parameter initializers without InputSpec.kind=PARAMETER: {unmarked}"

    # ---- reference: HF semantics ----------------------------------------------------------
    tensors = {"input_ids": ids.numpy(), "labels": labels.numpy(),
               "steps.input_ids": steps_ids.numpy(), "steps.labels": steps_labels.numpy()}
    loss0, hf_grads = loss_and_grads(model, ids, labels)
    tensors["loss"] = loss0.reshape(1).numpy().astype(np.float32)
    for n, t in init_state.items():
        tensors[f"hf.init.{n}"] = t.numpy()
        tensors[f"hf.grad.{n}"] = hf_grads[n].numpy()
    tensors["hf.steps.loss"] = train(model, steps_ids, steps_labels)
    for n, p in model.named_parameters():
        tensors[f"hf.final.{n}"] = p.detach().numpy().copy()
    del model

    # ---- reference: semantics of model.onnx as exported (ONNX names/layouts, shared params) --
    model = build_model()
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), init_state[n]), f"re-created model differs at {n}"
    tie_like_onnx(model, groups)
    onnx_inits = onnx_float_initializers(m)
    rep = {on: members[0] for on, members in groups.items()}  # onnx name -> representative HF name
    assert sorted(n for n, _ in model.named_parameters()) == sorted(rep.values())
    loss0_t, grads_t = loss_and_grads(model, ids, labels)
    assert torch.equal(loss0_t, loss0), (loss0_t, loss0)
    for on, hf in rep.items():
        tr = mapping[hf]["transposed"]
        init = to_onnx_layout(init_state[hf].numpy(), tr)
        assert init.dtype == onnx_inits[on].dtype and np.array_equal(init, onnx_inits[on]), on
        tensors[f"init.{on}"] = init
        tensors[f"grad.{on}"] = to_onnx_layout(grads_t[hf].numpy(), tr)
        # sanity: grad of a shared initializer == sum of its members' HF grads
        s = sum(hf_grads[h] for h in groups[on])
        assert torch.allclose(grads_t[hf], s, rtol=1e-5, atol=1e-7), on
    tensors["steps.loss"] = train(model, steps_ids, steps_labels)
    for on, hf in rep.items():
        tensors[f"final.{on}"] = to_onnx_layout(
            model.get_parameter(hf).detach().numpy(), mapping[hf]["transposed"])
    del model

    # ---- the other experts implementations: export outcome, numerical agreement -------------
    impl_check = ({"skipped": True} if args.skip_impl_check else
                  experts_impl_check(ids, labels, steps_ids, steps_labels, init_state, loss0,
                                     hf_grads, tensors["hf.steps.loss"]))
    for k, v in impl_check.items():
        if isinstance(v, dict):
            print(f"experts '{k}' (resolved {v['resolved']}): onnx export "
                  f"{'ok' if v['onnx_export']['ok'] else 'FAILS: ' + v['onnx_export']['cause'][:160]}")
            if "vs" in v:
                print(f"    vs {v['vs']}: |dloss| {v['loss_max_abs_diff']:.3g}  max|dgrad| "
                      f"{v['grad_max_abs_diff']:.3g} ({v['grad_max_abs_diff_param']}, max|grad| "
                      f"{v['grad_max_abs']:.3g})  max rel {v['grad_max_rel_diff']:.3g}  "
                      f"20-step losses max|d| {v['steps_loss_max_abs_diff']:.3g}")
    if not args.skip_impl_check:
        assert impl_check[EXPERTS_IMPLEMENTATION]["onnx_export"]["ok"]

    ref_path = os.path.join(args.out, "reference.safetensors")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, ref_path)

    meta = {
        "model": "Qwen3MoeForCausalLM",
        "config": {**CONFIG, "experts_implementation": EXPERTS_IMPLEMENTATION, "dtype": "float32",
                   "hidden_act": "silu", "attention_dropout": 0.0, "attention_bias": False},
        "notes": {
            "experts_implementation": "config._experts_implementation = 'batched_mm': the default "
                                      "(grouped_mm) and 'eager' experts do not export to ONNX "
                                      "(see experts_implementation_check)",
            "aux_loss": "excluded: output_router_logits=False, loss = cross-entropy only "
                        "(router_aux_loss_coef unused)",
            "norm_topk_prob": "True (set explicitly; Qwen3MoeConfig's default is False, the "
                              "released Qwen3-MoE checkpoints set True): top-k probabilities "
                              "renormalized to sum 1",
            "moe_layers": "every decoder layer (decoder_sparse_step=1, mlp_only_layers=[]); "
                          "intermediate_size is unused",
        },
        "mode": "model.train() (all dropout probabilities are 0.0)",
        "model_seed": MODEL_SEED,
        "batch": BATCH, "seq": SEQ, "batch_seed": BATCH_SEED, "steps_seed": STEPS_SEED,
        "ignore_index": -100, "ignored_positions": f"labels[1, -{IGNORE_TAIL}:]",
        "loss": "mean cross-entropy over shifted labels (HF ForCausalLMLoss, ignore_index=-100); "
                "no router aux loss",
        "optimizer": {"type": "torch.optim.AdamW", "lr": OPT["lr"], "betas": list(OPT["betas"]),
                      "eps": OPT["eps"], "weight_decay": OPT["weight_decay"], "amsgrad": False,
                      "maximize": False, "params": "all parameters, one group, decay applied to all",
                      "num_steps": NUM_STEPS},
        "onnx": {"file": "model.onnx", "opset_import": opset, "ir_version": m.ir_version,
                 "exporter": ("torch.onnx.export(dynamo=True), default optimize=True, external_data=False"
                              if not args.preserve_params else
                              "torch.onnx.export(dynamo=True, optimize=False) + onnxscript default "
                              "optimize with parameters temporarily marked as graph inputs"),
                 "stack_traces_stripped": not args.keep_stack_traces,
                 "size_bytes": os.path.getsize(onnx_path),
                 "trainable_initializers": sorted(groups)},
        "experts_implementation_check": impl_check,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "onnx": onnx.__version__, "python": sys.version.split()[0]},
        "hf_to_onnx": mapping,
        "onnx_to_hf": groups,
        "reference_keys": {
            "onnx_semantics": "init./grad./final.<onnx initializer name> in ONNX layout; steps.loss",
            "hf_semantics": "hf.init./hf.grad./hf.final.<hf param name> in HF layout; hf.steps.loss",
        },
        "loss_value": float(loss0),
    }
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(meta, f, indent=1)

    print(f"opset {opset} ir_version {m.ir_version}")
    print(f"loss {float(loss0):.7f}")
    print("steps.loss   ", np.array2string(tensors["steps.loss"], precision=5))
    print("hf.steps.loss", np.array2string(tensors["hf.steps.loss"], precision=5))
    for f in ("model.onnx", "reference.safetensors", "reference.json"):
        print(f"{f}: {os.path.getsize(os.path.join(args.out, f))} bytes")
    print(f"done in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
