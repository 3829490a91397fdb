#!/usr/bin/env python3
"""Recomputation on qwen3-tiny (CPU): at the same memory budget (halfway
between what none and full plan), roi recomputes fewer FLOPs than full; none, full and
roi train to the same losses and parameters, bit for bit; and a table of
budget, extra FLOPs, planned and measured peak memory and step time.

usage: recompute_check.py --bin BUILD/bin --workdir DIR
"""
import argparse
import json
import os
import re
import sys

from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from train_qwen3_tiny import run, write_token_file  # noqa: E402

EXAMPLE = os.path.join(HERE, "..", "..", "examples", "qwen3-tiny")
STEPS = 5


def compile_(args, mlir, mode, budget=None):
    vob = os.path.join(args.workdir, f"{mode}.vob")
    cmd = [os.path.join(args.bin, "veomni-compile"), mlir, "-o", vob, "--explain",
           f"--recompute={mode}", "--grad-accum=2"] + args.compile_flag
    if budget:
        cmd.append(f"--memory-budget={budget}")
    out = run(cmd)
    total = int(re.search(r"^  total\s+(\d+) B", out, re.M).group(1))
    arena = int(re.search(r"^  arena @micro_step\s+(\d+) B", out, re.M).group(1))
    extra = float(re.search(r"extra ([0-9.e+-]+) FLOP per optimizer step", out).group(1))
    return vob, total, extra, arena


def train(args, vob, mode, data):
    metrics = os.path.join(args.workdir, f"{mode}.jsonl")
    saved = os.path.join(args.workdir, f"{mode}.safetensors")
    out = run([os.path.join(args.bin, "veomni-run"), vob, f"--data={data}", f"--steps={STEPS}",
               f"--metrics={metrics}", f"--save={saved}"])
    peak = int(re.search(r"peak (\d+) bytes", out).group(1))
    rows = [json.loads(line) for line in open(metrics)]
    return [r["loss"] for r in rows], load_file(saved), peak, sum(r["seconds"] for r in rows) / STEPS


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--compile-flag", action="append", default=[],
                    help="an extra veomni-compile flag for every plan (repeatable)")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    ref = load_file(os.path.join(EXAMPLE, "reference.safetensors"))
    data = os.path.join(args.workdir, "tokens.bin")
    write_token_file(data, ref["steps.input_ids"], ref["steps.labels"])
    mlir = os.path.join(args.workdir, "model.mlir")
    run([os.path.join(args.bin, "veomni-import"), os.path.join(EXAMPLE, "model.onnx"), "-o", mlir])

    plans = {"none": compile_(args, mlir, "none"), "full": compile_(args, mlir, "full")}
    # Between the two plans: whole-layer checkpointing meets it, with room.
    budget = (plans["none"][1] + plans["full"][1]) // 2
    plans["roi"] = compile_(args, mlir, "roi", budget)
    failures = []
    print(f"budget {budget} B (between the plans of none and full)")
    # On the CPU the runtime allocates the arena; the state is host memory.
    print("mode  extra FLOP/step  planned peak B  planned arena B  allocated arena B  step ms")
    results = {}
    for mode, (vob, total, extra, arena) in plans.items():
        losses, params, peak, seconds = train(args, vob, mode, data)
        results[mode] = (losses, params)
        print(f"{mode:4s}  {extra:15.4e}  {total:14d}  {arena:15d}  {peak:17d}  "
              f"{1e3 * seconds:7.2f}")
        if mode != "none" and total > budget:
            failures.append(f"{mode} plans {total} B over the budget {budget} B")
        if peak != arena:
            failures.append(f"{mode}: the runtime allocated {peak} B, the plan said {arena} B")
    if not plans["roi"][2] < plans["full"][2]:
        failures.append(f"roi recomputes {plans['roi'][2]:.4e} FLOP, not fewer than full's "
                        f"{plans['full'][2]:.4e}")
    if not plans["full"][1] < plans["none"][1]:
        failures.append("full does not lower the planned peak")
    base_losses, base_params = results["none"]
    for mode in ("full", "roi"):
        losses, params = results[mode]
        if losses != base_losses:
            failures.append(f"{mode}: losses differ from none: {losses} vs {base_losses}")
        if sorted(params) != sorted(base_params) or any(
                (params[k] != base_params[k]).any() for k in params):
            failures.append(f"{mode}: final parameters differ from none")
    if failures:
        sys.exit("FAILED:\n" + "\n".join(failures))
    print("roi recomputes fewer FLOPs than full at the same budget; "
          "none, full and roi train identically")


if __name__ == "__main__":
    main()
