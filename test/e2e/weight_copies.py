#!/usr/bin/env python3
"""--bf16-weight-copies changes where bf16 weights come from, not what they are.

The example is compiled with --matmul-operands=bf16 twice: rounding every
weight for each reader (none), and reading bf16 copies the optimizer step
writes (the --copies given). Both train the same batches on the CPU backend;
every step's loss, gradient norm and every saved parameter must be bit-equal,
and the copies must exist: the program reads param_bf16 states and rounds no
expert weight (experts) or no weight at all (all).

usage: weight_copies.py --bin BUILD/bin --workdir DIR --example qwen3-moe-tiny
       --copies experts [--recipe ep=2] [--steps 4] [--grad-accum 2]
"""
import argparse
import json
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples")
sys.path.insert(0, HERE)
from train_qwen3_tiny import run, write_token_file  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--example", default="qwen3-moe-tiny")
    ap.add_argument("--copies", choices=["experts", "all"], required=True)
    ap.add_argument("--recipe", default="dp=1")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--grad-accum", type=int, default=2)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    world = 1
    for item in args.recipe.split(","):
        key, value = item.split("=")
        if key in ("dp", "fsdp", "sp"):
            world *= int(value)

    rng = np.random.default_rng(11)
    rows = args.steps * args.grad_accum * world * 2
    tokens = rng.integers(0, 256, size=(rows, 32))
    data = os.path.join(args.workdir, "tokens.bin")
    write_token_file(data, tokens, tokens)
    mlir = os.path.join(args.workdir, "model.mlir")
    run([os.path.join(args.bin, "veomni-import"),
         os.path.join(EXAMPLES, args.example, "model.onnx"), "-o", mlir])

    results = {}
    for copies in ("none", args.copies):
        vob = os.path.join(args.workdir, f"{copies}.vob")
        program = os.path.join(args.workdir, f"{copies}.mlir")
        run([os.path.join(args.bin, "veomni-compile"), mlir, "-o", vob,
             f"--recipe={args.recipe}", f"--grad-accum={args.grad_accum}",
             "--matmul-operands=bf16", f"--bf16-weight-copies={copies}",
             "--lr=1e-3", "--max-grad-norm=1.0", f"--emit-mlir={program}"])
        metrics = os.path.join(args.workdir, f"{copies}.jsonl")
        saved = os.path.join(args.workdir, f"{copies}.safetensors")
        run([os.path.join(args.bin, "veomni-run"), "-n", str(world), vob, "--data", data,
             f"--steps={args.steps}", f"--metrics={metrics}", f"--save={saved}"])
        rows = [json.loads(line) for line in open(metrics)]
        text = open(program).read()
        results[copies] = dict(
            losses=[(r["loss"], r["grad_norm"]) for r in rows],
            params=open(saved, "rb").read(),
            copies=len(set(re.findall(r'vrt\.state "param_bf16:([^"]+)"', text))),
            weight_casts=len(re.findall(r'vrt\.launch "cast"\(%\d+\) .*\(tensor<[0-9x]+xf32>\) '
                                        r'-> tensor<[0-9x]+xbf16>', text)),
            expert_launches=len(re.findall(r'"moe_experts(_grad)?"', text)))

    base, kept = results["none"], results[args.copies]
    failures = []
    for step, (want, got) in enumerate(zip(base["losses"], kept["losses"]), 1):
        print(f"step {step}: loss {got[0]:.8f} vs {want[0]:.8f}, "
              f"grad_norm {got[1]:.8f} vs {want[1]:.8f}")
        if got != want:
            failures.append(f"step {step} differs")
    if len(kept["losses"]) != args.steps or len(base["losses"]) != args.steps:
        failures.append("missing steps")
    if kept["params"] != base["params"]:
        failures.append("the saved parameters differ")
    print(f"bf16 copies: {kept['copies']} parameters; f32 -> bf16 casts in the program: "
          f"{base['weight_casts']} without, {kept['weight_casts']} with")
    if kept["copies"] == 0 or base["copies"] != 0:
        failures.append("no param_bf16 state (or one without copies)")
    if args.copies == "experts" and kept["copies"] != base["expert_launches"]:
        # Two expert weights per layer, and one moe_experts + one grad each.
        failures.append(f"{kept['copies']} copies for {base['expert_launches']} MoE launches")
    if kept["weight_casts"] >= base["weight_casts"]:
        failures.append("the copies removed no rounding")
    if failures:
        sys.exit("FAILURES:\n" + "\n".join(failures))
    print(f"{args.example} --bf16-weight-copies={args.copies} ({args.recipe}): "
          "bit-equal to rounding per reader")


if __name__ == "__main__":
    main()
