#!/usr/bin/env python3
"""Exports the benchmark models of ../shared/DESIGN.md (the shapes of
../shared/bench/torch_baseline.py: Qwen3-1.7B dense, Qwen3-30B-A3B MoE cut to
8 layers) from HF transformers configs with random init, as the examples are
exported (every parameter its own initializer), for veomni-import
--random-init: the graph and the parameters' shapes matter, not their values,
which go to an external data file. The parameters are broadcast zeros while
tracing, so even the 8-layer MoE exports on a 24 GB machine; the 2-layer MoE
imports to byte-identical MLIR either way.

usage: export_model.py --model dense|moe --seq S --batch B [--layers L] --out model.onnx
"""
import argparse
import os
import sys
import time
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
from reference_training import LossWrapper, optimize_preserving_params  # noqa: E402


def build(model, layers):
    """The baseline's configs (torch_baseline.py), with eager attention, which
    the importer raises to vo.attention, and no KV cache in the traced forward."""
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM
    common = dict(vocab_size=151936, hidden_size=2048, intermediate_size=6144, head_dim=128,
                  max_position_embeddings=131072, attn_implementation="eager", use_cache=False)
    if model == "dense":
        cfg = Qwen3Config(num_hidden_layers=layers or 28, num_attention_heads=16,
                          num_key_value_heads=8, tie_word_embeddings=True, **common)
        return Qwen3ForCausalLM(cfg)
    cfg = Qwen3MoeConfig(moe_intermediate_size=768, num_hidden_layers=layers or 8,
                         num_attention_heads=32, num_key_value_heads=4, num_experts=128,
                         num_experts_per_tok=8, decoder_sparse_step=1, norm_topk_prob=True,
                         **common)
    # The one experts implementation torch.onnx.export handles (see
    # examples/qwen3-moe-tiny/export.py); the importer raises it to moe_experts.
    cfg._experts_implementation = "batched_mm"
    return Qwen3MoeForCausalLM(cfg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["dense", "moe"], required=True)
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--layers", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    start = time.time()
    torch.manual_seed(0)
    model = build(args.model, args.layers).train()
    # veomni-import --random-init reads the parameters' shapes, never their
    # values: each parameter becomes one broadcast zero, so the 8-layer MoE
    # (about 13 GB of fp32 weights) traces in little memory. The saved file
    # still holds full-size zeros. Buffers (RoPE's inv_freq) keep their values.
    with torch.no_grad():
        for param in model.parameters():
            param.data = torch.zeros((), dtype=param.dtype).expand(param.shape)
    # Two distinct tensors: one passed twice would be traced as one input.
    ids = torch.randint(0, 151936, (args.batch, args.seq), dtype=torch.int64)
    labels = ids.clone()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(LossWrapper(model), (ids, labels), dynamo=True, optimize=False,
                                 input_names=["input_ids", "labels"], output_names=["loss"],
                                 verbose=False)
        # Fold the causal mask ([B, 1, S, S]) to a constant, as the examples' is.
        optimize_preserving_params(prog, fold_limit=2 * args.batch * args.seq * args.seq)
        prog.save(args.out, external_data=True)
    print(f"exported {args.model} ({sum(p.numel() for p in model.parameters()) / 1e9:.2f}B "
          f"parameters) to {args.out} in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
