#!/usr/bin/env python3
"""Export a tiny HF Qwen3 causal-LM training loss to ONNX and build a PyTorch reference.

Outputs (in --out DIR, default: this script's directory):
  model.onnx              static-shape ONNX graph  loss = f(input_ids[2,32], labels[2,32])
                          (torch.onnx.export(dynamo=True), optimized like the exporter's
                          default but with every parameter kept as its own initializer,
                          initializers inline, no external data)
  reference.safetensors   fp32 PyTorch reference (see KEYS below)
  reference.json          config, optimizer hyper-parameters, versions, HF->ONNX name mapping

--dynamic-out PATH also writes a dynamic batch/seq variant (informational only).

IMPORTANT (found while writing this script): the exporter's default optimization
(onnxscript optimize_ir) changes how parameters appear in the graph:
  * Transpose(W) feeding every nn.Linear is constant-folded, so every q/k/v/o/gate/up/down
    projection weight is stored *pre-transposed* ([in, out]) under a generated name (val_N).
  * DeduplicateInitializersPass merges bit-identical initializers (<= 1024 elements). At HF
    init every RMSNorm weight is all-ones, so the 4 q_norm/k_norm weights collapse into ONE
    initializer and the 5 input/post_attention/final norm weights collapse into ONE
    initializer.
  * tied embedding / lm_head is a single initializer named "model.lm_head.weight".
So the graph has 17 parameter-holding initializers for the 24 HF parameters (1 embedding,
14 transposed projections, 2 merged norm groups). A training compiler that trains every
parameter-holding initializer computes the gradient of the graph *as exported*: merged norm
weights become one shared parameter. Preserving parameters instead runs the same onnxscript
optimizer with the 24 parameters temporarily marked as graph inputs, which keeps them as
separate, untransposed, HF-named initializers (same graph otherwise, plus 14 Transpose nodes).
That is the default here, since a training compiler must train the model's own parameters;
`--exporter-default-optimize` reproduces the lossy file (veomni-import rejects it).

KEYS in reference.safetensors
  input_ids, labels                 [2,32] int64 fixed batch
  loss                              [1] f32   model(input_ids, labels=labels).loss
  steps.input_ids, steps.labels     [20,2,32] int64
  -- semantics of model.onnx as exported (keys = ONNX initializer names) --
  init.<onnx>, grad.<onnx>, final.<onnx>   layout = ONNX initializer layout (transposed
                                    where the initializer is W^T); shared initializers are
                                    trained as one tied parameter (grad = sum of members)
  steps.loss                        [20] f32  loss before each AdamW step (ONNX semantics)
  -- semantics of the original HF model (keys = HF parameter names, HF layout) --
  hf.init.<hf>, hf.grad.<hf>, hf.final.<hf>, hf.steps.loss
  (loss / grads at step 0 are the same function; grads of shared initializers equal the sum
   of the member HF grads; training trajectories differ once the merged norms diverge.)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from reference_training import (  # noqa: E402  (shared with the other examples)
    BATCH, BATCH_SEED, IGNORE_TAIL, NUM_STEPS, OPT, SEQ, STEPS_SEED, LossWrapper, build_mapping,
    export_static, fixed_batch, loss_and_grads, onnx_float_initializers, setup_determinism,
    step_batches, tie_like_onnx, to_onnx_layout, train)

HERE = os.path.dirname(os.path.abspath(__file__))

ATTN_IMPLEMENTATION = "eager"  # "sdpa" not needed: eager exports fine
CONFIG = dict(
    num_hidden_layers=2,
    hidden_size=64,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    intermediate_size=128,
    vocab_size=256,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
    rope_theta=10000.0,
    tie_word_embeddings=True,
    use_cache=False,  # no DynamicCache in the traced training forward
    attn_implementation=ATTN_IMPLEMENTATION,
)
MODEL_SEED = 0


def build_model():
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = Qwen3Config(**CONFIG)
    torch.manual_seed(MODEL_SEED)
    model = Qwen3ForCausalLM(cfg).to(torch.float32)
    model.train()  # training semantics; all dropouts are 0.0 anyway
    assert model.config._attn_implementation == ATTN_IMPLEMENTATION
    assert model.lm_head.weight is model.model.embed_tokens.weight
    return model


def export_dynamic(model, ids, labels, path):
    import onnx

    from torch.export import Dim

    batch, seq = Dim("batch"), Dim("seq")
    info = {"path": path}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LossWrapper(model),
                (ids, labels),
                path,
                dynamo=True,
                input_names=["input_ids", "labels"],
                output_names=["loss"],
                dynamic_shapes={"input_ids": {0: batch, 1: seq}, "labels": {0: batch, 1: seq}},
                external_data=False,
                verbose=False,
            )
        m = onnx.load(path)
        onnx.checker.check_model(m, full_check=True)
        info.update(ok=True, size_bytes=os.path.getsize(path),
                    inputs=[(i.name, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim])
                            for i in m.graph.input])
    except Exception as e:  # informational only
        info.update(ok=False, error=f"{type(e).__name__}: {e}"[:4000])
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--dynamic-out", default=None,
                    help="also export a dynamic batch/seq variant here (informational)")
    ap.add_argument("--keep-stack-traces", action="store_true")
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
    print("HF parameter -> ONNX initializer")
    for hf, e in mapping.items():
        print(f"  {hf:55s} {str(e['hf_shape']):10s} -> {e['onnx']:45s} {str(e['onnx_shape']):10s}"
              f"{' T' if e['transposed'] else ''}{' shared' if e['shared_with'] else ''}")
    dyn_info = (export_dynamic(model, ids, labels, args.dynamic_out)
                if args.dynamic_out else {"ok": False, "error": "not requested"})
    print("dynamic export:", "ok" if dyn_info["ok"] else dyn_info["error"][:300])

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

    ref_path = os.path.join(args.out, "reference.safetensors")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, ref_path)

    meta = {
        "model": "Qwen3ForCausalLM",
        "config": {**CONFIG, "dtype": "float32",
                   "hidden_act": "silu", "attention_dropout": 0.0, "attention_bias": False},
        "mode": "model.train() (all dropout probabilities are 0.0)",
        "model_seed": MODEL_SEED,
        "batch": BATCH, "seq": SEQ, "batch_seed": BATCH_SEED, "steps_seed": STEPS_SEED,
        "ignore_index": -100, "ignored_positions": f"labels[1, -{IGNORE_TAIL}:]",
        "loss": "mean cross-entropy over shifted labels (HF ForCausalLMLoss, ignore_index=-100)",
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
        "dynamic_export": dyn_info,
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
