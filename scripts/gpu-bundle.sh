#!/usr/bin/env bash
# Packs what a GPU machine without this project's build dependencies needs to
# run the GPU checks (scripts/gpu-check.sh): the runtime and GPU test binaries
# built here, the Abseil libraries they link, and the examples compiled here
# (the GPU machine needs no compiler). CUDA, cuBLAS and NCCL come from the GPU
# machine.
#
#   bash scripts/gpu-bundle.sh [BUNDLE]   (default .gpu-bundle)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${VEOMNI_BUILD:-$root/build}"
bundle="${1:-$root/.gpu-bundle}"
python="${VEOMNI_PYTHON:-$HOME/.cache/veomni-compile/venv/bin/python}"
ninja -C "$build" -j "${VEOMNI_JOBS:-2}"
rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/work"
bins=(veomni-run CudaTests)
for b in "${bins[@]}"; do strip -o "$bundle/bin/$b" "$build/bin/$b"; done
# Every shared library that is neither the C/C++ runtime nor CUDA's.
for b in "${bins[@]}"; do ldd "$build/bin/$b"; done | awk '/=> \//{print $3}' | sort -u |
  grep -v -E '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+)\.so|/usr/local/cuda' |
  xargs -r -I{} cp -L {} "$bundle/lib/"
# Expert parallelism needs experts: fsdp=2,ep=2 for the MoE model only.
declare -A recipes=([qwen3-tiny]="fsdp=2 sp=2" [qwen3-moe-tiny]="fsdp=2 sp=2 fsdp=2,ep=2")
for example in qwen3-tiny qwen3-moe-tiny; do
  "$python" "$root/test/e2e/gpu_follow_torch.py" prepare --bin "$build/bin" \
    --workdir "$bundle/work/$example" --example "$example"
  # shellcheck disable=SC2086
  "$python" "$root/test/e2e/gpu_recipes.py" prepare --bin "$build/bin" \
    --workdir "$bundle/work/recipes-$example" --example "$example" \
    --recipes ${recipes[$example]}
done
# Mixed precision fixed by the compiler: FSDP gathers bf16 weights.
"$python" "$root/test/e2e/gpu_recipes.py" prepare --bin "$build/bin" \
  --workdir "$bundle/work/recipes-qwen3-tiny-bf16" --example qwen3-tiny --recipes fsdp=2 \
  --compile-flag=--matmul-operands=bf16
# ... without clipping, whose norm the recipe sums in another order: a
# last-bit change of the clip factor that bf16 roundings then amplify.
"$python" "$root/test/e2e/gpu_recipes.py" prepare --bin "$build/bin" \
  --workdir "$bundle/work/recipes-qwen3-tiny-bf16-noclip" --example qwen3-tiny --recipes fsdp=2 \
  --max-grad-norm=0 --compile-flag=--matmul-operands=bf16
rm -f "$bundle"/work/*/model.mlir
du -sh "$bundle"
