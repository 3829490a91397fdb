#!/usr/bin/env bash
# Runs bench/bench.py's `run` stage on a GPU machine over the configs that
# `prepare` wrote into BUNDLE/bench (with ../shared/bench/torch_baseline.py
# copied there), using the bundle of scripts/gpu-bundle.sh.
#
#   bash bench/gpu-bench.sh BUNDLE CONFIG... [bench.py run flags]
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle="$1"
shift
source "$root/scripts/gpu-env.sh" "$bundle"
exec python3 "$root/bench/bench.py" run --bin "$bundle/bin" --dir "$bundle/bench" \
  --baseline "$bundle/bench/torch_baseline.py" "$@"
