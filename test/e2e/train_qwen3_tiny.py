#!/usr/bin/env python3
"""An example trained 20 steps by veomni-run on the CPU follows PyTorch.

The reference (examples/<example>/reference.safetensors) is the HF model
trained with torch.optim.AdamW on the same initial weights and batches. This
writes those batches as a token file, imports, compiles and trains, then
compares the loss of every step and every final parameter.

With --float64-reference, parameters are judged against the example's model
trained in float64 (its export.py): AdamW's m / sqrt(v) amplifies rounding
where gradients are near rounding level (sparsely routed experts), so
float32 PyTorch itself drifts from the exact answer; a tensor passes within
max(rtol, 2 x float32 PyTorch's own drift). Losses are always compared with
the stored float32 reference.

With --frontend torchscript (or export), the model comes from the example's
own model builder traced with torch.jit.trace (or exported with
torch.export into a .pt2 archive): the HF model and its loss, as the ONNX
export wraps them, instead of model.onnx; and the ops of the two imports
after vo-raise must be the same.

usage: train_qwen3_tiny.py --bin BUILD/bin --workdir DIR [--example qwen3-tiny]
       [--rtol 1e-4] [--float64-reference] [--frontend onnx|torchscript|export]
"""
import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples")


def write_token_file(path, tokens, labels):
    """The token file format of runtime/data/TokenFile.h, version 1."""
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    with open(path, "wb") as f:
        f.write(b"VOTOKENS")
        f.write(struct.pack("<IIQII", 1, 2, tokens.size, 1, 0))
        f.write(tokens.astype("<u2").tobytes())
        f.write(labels.astype("<i4").tobytes())


def float64_parameters(example, config):
    """The example's HF model trained on the reference batches in float64,
    keyed by ONNX initializer name."""
    import torch
    sys.path.insert(0, example)
    import export  # the example's own model builder and training loop
    export.setup_determinism()
    ids, labels = export.step_batches()
    model = export.build_model().to(torch.float64)
    export.train(model, ids, labels)
    names = config["hf_to_onnx"]
    out = {}
    for name, p in model.named_parameters():
        onnx_name = names.get(name, {}).get("onnx") if isinstance(names.get(name), dict) else names.get(name)
        out[onnx_name or "model." + name] = p.detach().double().numpy()
    return out


def save_example(example, ids, labels, path, frontend):
    """The example's HF model (its export.py builder, the same initial weights
    as model.onnx) with its loss, at one batch's shape: traced to TorchScript
    (frontend "torchscript") or exported with torch.export ("export")."""
    import torch
    sys.path.insert(0, example)
    sys.path.insert(0, EXAMPLES)
    import export  # the example's own model builder
    from reference_training import LossWrapper
    model = LossWrapper(export.build_model())
    inputs = (torch.as_tensor(ids), torch.as_tensor(labels))
    if frontend == "torchscript":
        torch.jit.trace(model, inputs, check_trace=False).save(path)
    else:
        torch.export.save(torch.export.export(model, inputs), path)


def raised_ops(bin_dir, mlir):
    """vo op -> count after vo-raise."""
    text = run([os.path.join(bin_dir, "veomni-opt"), mlir, "--vo-raise"])
    counts = {}
    for line in text.splitlines():
        for word in line.split():
            if word.startswith("vo.") and word[3:4].isalpha() and "=" not in word:
                op = word.rstrip(":,")
                if op in ("vo.name", "vo.source", "vo.producer", "vo.opset"):
                    continue
                counts[op] = counts.get(op, 0) + 1
    return counts


def run(cmd):
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    return result.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--example", default="qwen3-tiny")
    ap.add_argument("--float64-reference", action="store_true")
    ap.add_argument("--frontend", choices=["onnx", "torchscript", "export"], default="onnx")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    example = os.path.join(EXAMPLES, args.example)
    ref = load_file(os.path.join(example, "reference.safetensors"))
    config = json.load(open(os.path.join(example, "reference.json")))
    opt = config["optimizer"]
    steps = ref["steps.input_ids"].shape[0]

    data = os.path.join(args.workdir, "tokens.bin")
    write_token_file(data, ref["steps.input_ids"], ref["steps.labels"])
    mlir = os.path.join(args.workdir, "model.mlir")
    vob = os.path.join(args.workdir, "model.vob")
    metrics = os.path.join(args.workdir, "metrics.jsonl")
    final = os.path.join(args.workdir, "final.safetensors")
    onnx_mlir = os.path.join(args.workdir, "onnx.mlir")
    run([os.path.join(args.bin, "veomni-import"), os.path.join(example, "model.onnx"), "-o",
         onnx_mlir])
    if args.frontend == "onnx":
        mlir = onnx_mlir
    else:
        ids, labels = ref["steps.input_ids"][0], ref["steps.labels"][0]
        source = os.path.join(args.workdir,
                              "model.pt" if args.frontend == "torchscript" else "model.pt2")
        save_example(example, ids, labels, source, args.frontend)
        shape = "x".join(str(d) for d in ids.shape)
        # TorchScript keeps no shapes; a torch.export archive does.
        shapes = ([f"--input=input_ids={shape}xi64", f"--input=labels={shape}xi64"]
                  if args.frontend == "torchscript" else [])
        run([os.path.join(args.bin, "veomni-import"), source, "-o", mlir] + shapes)
        from_onnx, from_torchscript = raised_ops(args.bin, onnx_mlir), raised_ops(args.bin, mlir)
        print(f"ops after vo-raise (ONNX / {args.frontend}): " + ", ".join(
            f"{op} {from_onnx.get(op, 0)}/{from_torchscript.get(op, 0)}"
            for op in sorted(set(from_onnx) | set(from_torchscript))))
        if from_onnx != from_torchscript:
            sys.exit(f"the {args.frontend} and ONNX imports differ after vo-raise")
    run([os.path.join(args.bin, "veomni-compile"), mlir, "-o", vob,
         f"--lr={opt['lr']}", f"--beta1={opt['betas'][0]}", f"--beta2={opt['betas'][1]}",
         f"--eps={opt['eps']}", f"--weight-decay={opt['weight_decay']}"])
    print(run([os.path.join(args.bin, "veomni-run"), vob, f"--data={data}", f"--steps={steps}",
               f"--metrics={metrics}", f"--save={final}"]), end="")

    failures = []
    losses = [json.loads(line)["loss"] for line in open(metrics)]
    expected = ref["steps.loss"]
    for step, (got, want) in enumerate(zip(losses, expected), 1):
        rel = abs(got - want) / abs(want)
        status = "ok" if rel <= args.rtol else "FAIL"
        print(f"step {step:2d}  veomni {got:.7f}  pytorch {want:.7f}  rel {rel:.1e}  {status}")
        if rel > args.rtol:
            failures.append(f"loss of step {step}: {got} vs {want} (rel {rel:.2e})")
    if len(losses) != steps:
        failures.append(f"{len(losses)} steps logged, expected {steps}")

    trained = load_file(final)
    if args.frontend != "onnx":
        # TorchScript and torch.export name parameters by module path ("model." + the HF
        # name; a tied weight by where it is first read); the reference by
        # the ONNX export's names and layouts.
        renamed = {}
        for name, value in trained.items():
            entry = config["hf_to_onnx"].get(name[len("model."):])
            if isinstance(entry, dict):
                renamed[entry.get("onnx") or name] = value.T if entry.get("transposed") else value
            else:
                renamed[entry or name] = value
        trained = renamed
    names = sorted(k[len("final."):] for k in ref if k.startswith("final."))
    if sorted(trained) != names:
        failures.append(f"saved parameters {sorted(trained)} differ from {names}")
    exact = float64_parameters(example, config) if args.float64_reference else None
    worst = 0.0
    for name in names:
        if name not in trained:
            continue
        got, want = trained[name], ref["final." + name]
        # Relative to the tensor's scale: elementwise ratios of near-zero
        # entries measure nothing.
        rel = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
        limit = args.rtol
        if exact is not None:
            scale = np.max(np.abs(exact[name]))
            rel = float(np.max(np.abs(got - exact[name])) / scale)
            torch_drift = float(np.max(np.abs(want - exact[name])) / scale)
            limit = max(args.rtol, 2 * torch_drift)
        worst = max(worst, rel)
        if rel > limit:
            failures.append(f"parameter {name}: max |diff| / max |ref| = {rel:.2e} "
                            f"(limit {limit:.2e})")
    against = "float64 PyTorch" if exact is not None else "PyTorch"
    print(f"final parameters: {len(names)} tensors, worst max|diff|/max|ref| "
          f"vs {against} = {worst:.1e}")
    if failures:
        print("\n".join(["FAILURES:"] + failures))
        sys.exit(1)
    print(f"{args.example} ({args.frontend}): all {steps} losses and all final parameters "
          f"match PyTorch")


if __name__ == "__main__":
    main()
