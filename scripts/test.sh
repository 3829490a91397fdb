#!/usr/bin/env bash
# Runs every test: lit (each pass, the dialect, the frontends, the tools) and
# GoogleTest, through ctest. Sets up and builds first (incremental).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${VEOMNI_BUILD:-$root/build}"
bash "$root/scripts/setup.sh"
cd "$build"
ctest --output-on-failure -j "${VEOMNI_JOBS:-2}" "$@"
