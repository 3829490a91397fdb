#!/usr/bin/env bash
# Times the CUDA moe_experts(_grad) kernels on this machine's GPU at one
# shape (default: the benchmark's Qwen3-30B-A3B layer at seq 4096), and, for
# scale, PyTorch's grouped GEMM (torch._grouped_mm) over the same rows.
#
#   bench/moe-kernels.sh [--source FILE.cu]... [TOKENS HIDDEN EXPERTS TOP_K INTERMEDIATE]
#
# --source times another version of runtime/kernels/cuda/MoeLaunch.cu (an
# experiment, or `git show REV:...`) beside the checked-out one; repeatable.
# The checked-out one is also timed product by product (VEOMNI_MOE_INTERNALS).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
sources=("$root/runtime/kernels/cuda/MoeLaunch.cu")
while [[ $# -gt 0 && "$1" == --source ]]; do
  [[ $# -ge 2 ]] || { echo "moe-kernels.sh: --source needs a file" >&2; exit 2; }
  sources+=("$2")
  shift 2
done
shape=(4096 2048 128 8 768)
if [[ $# -gt 0 ]]; then
  [[ $# -eq 5 ]] || { echo "moe-kernels.sh: give all five of TOKENS HIDDEN EXPERTS TOP_K INTERMEDIATE" >&2; exit 2; }
  shape=("$@")
fi
nvcc="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for i in "${!sources[@]}"; do
  src="${sources[$i]}"
  [[ -f "$src" ]] || { echo "moe-kernels.sh: no file $src" >&2; exit 2; }
  if [[ $i -eq 0 ]]; then  # the bench includes the checked-out source itself
    "$nvcc" -std=c++17 -O3 -arch=sm_90 -I"$root" -DVEOMNI_MOE_INTERNALS \
      "$root/bench/moe_kernels_bench.cu" -o "$work/bench$i"
  else
    "$nvcc" -std=c++17 -O3 -arch=sm_90 -I"$root" "$src" "$root/bench/moe_kernels_bench.cu" \
      -o "$work/bench$i"
  fi
  echo "== $src"
  "$work/bench$i" "${shape[@]}" bf16
done
echo "== torch._grouped_mm (bf16 operands, the same routed rows)"
python3 - "${shape[@]}" <<'PY'
import sys
import torch

T, H, E, k, I = map(int, sys.argv[1:])
rows = T * k
if not hasattr(torch, "_grouped_mm"):
    print("torch._grouped_mm: not in this PyTorch")
    sys.exit(0)
dev = "cuda"
counts = torch.full((E,), rows // E, dtype=torch.int32)
counts[: rows % E] += 1
offs = torch.cumsum(counts, 0).to(torch.int32).to(dev)
x = torch.randn(rows, H, device=dev, dtype=torch.bfloat16, requires_grad=True)
w1 = (torch.randn(E, H, 2 * I, device=dev, dtype=torch.bfloat16) * 0.03).requires_grad_()
w2 = (torch.randn(E, I, H, device=dev, dtype=torch.bfloat16) * 0.03).requires_grad_()
dy = torch.randn(rows, H, device=dev, dtype=torch.bfloat16)

def forward():
    gu = torch._grouped_mm(x, w1, offs=offs)
    g, u = gu.split(I, dim=1)
    return torch._grouped_mm(torch.nn.functional.silu(g) * u, w2, offs=offs)

def time_ms(fn, runs=20):
    for _ in range(3):
        fn()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(runs):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / runs

unit = 2.0 * rows * H * I
with torch.no_grad():
    f = time_ms(forward)
fb = time_ms(lambda: forward().backward(dy))
print(f"forward: {f:.3f} ms, {3 * unit / f / 1e9:.1f} TFLOP/s")
print(f"forward+backward: {fb:.3f} ms, {9 * unit / fb / 1e9:.1f} TFLOP/s "
      f"(ours runs 3 + 8 units with the recompute)")
PY
