#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for veomni-compile and builds it.
# Idempotent: a second run checks what is there and rebuilds incrementally.
#
#   VEOMNI_VENV   Python environment (default ~/.cache/veomni-compile/venv,
#                 shared by clones so CI does not download torch again)
#   VEOMNI_BUILD  build directory (default ./build)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VEOMNI_VENV:-$HOME/.cache/veomni-compile/venv}"
build="${VEOMNI_BUILD:-$root/build}"

log() { echo "[setup] $*" >&2; }

# --- Debian packages --------------------------------------------------------
packages=(
  cmake ninja-build g++ python3 python3-venv
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools
  libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev
  libabsl-dev libflatbuffers-dev flatbuffers-compiler
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  log "installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- Python environment -----------------------------------------------------
python="$(command -v python3)"
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  "$python" -m venv "$venv"
fi
stamp="$venv/.veomni-requirements"
if ! cat "$root/requirements.txt" "$root/requirements-headers.txt" | cmp -s - "$stamp"; then
  log "installing requirements.txt and requirements-headers.txt into $venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$root/requirements.txt"
  "$venv/bin/pip" install -q --no-deps -r "$root/requirements-headers.txt"
  cat "$root/requirements.txt" "$root/requirements-headers.txt" >"$stamp"
fi

# --- Build ------------------------------------------------------------------
if [ ! -f "$build/build.ninja" ]; then
  log "configuring $build"
  cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DVEOMNI_PYTHON="$venv/bin/python"
fi
log "building"
# Two parallel jobs: each MLIR translation unit needs about 1 GiB.
ninja -C "$build" -j "${VEOMNI_JOBS:-2}"
