#!/usr/bin/env python3
"""The benchmark of ../shared/DESIGN.md: our compiler and runtime against the
PyTorch baseline (../shared/bench/torch_baseline.py, eager and torch.compile)
on the same GPU, in the same command, with the same precision policy where
ours has it (see docs/runtime.md: fp32 master weights, optimizer state and
gradient reduction; bf16 tensor-core matmuls; fp32 activations for now).

Two stages, because the GPU machine has the runtime but not the compiler:

  prepare --bin BUILD/bin --out DIR CONFIG...
      exports each CONFIG (dense, moe;
      NAME:model:seq:batch[:layers[:recipe[:COMPILE-FLAG...]]], e.g.
      dense-roi:dense:4096:2:::--recompute=roi:--memory-budget=40e9) from its
      HF config with random init (export_model.py), imports it with
      --random-init, compiles it with the baseline's AdamW settings (and the
      extra flags), keeps --explain's report and writes a token file of random
      ids.
  run --bin BIN --dir DIR --baseline torch_baseline.py [--skip-compile]
      trains each config with veomni-run (warmup steps, then timed steps, as
      the baseline), then the baseline eager and compiled, and prints tok/s,
      TFLOP/s (the baseline's formula), MFU, peak memory and the ratios,
      --explain's predicted peak and step beside ours measured; then (with
      --profile) two profiled steps of ours by kernel (after one warm-up step). --ours-only skips the
      baseline (for comparing our own variants).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "e2e"))
from train_qwen3_tiny import run  # noqa: E402  (fails loudly with the command's output)

# The baseline's AdamW (torch.optim.AdamW(lr=1e-4) defaults).
ADAMW = ["--lr=1e-4", "--beta1=0.9", "--beta2=0.999", "--eps=1e-8", "--weight-decay=0.01"]
# Dense bf16 tensor-core peak, for MFU.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0}


def parse(config):
    parts = config.split(":")
    name, model, seq, batch = parts[0], parts[1], int(parts[2]), int(parts[3])
    layers = int(parts[4]) if len(parts) > 4 and parts[4] else 0
    recipe = parts[5] if len(parts) > 5 else ""
    return dict(name=name, model=model, seq=seq, batch=batch, layers=layers, recipe=recipe,
                flags=parts[6:])


def model_stats(c):
    """Parameters, active parameters and FLOPs per token as the baseline counts them."""
    L = c["layers"] or (28 if c["model"] == "dense" else 8)
    V, H, head = 151936, 2048, 128
    if c["model"] == "dense":
        q, kv, ffn = 16, 8, 6144
        layer = H * head * (q + 2 * kv) + q * head * H + 3 * H * ffn + 2 * H + 2 * head
        params = V * H + L * layer + H
        active = params
    else:
        q, kv, E, k, moe = 32, 4, 128, 8, 768
        attn = H * head * (q + 2 * kv) + q * head * H + 2 * H + 2 * head
        expert = 3 * H * moe
        params = 2 * V * H + L * (attn + H * E + E * expert) + H
        active = params - L * (E - k) * expert
    flops = 6 * active + 12 * L * q * head * c["seq"] / 2
    return dict(layers=L, params=params, active=active, flops_per_token=flops, heads=q)


def prepare(args):
    os.makedirs(args.out, exist_ok=True)
    python = sys.executable
    for config in args.configs:
        c = parse(config)
        base = os.path.join(args.out, c["name"])
        onnx = os.path.join(args.tmp, f"{c['model']}-{c['seq']}-{c['batch']}-{c['layers']}.onnx")
        if not os.path.exists(onnx):
            run([python, os.path.join(HERE, "export_model.py"), "--model", c["model"],
                 "--seq", str(c["seq"]), "--batch", str(c["batch"]),
                 "--layers", str(c["layers"]), "--out", onnx])
        mlir = onnx[:-5] + ".mlir"
        if not os.path.exists(mlir):
            run([os.path.join(args.bin, "veomni-import"), onnx, "--random-init=0.02", "-o", mlir])
        cmd = [os.path.join(args.bin, "veomni-compile"), mlir, "-o", base + ".vob",
               f"--device-model={args.device_model}"] + ADAMW
        if c["recipe"]:
            cmd.append(f"--recipe={c['recipe']}")
        explain = run(cmd + c["flags"] + ["--explain"])
        open(base + ".explain.txt", "w").write(explain)
        total = re.search(r"total on a GPU \(without the CUDA context\) (\d+) B", explain)
        step = re.search(r"predicted ([0-9.]+) ms on", explain)
        c["predicted_gib"] = int(total.group(1)) / 2**30 if total else None
        c["predicted_step_s"] = float(step.group(1)) / 1e3 if step else None
        print(f"{c['name']}: --explain predicts {c['predicted_gib']} GiB, "
              f"{c['predicted_step_s']} s per step")
        tokens = np.random.default_rng(0).integers(0, 151936, size=4 * c["batch"] * c["seq"] + 1)
        with open(base + ".tokens", "wb") as f:
            f.write(b"VOTOKENS")
            f.write(np.array([1, 4], "<u4").tobytes() + np.array([tokens.size], "<u8").tobytes()
                    + np.array([0, 0], "<u4").tobytes())
            f.write(tokens.astype("<u4").tobytes())
        json.dump({**c, **model_stats(c)}, open(base + ".json", "w"))
        print(f"prepared {c['name']}")


def gpu_name():
    out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip().splitlines()
    return out[0] if out else "unknown GPU"


def ours(args, c, world, profile=False):
    metrics = os.path.join(args.dir, c["name"] + ".jsonl")
    cmd = [os.path.join(args.bin, "veomni-run"), "-n", str(world),
           os.path.join(args.dir, c["name"] + ".vob"),
           f"--data={os.path.join(args.dir, c['name'] + '.tokens')}", "--device=cuda",
           f"--metrics={metrics}", "--log=1000", "--timeout=120"]
    if profile:
        # The first step is warm-up, which the profile leaves out.
        return run(cmd + ["--steps=3", "--profile"])
    out = run(cmd + [f"--steps={args.warmup + args.steps}"])
    rows = [json.loads(line) for line in open(metrics)]
    step_s = float(np.mean([r["seconds"] for r in rows[args.warmup:]]))
    peak = re.search(r"peak (\d+) bytes \([0-9.]+ GiB\) in all", out)
    tok = c["batch"] * c["seq"]
    return dict(step_s=step_s, tok_s_per_gpu=tok / step_s,
                tflops_per_gpu=c["flops_per_token"] * tok / step_s / 1e12,
                peak_gib=int(peak.group(1)) / 2**30 if peak else float("nan"),
                loss=rows[-1]["loss"])


def baseline(args, c, world, compiled):
    cmd = [sys.executable, args.baseline, "--model", c["model"], "--seq", str(c["seq"]),
           "--batch", str(c["batch"]), "--precision", "mixed", "--steps", str(args.steps),
           "--warmup", str(args.warmup)]
    if c["layers"]:
        cmd += ["--layers", str(c["layers"])]
    if compiled:
        cmd.append("--compile")
    if world > 1:
        cmd = ["torchrun", "--nproc-per-node", str(world)] + cmd[1:]
    result = subprocess.run(cmd, capture_output=True, text=True)
    lines = [l for l in result.stdout.splitlines() if l.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        return dict(error=" | ".join(tail)[:300])
    return json.loads(lines[-1])


def run_stage(args):
    gpu = gpu_name()
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in gpu), float("nan"))
    print(f"GPU: {gpu}; MFU against {peak:.0f} TFLOP/s bf16 dense")
    for name in args.configs:
        c = json.load(open(os.path.join(args.dir, name + ".json")))
        world = 1
        if c["recipe"]:
            world = int(np.prod([int(x.split("=")[1]) for x in c["recipe"].split(",")
                                 if x.split("=")[0] in ("dp", "fsdp", "sp")]))
        start = time.time()
        result = {"config": name, "gpus": world, "ours": ours(args, c, world)}
        if not args.ours_only:
            result["torch_eager"] = baseline(args, c, world, compiled=False)
        if not args.skip_compile and not args.ours_only:
            result["torch_compile"] = baseline(args, c, world, compiled=True)
        o = result["ours"]
        o["mfu"] = o["tflops_per_gpu"] / peak
        if c.get("predicted_gib"):
            o["predicted_gib"] = c["predicted_gib"]
            o["predicted_peak_error"] = round(c["predicted_gib"] / o["peak_gib"] - 1, 4)
        if c.get("predicted_step_s"):
            o["predicted_step_s"] = c["predicted_step_s"]
        for side in ("torch_eager", "torch_compile"):
            t = result.get(side, {})
            if "tok_s_per_gpu" in t:
                result[f"ratio_vs_{side}"] = round(o["tok_s_per_gpu"] / t["tok_s_per_gpu"], 3)
        print(json.dumps(result), flush=True)
        print(f"{name} on {world}x {gpu}: ours {o['tok_s_per_gpu']:.0f} tok/s/GPU, "
              f"{o['tflops_per_gpu']:.1f} TFLOP/s, MFU {100 * o['mfu']:.1f}%, peak "
              f"{o['peak_gib']:.1f} GiB; " + "; ".join(
                  f"{side} {result[side].get('tok_s_per_gpu', 'failed')} tok/s "
                  f"({result[side].get('peak_gib', '?')} GiB), ratio "
                  f"{result.get('ratio_vs_' + side, '-')}"
                  for side in ("torch_eager", "torch_compile") if side in result)
              + f"  [{time.time() - start:.0f} s]", flush=True)
        if "predicted_gib" in o:
            print(f"{name}: --explain predicted {o['predicted_gib']:.2f} GiB "
                  f"({100 * o['predicted_peak_error']:+.1f}% of measured "
                  f"{o['peak_gib']:.2f} GiB), {o.get('predicted_step_s')} s per step "
                  f"(measured {o['step_s']:.3f} s)", flush=True)
        if args.profile:
            print(ours(args, c, world, profile=True).split("time by kernel", 1)[-1], flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["prepare", "run"])
    ap.add_argument("configs", nargs="+")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", help="prepare: where the artifacts go")
    ap.add_argument("--tmp", default="/tmp/veomni-bench", help="prepare: exported models")
    ap.add_argument("--device-model", default="h100", choices=["h100", "h200"],
                    help="prepare: the GPU whose figures --explain's predicted step uses")
    ap.add_argument("--dir", help="run: the prepared directory")
    ap.add_argument("--baseline", default=os.path.join(HERE, "..", "..", "shared", "bench",
                                                       "torch_baseline.py"))
    ap.add_argument("--skip-compile", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--ours-only", action="store_true", help="run: no baseline")
    ap.add_argument("--warmup", type=int, default=3, help="run: untimed steps first (both sides)")
    ap.add_argument("--steps", type=int, default=8, help="run: timed steps (both sides)")
    args = ap.parse_args()
    if args.stage == "prepare":
        os.makedirs(args.tmp, exist_ok=True)
        prepare(args)
    else:
        run_stage(args)


if __name__ == "__main__":
    main()
