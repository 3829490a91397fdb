#!/usr/bin/env bash
# The main job, on the CPU: sets up, then imports the qwen3-tiny example and
# prints its vo IR (parameter values elided; the full module is written to
# build/examples/qwen3-tiny.mlir).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${VEOMNI_BUILD:-$root/build}"
bash "$root/scripts/setup.sh"
mkdir -p "$build/examples"
"$build/bin/veomni-import" "$root/examples/qwen3-tiny/model.onnx" \
  -o "$build/examples/qwen3-tiny.mlir"
"$build/bin/veomni-opt" "$build/examples/qwen3-tiny.mlir" \
  --mlir-elide-resource-strings-if-larger=64
echo "[run] full module: $build/examples/qwen3-tiny.mlir" >&2
