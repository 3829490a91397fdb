#!/usr/bin/env python3
"""A recipe on W CPU ranks equals one rank over the same global batch.

One rank trains with --grad-accum A * D (D = dp * fsdp data-parallel ranks);
the recipe trains on W ranks with --grad-accum A, each data-parallel rank
reading its own micro-batches. With the global token-mean loss both are the
same function of the same data: every step's loss must agree to --rtol.

Parameters: the two runs add the same gradients in different orders, and
AdamW's m / sqrt(v) amplifies the rounding of elements whose gradient is near
zero. So a third run measures that floor: one rank over the same
micro-batches in reversed order within each step (the same sums, reordered).
A tensor passes within max(--rtol, 2 x that run's own deviation).

usage: recipes_equivalence.py --bin BUILD/bin --workdir DIR --recipe dp=2,fsdp=2
       [--grad-accum A] [--steps 3] [--example qwen3-tiny | --heads 8]
"""
import argparse
import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples")
sys.path.insert(0, HERE)
from train_qwen3_tiny import run, write_token_file  # noqa: E402


def train(args, name, recipe, grad_accum, ranks, mlir, data):
    vob = os.path.join(args.workdir, f"{name}.vob")
    out = os.path.join(args.workdir, f"{name}.safetensors")
    metrics = os.path.join(args.workdir, f"{name}.jsonl")
    run([os.path.join(args.bin, "veomni-compile"), mlir, "-o", vob, f"--recipe={recipe}",
         f"--grad-accum={grad_accum}", "--lr=1e-3", "--beta2=0.95", "--weight-decay=0.1",
         f"--max-grad-norm={args.max_grad_norm}"] + args.compile_flag)
    run([os.path.join(args.bin, "veomni-run"), "-n", str(ranks), vob, f"--data={data}",
         f"--steps={args.steps}", f"--metrics={metrics}", f"--save={out}"])
    return [json.loads(line)["loss"] for line in open(metrics)], load_file(out)


def export_wide_qwen3(args, tokens, labels):
    """A tiny Qwen3 with --heads query and key/value heads (head dim 8), for
    sequence parallelism wider than the examples' 4 heads allow, exported
    with torch.export at one micro-batch's shape [2, 32]."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM
    sys.path.insert(0, EXAMPLES)
    from reference_training import LossWrapper
    config = Qwen3Config(num_hidden_layers=2, hidden_size=64, num_attention_heads=args.heads,
                         num_key_value_heads=args.heads, head_dim=8, intermediate_size=128,
                         vocab_size=256, max_position_embeddings=128, use_cache=False,
                         attn_implementation="eager", tie_word_embeddings=True)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).to(torch.float32).train()
    path = os.path.join(args.workdir, "model.pt2")
    program = torch.export.export(LossWrapper(model), (torch.as_tensor(tokens),
                                                       torch.as_tensor(labels)))
    torch.export.save(program, path)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--compile-flag", action="append", default=[],
                    help="an extra veomni-compile flag for both runs (repeatable)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rtol", type=float, default=1e-5)
    # Clipping scales by a norm whose sum the recipe associates differently
    # (per shard, then over the shards): a last-bit change of the factor.
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--example", default="qwen3-tiny")
    ap.add_argument("--heads", type=int, default=0,
                    help="instead of an example: a tiny Qwen3 with this many heads")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    degrees = {"dp": 1, "fsdp": 1, "sp": 1, "ep": 1}
    for item in args.recipe.split(","):
        key, value = item.split("=")
        degrees[key] = int(value)
    world = degrees["dp"] * degrees["fsdp"] * degrees["sp"]
    data_ranks = degrees["dp"] * degrees["fsdp"]

    # Random tokens; labels ignored on uneven tails so micro-batches differ
    # in their number of valid labels.
    rng = np.random.default_rng(7)
    rows = args.steps * args.grad_accum * data_ranks * 2
    tokens = rng.integers(0, 256, size=(rows, 32))
    labels = tokens.copy()
    for r in range(rows):
        labels[r, 32 - (r * 5) % 11:] = -100
    data = os.path.join(args.workdir, "tokens.bin")
    write_token_file(data, tokens, labels)
    # The same micro-batches (2 rows each), reversed within each step.
    per_step = args.grad_accum * data_ranks
    order = [(s * per_step + per_step - 1 - w) * 2 + r
             for s in range(args.steps) for w in range(per_step) for r in range(2)]
    reordered = os.path.join(args.workdir, "reordered.bin")
    write_token_file(reordered, tokens[order], labels[order])
    mlir = os.path.join(args.workdir, "model.mlir")
    source = os.path.join(EXAMPLES, args.example, "model.onnx")
    if args.heads:
        source = export_wide_qwen3(args, tokens[:2], labels[:2])
    run([os.path.join(args.bin, "veomni-import"), source, "-o", mlir])

    one_losses, one_params = train(args, "one", "dp=1", args.grad_accum * data_ranks, 1, mlir, data)
    _, floor_params = train(args, "reordered", "dp=1", args.grad_accum * data_ranks, 1, mlir,
                            reordered)
    losses, params = train(args, "recipe", args.recipe, args.grad_accum, world, mlir, data)

    failures = []
    for step, (got, want) in enumerate(zip(losses, one_losses), 1):
        rel = abs(got - want) / abs(want)
        print(f"step {step}: {args.recipe} on {world} ranks {got:.7f}, one rank {want:.7f} (rel {rel:.1e})")
        if rel > args.rtol:
            failures.append(f"loss of step {step}: rel {rel:.2e}")
    if len(losses) != args.steps:
        failures.append(f"{len(losses)} steps logged")
    if sorted(params) != sorted(one_params):
        failures.append("the saved parameter names differ")
    worst = worst_floor = 0.0
    for name, want in one_params.items():
        got = params.get(name)
        if got is None or got.shape != want.shape:
            failures.append(f"parameter {name}: missing or misshaped")
            continue
        scale = np.max(np.abs(want))
        rel = float(np.max(np.abs(got - want)) / scale)
        floor = float(np.max(np.abs(floor_params[name] - want)) / scale)
        worst, worst_floor = max(worst, rel), max(worst_floor, floor)
        if rel > max(args.rtol, 2 * floor):
            failures.append(f"parameter {name}: max|diff|/max|ref| = {rel:.2e} "
                            f"(reordering alone: {floor:.2e})")
    print(f"{len(one_params)} parameters, worst max|diff|/max|ref| = {worst:.1e} "
          f"(one rank reordered: {worst_floor:.1e})")
    if failures:
        sys.exit("FAILURES:\n" + "\n".join(failures))
    print(f"{args.recipe} equals one rank")


if __name__ == "__main__":
    main()
