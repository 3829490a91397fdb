#!/usr/bin/env bash
# The GPU checks, on a machine with NVIDIA GPUs, CUDA 13, NCCL and PyTorch:
# every CUDA kernel against its CPU twin, the examples following PyTorch on
# one GPU, and (with two GPUs) fsdp=2 and sp=2 equal to one GPU, for the
# MoE model fsdp=2,ep=2 too, and fsdp=2 compiled with --matmul-operands=bf16.
#
#   bash scripts/gpu-check.sh [BUNDLE] [REPORTS]
# BUNDLE is made by scripts/gpu-bundle.sh; REPORTS gets the GoogleTest XML.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle="${1:-$root/.gpu-bundle}"
reports="${2:-$bundle/reports}"
mkdir -p "$reports"
python="${PYTHON:-python3}"
source "$root/scripts/gpu-env.sh" "$bundle"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
status=0
"$bundle/bin/CudaTests" --gtest_brief=1 --gtest_output="xml:$reports/CudaTests.xml" 2>&1 |
  tail -n 60
[ "${PIPESTATUS[0]}" = 0 ] || status=1
gpus=$(nvidia-smi -L | wc -l)
for example in qwen3-tiny qwen3-moe-tiny; do
  "$python" "$root/test/e2e/gpu_follow_torch.py" run --bin "$bundle/bin" \
    --workdir "$bundle/work/$example" --example "$example" || status=1
done
if [ "$gpus" -ge 2 ]; then
  for workdir in "$bundle"/work/recipes-*; do
    echo "== $(basename "$workdir")"
    "$python" "$root/test/e2e/gpu_recipes.py" run --bin "$bundle/bin" --workdir "$workdir" \
      --repeat-reference ||
      status=1
  done
fi
exit $status
