#!/usr/bin/env bash
# The main job, on the CPU backend: sets up, then imports the qwen3-tiny
# example, compiles its training step and trains it on the project's own
# documentation (byte-level tokens), printing the memory plan and the loss.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${VEOMNI_BUILD:-$root/build}"
bin="$build/bin"
out="$build/examples/qwen3-tiny"
bash "$root/scripts/setup.sh"
mkdir -p "$out"

echo "[run] veomni-import examples/qwen3-tiny/model.onnx" >&2
"$bin/veomni-import" "$root/examples/qwen3-tiny/model.onnx" -o "$out/model.mlir"

echo "[run] veomni-compile (AdamW, warmup + cosine, 2 micro-batches per step)" >&2
"$bin/veomni-compile" "$out/model.mlir" -o "$out/model.vob" --explain \
  --lr 3e-3 --beta2 0.95 --weight-decay 0.1 --max-grad-norm 1.0 \
  --lr-schedule cosine --warmup-steps 20 --train-steps 300 --min-lr 3e-4 \
  --grad-accum 2

cat "$root/README.md" "$root"/docs/*.md > "$out/corpus.txt"
"$bin/veomni-tokenize" "$out/corpus.txt" -o "$out/corpus.bin"

echo "[run] veomni-run: 300 steps on the CPU" >&2
"$bin/veomni-run" "$out/model.vob" --data "$out/corpus.bin" --steps 300 --log 25 \
  --save "$out/trained.safetensors"
