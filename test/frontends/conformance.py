#!/usr/bin/env python3
"""Frontend conformance: an HF decoder family at tiny size, random init from
its transformers config, through one frontend (ONNX, TorchScript or
torch.export): import,
compile and one training step on one CPU rank, against PyTorch autograd.

The step is AdamW with beta1 = beta2 = 0 and eps = lr = 1e6, so the update
is lr * g / (|g| + eps) = g / (1 + |g| / 1e6): each parameter moves by its
gradient (to 1e-6 relative for |g| < 1), and the moves compare the gradients
themselves. The loss must match to 1e-4 relative, each parameter's move to
1e-4 of the tensor's largest move.

usage: conformance.py --bin BUILD/bin --workdir DIR --family llama
       --frontend onnx|torchscript|export
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
from reference_training import LossWrapper, export_static  # noqa: E402
from train_qwen3_tiny import run, write_token_file  # noqa: E402

COMMON = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
              intermediate_size=128, vocab_size=256, max_position_embeddings=128,
              use_cache=False, attn_implementation="eager")
# What each family adds to the common tiny shape: untied or tied embeddings,
# qkv biases (Qwen2's config has no switch: its attention always has them),
# a sliding window shorter than the sequence (Mistral), q/k norms (Qwen3).
FAMILIES = {
    "llama": dict(model_type="llama", tie_word_embeddings=False),
    "qwen2": dict(model_type="qwen2", tie_word_embeddings=True),
    "mistral": dict(model_type="mistral", tie_word_embeddings=False, sliding_window=16),
    "qwen3": dict(model_type="qwen3", tie_word_embeddings=True, head_dim=16),
    # MoE: softmax, top-k, renormalized (Qwen3-MoE checkpoints, Mixtral) or
    # not (Qwen3MoeConfig's default). The experts run HF's batched_mm
    # implementation: its default (grouped_mm) has no ONNX translation and
    # its eager loop indexes by data (examples/qwen3-moe-tiny/export.py).
    "qwen3_moe": dict(model_type="qwen3_moe", tie_word_embeddings=True, head_dim=16,
                      num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                      norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[]),
    "qwen3_moe_unnormalized": dict(model_type="qwen3_moe", tie_word_embeddings=False,
                                   head_dim=16, num_experts=8, num_experts_per_tok=2,
                                   moe_intermediate_size=32, norm_topk_prob=False,
                                   decoder_sparse_step=1, mlp_only_layers=[]),
    "mixtral": dict(model_type="mixtral", tie_word_embeddings=False, num_local_experts=4,
                    num_experts_per_tok=2),
    # Qwen3-MoE with its router written top-k of the logits, then a softmax
    # over the k (GPT-OSS style; topk_then_softmax below).
    "qwen3_moe_topk_softmax": dict(model_type="qwen3_moe", tie_word_embeddings=True,
                                   head_dim=16, num_experts=8, num_experts_per_tok=2,
                                   moe_intermediate_size=32, norm_topk_prob=True,
                                   decoder_sparse_step=1, mlp_only_layers=[]),
}


def topk_then_softmax(router, hidden_states):
    """A router's forward as top-k of the logits, then a softmax over the k."""
    hidden_states = hidden_states.reshape(-1, router.hidden_dim)
    logits = torch.nn.functional.linear(hidden_states, router.weight)
    top_logits, indices = torch.topk(logits, router.top_k, dim=-1)
    return logits, torch.softmax(top_logits, dim=-1), indices
BATCH, SEQ = 2, 32
STEP = dict(lr=1e6, betas=(0.0, 0.0), eps=1e6, weight_decay=0.0)


def build(family):
    from transformers import AutoConfig, AutoModelForCausalLM
    settings = dict(COMMON)
    settings.update(FAMILIES[family])
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    if hasattr(config, "_experts_implementation"):
        config._experts_implementation = "batched_mm"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).to(torch.float32).train()
    if family == "qwen3_moe_topk_softmax":
        import types
        for module in model.modules():
            if type(module).__name__ == "Qwen3MoeTopKRouter":
                module.forward = types.MethodType(topk_then_softmax, module)
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--family", choices=sorted(FAMILIES), required=True)
    ap.add_argument("--frontend", choices=["onnx", "torchscript", "export"], required=True)
    ap.add_argument("--rtol", type=float, default=1e-4)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    torch.use_deterministic_algorithms(True)

    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, 256, (BATCH, SEQ), generator=g)
    labels = ids.clone()
    labels[1, -7:] = -100
    data = os.path.join(args.workdir, "tokens.bin")
    write_token_file(data, ids.numpy(), labels.numpy())

    model = build(args.family)
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    wrapper = LossWrapper(model)
    if args.frontend == "export":
        source = os.path.join(args.workdir, "model.pt2")
        torch.export.save(torch.export.export(wrapper, (ids, labels)), source)
        extra = []
    elif args.frontend == "torchscript":
        source = os.path.join(args.workdir, "model.pt")
        torch.jit.trace(wrapper, (ids, labels), check_trace=False).save(source)
        shape = f"{BATCH}x{SEQ}"
        extra = [f"--input=input_ids={shape}xi64", f"--input=labels={shape}xi64"]
    else:
        source = os.path.join(args.workdir, "model.onnx")
        export_static(model, ids, labels, source, keep_stack_traces=False, preserve_params=True)
        extra = []
    # PyTorch: the loss, then the same AdamW step from the same weights.
    optimizer = torch.optim.AdamW(model.parameters(), **STEP)
    loss = wrapper(ids, labels)
    loss.backward()
    optimizer.step()
    moved = {name: (p.detach() - initial[name]).numpy() for name, p in model.named_parameters()}

    mlir = os.path.join(args.workdir, "model.mlir")
    vob = os.path.join(args.workdir, "model.vob")
    metrics = os.path.join(args.workdir, "metrics.jsonl")
    final = os.path.join(args.workdir, "final.safetensors")
    run([os.path.join(args.bin, "veomni-import"), source, "-o", mlir] + extra)
    run([os.path.join(args.bin, "veomni-compile"), mlir, "-o", vob, f"--lr={STEP['lr']}",
         f"--beta1={STEP['betas'][0]}", f"--beta2={STEP['betas'][1]}", f"--eps={STEP['eps']}",
         f"--weight-decay={STEP['weight_decay']}"])
    run([os.path.join(args.bin, "veomni-run"), vob, f"--data={data}", "--steps=1",
         f"--metrics={metrics}", f"--save={final}"])

    failures = []
    got_loss = json.loads(open(metrics).readline())["loss"]
    rel = abs(got_loss - loss.item()) / abs(loss.item())
    print(f"{args.family} ({args.frontend}): loss veomni {got_loss:.7f} pytorch "
          f"{loss.item():.7f} rel {rel:.1e}")
    if rel > args.rtol:
        failures.append(f"loss {got_loss} vs {loss.item()}")
    # Saved names are the frontend's: "model." + the HF name (a tied weight
    # under one of its names); map each to the HF parameter it holds.
    trained = load_file(final)
    by_value = {}  # HF name -> saved value
    for name, value in trained.items():
        hf = name[len("model."):] if name.startswith("model.") else name
        if hf == "lm_head.weight" and "lm_head.weight" not in initial:
            # PyTorch lists a tied weight once, as the embedding; the ONNX
            # export names it after the head.
            hf = "model.embed_tokens.weight"
        if hf in by_value:
            failures.append(f"two saved parameters hold {hf} (a tied weight imported twice?)")
        by_value[hf] = value
    if len(trained) != len(moved):
        failures.append(f"{len(trained)} parameters saved; PyTorch trains {len(moved)}")
    worst = 0.0
    for name, want in moved.items():
        if name not in by_value:
            failures.append(f"parameter {name} was not saved")
            continue
        got = by_value[name] - initial[name].numpy()
        scale = float(np.max(np.abs(want)))
        err = float(np.max(np.abs(got - want))) / scale if scale > 0 else 0.0
        worst = max(worst, err)
        if err > args.rtol:
            failures.append(f"gradient of {name}: max|diff| / max|ref| = {err:.2e}")
    print(f"{args.family} ({args.frontend}): {len(by_value)} parameters, worst gradient "
          f"max|diff|/max|ref| = {worst:.1e}")
    if failures:
        sys.exit("FAILURES:\n" + "\n".join(failures))
    print(f"{args.family} ({args.frontend}): loss and gradients match PyTorch")


if __name__ == "__main__":
    main()
