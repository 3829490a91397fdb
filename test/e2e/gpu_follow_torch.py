#!/usr/bin/env python3
"""An example trained 20 steps by veomni-run on a GPU follows PyTorch.

Two stages, because the GPU machine may have the runtime but not the
compiler:

  prepare --bin BUILD/bin --workdir DIR [--example E]
      writes the reference batches as DIR/tokens.bin and compiles DIR/model.vob
      (on any machine with the compiler).
  run --bin BIN --workdir DIR [--example E]
      on the GPU machine (needs torch with CUDA and transformers):
      1. veomni-run --device cuda --matmul_precision fp32, with CUDA graphs and
         without, must match the stored float32 PyTorch reference to
         --fp32-rtol in every step's loss (the kernels are right);
      2. veomni-run --device cuda with bf16 matmuls (the training default) and
         PyTorch under bf16 autocast on the same GPU are both compared with
         float32 PyTorch on that GPU; ours must stay within
         max(--bf16-floor, 2 x PyTorch bf16's own deviation) in every step
         (the bf16 tolerance is measured, not assumed);
      3. the same for the artifact compiled with --matmul-operands=bf16
         (mixed precision fixed by the compiler, model-bf16.vob).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples")
sys.path.insert(0, HERE)
from train_qwen3_tiny import write_token_file  # noqa: E402  (one token-file writer)


def run(cmd):
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    return result.stdout


def reference(example):
    from safetensors.numpy import load_file
    ref = load_file(os.path.join(example, "reference.safetensors"))
    config = json.load(open(os.path.join(example, "reference.json")))
    return ref, config


def prepare(args, example):
    ref, config = reference(example)
    opt = config["optimizer"]
    os.makedirs(args.workdir, exist_ok=True)
    write_token_file(os.path.join(args.workdir, "tokens.bin"), ref["steps.input_ids"],
                     ref["steps.labels"])
    mlir = os.path.join(args.workdir, "model.mlir")
    run([os.path.join(args.bin, "veomni-import"), os.path.join(example, "model.onnx"), "-o", mlir])
    flags = [f"--lr={opt['lr']}", f"--beta1={opt['betas'][0]}", f"--beta2={opt['betas'][1]}",
             f"--eps={opt['eps']}", f"--weight-decay={opt['weight_decay']}"]
    run([os.path.join(args.bin, "veomni-compile"), mlir, "-o",
         os.path.join(args.workdir, "model.vob")] + flags)
    run([os.path.join(args.bin, "veomni-compile"), mlir, "-o",
         os.path.join(args.workdir, "model-bf16.vob"), "--matmul-operands=bf16"] + flags)
    print(f"prepared {args.workdir}")


def veomni_losses(args, steps, precision, graphs=True, artifact="model"):
    metrics = os.path.join(args.workdir, f"metrics-{artifact}-{precision}-{graphs}.jsonl")
    start = time.time()
    out = run([os.path.join(args.bin, "veomni-run"), os.path.join(args.workdir, artifact + ".vob"),
               f"--data={os.path.join(args.workdir, 'tokens.bin')}", f"--steps={steps}",
               "--device=cuda", f"--matmul_precision={precision}", f"--metrics={metrics}",
               f"--cuda_graphs={'true' if graphs else 'false'}",
               f"--log={steps}"])
    print(out.strip().splitlines()[0])
    rows = [json.loads(line) for line in open(metrics)]
    seconds = [r["seconds"] for r in rows]
    print(f"veomni {artifact} {precision} (graphs {graphs}): {len(rows)} steps in "
          f"{time.time() - start:.1f} s, "
          f"median step {1e3 * float(np.median(seconds)):.2f} ms")
    return np.array([r["loss"] for r in rows])


def torch_losses(example, ref, autocast):
    import torch
    sys.path.insert(0, example)
    import export  # the example's own model builder
    export.setup_determinism()
    torch.use_deterministic_algorithms(False)
    model = export.build_model().cuda()
    config = json.load(open(os.path.join(example, "reference.json")))
    opt_cfg = config["optimizer"]
    opt = torch.optim.AdamW(model.parameters(), lr=opt_cfg["lr"], betas=tuple(opt_cfg["betas"]),
                            eps=opt_cfg["eps"], weight_decay=opt_cfg["weight_decay"])
    ids = torch.from_numpy(ref["steps.input_ids"].astype(np.int64)).cuda()
    labels = torch.from_numpy(ref["steps.labels"].astype(np.int64)).cuda()
    losses = []
    for s in range(ids.shape[0]):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids[s], labels=labels[s]).loss
        losses.append(loss.item())
        loss.backward()
        opt.step()
    return np.array(losses)


def run_stage(args, example):
    ref, _ = reference(example)
    steps = ref["steps.input_ids"].shape[0]
    failures = []

    stored = ref["steps.loss"].astype(np.float64)
    for graphs in (False, True):
        fp32 = veomni_losses(args, steps, "fp32", graphs)
        rel = np.abs(fp32 - stored) / np.abs(stored)
        print(f"fp32 matmul (graphs {graphs}) vs stored float32 PyTorch: worst rel "
              f"{rel.max():.1e} (limit {args.fp32_rtol:.0e})")
        if len(fp32) != steps or rel.max() > args.fp32_rtol:
            failures.append(f"fp32 (graphs {graphs}): worst loss rel {rel.max():.2e} > "
                            f"{args.fp32_rtol}")

    torch32 = torch_losses(example, ref, autocast=False)
    torch16 = torch_losses(example, ref, autocast=True)
    torch_dev = np.abs(torch16 - torch32) / np.abs(torch32)
    limits = np.maximum(args.bf16_floor, 2 * torch_dev)
    for artifact in ("model", "model-bf16"):
        ours = veomni_losses(args, steps, "bf16", artifact=artifact)
        ours_dev = np.abs(ours - torch32) / np.abs(torch32)
        print(f"{artifact}: step  veomni-bf16  torch-fp32  torch-bf16  |ours-fp32|  "
              f"|torch16-fp32|  limit")
        for s in range(steps):
            flag = "" if ours_dev[s] <= limits[s] else "  FAIL"
            print(f"{s + 1:4d}  {ours[s]:.6f}  {torch32[s]:.6f}  {torch16[s]:.6f}  "
                  f"{ours_dev[s]:.1e}  {torch_dev[s]:.1e}  {limits[s]:.1e}{flag}")
        if len(ours) != steps or np.any(ours_dev > limits):
            failures.append(f"{artifact} bf16: a step's loss is further from float32 PyTorch "
                            "than allowed")
        print(f"{artifact} bf16: worst deviation ours {ours_dev.max():.1e}, PyTorch autocast "
              f"{torch_dev.max():.1e}")
    if failures:
        print("\n".join(["FAILURES:"] + failures))
        sys.exit(1)
    print(f"{args.example} on the GPU: follows PyTorch (fp32 and bf16)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["prepare", "run"])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--example", default="qwen3-tiny")
    ap.add_argument("--fp32-rtol", type=float, default=1e-4)
    ap.add_argument("--bf16-floor", type=float, default=5e-3)
    args = ap.parse_args()
    example = os.path.join(EXAMPLES, args.example)
    (prepare if args.stage == "prepare" else run_stage)(args, example)


if __name__ == "__main__":
    main()
