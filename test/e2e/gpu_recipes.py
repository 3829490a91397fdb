#!/usr/bin/env python3
"""Recipes on several GPUs (NCCL, one process per GPU) equal one GPU.

  prepare --bin BUILD/bin --workdir DIR --recipes fsdp=2 sp=2 [--example E]
      compiles one.vob (one rank, --grad-accum D) and, per recipe, a W-rank
      artifact (--grad-accum 1), and writes the token file. D = dp * fsdp of
      the recipe: one rank then sees the same global batch as the W ranks.
  run --bin BIN --workdir DIR
      trains each for --steps on the GPUs (fp32 matmuls, so only the order of
      sums differs) and compares every step's loss with the one-GPU run, and
      the final parameters each run saves (on several GPUs rank 0 gathers
      the shards: the multi-GPU --save path).
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples")
sys.path.insert(0, HERE)
from train_qwen3_tiny import run, write_token_file  # noqa: E402

COMPILE = ["--lr=1e-3", "--beta2=0.95", "--weight-decay=0.1"]


def degrees(recipe):
    d = {"dp": 1, "fsdp": 1, "sp": 1, "ep": 1}
    for item in recipe.split(","):
        key, value = item.split("=")
        d[key] = int(value)
    return d


def prepare(args):
    from safetensors.numpy import load_file
    example = os.path.join(EXAMPLES, args.example)
    ref = load_file(os.path.join(example, "reference.safetensors"))
    os.makedirs(args.workdir, exist_ok=True)
    write_token_file(os.path.join(args.workdir, "tokens.bin"), ref["steps.input_ids"],
                     ref["steps.labels"])
    mlir = os.path.join(args.workdir, "model.mlir")
    run([os.path.join(args.bin, "veomni-import"), os.path.join(example, "model.onnx"), "-o", mlir])
    plan = []
    for recipe in args.recipes:
        d = degrees(recipe)
        data_ranks = d["dp"] * d["fsdp"]
        world = d["dp"] * d["fsdp"] * d["sp"]
        one = f"one-accum{data_ranks}.vob"
        if not os.path.exists(os.path.join(args.workdir, one)):
            run([os.path.join(args.bin, "veomni-compile"), mlir, "-o",
                 os.path.join(args.workdir, one), f"--grad-accum={data_ranks}",
                 f"--max-grad-norm={args.max_grad_norm}"] + COMPILE + args.compile_flag)
        vob = recipe.replace(",", "_").replace("=", "") + ".vob"
        run([os.path.join(args.bin, "veomni-compile"), mlir, "-o", os.path.join(args.workdir, vob),
             f"--recipe={recipe}", f"--max-grad-norm={args.max_grad_norm}"]
            + COMPILE + args.compile_flag)
        bf16 = any(flag.replace(" ", "=") == "--matmul-operands=bf16"
                   for flag in args.compile_flag)
        plan.append({"recipe": recipe, "world": world, "one": one, "vob": vob, "bf16": bf16})
    json.dump(plan, open(os.path.join(args.workdir, "plan.json"), "w"), indent=1)
    print(f"prepared {len(plan)} recipes in {args.workdir}")


def losses(args, vob, ranks, name):
    """The run's losses and its saved final parameters (rank 0 gathers the
    shards and writes them: the multi-GPU --save path)."""
    metrics = os.path.join(args.workdir, f"{name}.jsonl")
    saved = os.path.join(args.workdir, f"{name}.safetensors")
    cmd = [os.path.join(args.bin, "veomni-run"), "-n", str(ranks), os.path.join(args.workdir, vob),
           f"--data={os.path.join(args.workdir, 'tokens.bin')}", f"--steps={args.steps}",
           "--device=cuda", "--matmul_precision=fp32", f"--metrics={metrics}", "--timeout=60",
           f"--log={args.steps}", f"--save={saved}"]
    run(cmd)
    from safetensors.numpy import load_file
    return [json.loads(line)["loss"] for line in open(metrics)], load_file(saved)


def compare(got_params, ref_params, rtol):
    """Per tensor: (name, worst error relative to its scale, share of elements
    past rtol), worst first; None when names or shapes differ."""
    same_names = sorted(got_params) == sorted(ref_params) and all(
        got_params[n].shape == ref_params[n].shape for n in ref_params if n in got_params)
    if not same_names:
        return None
    rows = []
    for n in ref_params:
        scale = max(float(np.max(np.abs(ref_params[n]))), 1e-30)
        error = np.abs(got_params[n] - ref_params[n]) / scale
        rows.append((n, float(np.max(error)), float(np.mean(error > rtol))))
    return sorted(rows, key=lambda row: (row[2], row[1]), reverse=True)


def describe(rows, count=3):
    return "; ".join(f"{n} worst {w:.1e}, {share:.2%} past" for n, w, share in rows[:count])


def run_stage(args):
    plan = json.load(open(os.path.join(args.workdir, "plan.json")))
    failures = []
    spread_of = {}  # one-GPU artifact -> its printed spread (run once)
    for item in plan:
        ref, ref_params = losses(args, item["one"], 1, item["one"] + "-1gpu")
        got, got_params = losses(args, item["vob"], item["world"],
                                 item["vob"] + f"-{item['world']}gpu")
        worst = max(abs(a - b) / abs(b) for a, b in zip(got, ref))
        # Saved parameters: the same names and shapes, each element within
        # rtol of its tensor's scale, but for a few: the attention and MoE
        # gradient kernels sum with fp32 atomics, so even two one-GPU runs
        # differ in the last bits, and AdamW's normalized step makes such a
        # difference in a gradient element near zero visible in its
        # parameter. So at most 0.1% of a tensor's elements may pass rtol,
        # and none 100 rtol; a wrong gradient moves most elements.
        #
        # With bf16 matmul operands a last-bit difference flips roundings, and
        # the flips grow over the steps: two runs of the same one-GPU bf16
        # artifact land with 12% of a projection's elements past 1e-4 (worst
        # 9.1e-4; --repeat-reference, 2 H200s). There a tensor may have up to
        # half its elements past rtol: a wrong gradient moves nearly all of
        # them (a norm weight's by about lr a step, 10 rtol). The worst
        # element may then pass 100 rtol: an element whose gradient's sign
        # flips moves up to 2 lr a step, 1e-2 in 5 steps, about 1e-1 of a
        # projection's scale, and two one-GPU runs of the unclipped bf16
        # artifact land 1.9e-3 apart with 32% of a tensor past rtol and
        # 1.7e-2 apart at worst, as far as fsdp=2 lands from either (2 H200s,
        # session 8); but not 2 lr per step of the largest scale (1e-1 here).
        rows = compare(got_params, ref_params, args.rtol)
        worst_param = max((w for _, w, _ in rows), default=0.0) if rows is not None else float("inf")
        worst_share = max((sh for _, _, sh in rows), default=0.0) if rows is not None else float("inf")
        share_limit = 0.5 if item.get("bf16") else 1e-3
        ok = (len(got) == len(ref) == args.steps and worst <= args.rtol and rows is not None
              and worst_share <= share_limit
              and worst_param <= (0.1 if item.get("bf16") else 100 * args.rtol))
        print(f"{item['recipe']:>12} on {item['world']} GPUs vs 1 GPU: losses "
              f"{' '.join(f'{x:.6f}' for x in got)}; worst rel {worst:.1e}; saved "
              f"{len(got_params)} parameters{'' if rows is not None else ' (names or shapes differ)'}, "
              f"worst {worst_param:.1e}, {worst_share:.2%} of a tensor past {args.rtol:g} "
              f"{'ok' if ok else 'FAIL'}")
        if rows and not ok:
            print(f"             most apart: {describe(rows)}")
        if args.repeat_reference and item["one"] not in spread_of:
            # How far two one-GPU runs of the same artifact land: the spread
            # the atomics alone make.
            again, again_params = losses(args, item["one"], 1, item["one"] + "-1gpu-again")
            floor = compare(again_params, ref_params, args.rtol)
            spread = max(abs(a - b) / abs(b) for a, b in zip(again, ref))
            overall = max((w for _, w, _ in floor), default=0.0) if floor else float("inf")
            same = again_params.keys() == got_params.keys() and all(
                np.array_equal(again_params[n], got_params[n]) for n in got_params)
            spread_of[item["one"]] = (f"losses worst rel {spread:.1e}; worst {overall:.1e}; "
                                      f"{describe(floor) if floor else 'names differ'}"
                                      f"{'; the second run equals the recipe bit for bit' if same else ''}")
            print(f"             1 GPU twice: {spread_of[item['one']]}")
        if not ok:
            failures.append(item["recipe"])
    if failures:
        sys.exit(f"FAILED: {failures}")
    print("every recipe equals one GPU")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["prepare", "run"])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--recipes", nargs="*", default=["fsdp=2", "sp=2"])
    ap.add_argument("--example", default="qwen3-tiny")
    ap.add_argument("--compile-flag", action="append", default=[],
                    help="prepare: an extra veomni-compile flag for every artifact (repeatable)")
    ap.add_argument("--max-grad-norm", type=float, default=1.0,
                    help="clipping (prepare): 0 leaves out the norm, which the recipe sums "
                         "per shard and one GPU per tensor")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--repeat-reference", action="store_true",
                    help="run: also train the one-GPU artifact twice and print how far "
                         "the two land (the spread the fp32 atomics make)")
    args = ap.parse_args()
    (prepare if args.stage == "prepare" else run_stage)(args)


if __name__ == "__main__":
    main()
