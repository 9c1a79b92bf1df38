#!/usr/bin/env bash
# Installs every Debian 12 package RouteLab needs to build, test and benchmark.
# Idempotent: packages already present are skipped; apt runs only when something is missing.
# --with-torch adds PyTorch on OpenBLAS for the PyTorch peer of the bench (app/peer/torch_peer.py,
# docs/benchmarks.md); without it the package list is unchanged.
set -euo pipefail

with_torch=0
for arg in "$@"; do
  case "$arg" in
    --with-torch) with_torch=1 ;;
    *) echo "setup: unknown option '$arg' (the one option is --with-torch)" >&2; exit 2 ;;
  esac
done

PKGS=(
  build-essential cmake pkg-config git
  libeigen3-dev nlohmann-json3-dev
  libsentencepiece-dev
  libsqlite3-dev
  libxsmm-dev libdnnl-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  qt6-base-dev libqt6opengl6-dev libimgui-dev libgl-dev fonts-dejavu-core
  xvfb xauth libgl1-mesa-dri imagemagick
  clang libclang-rt-14-dev libomp-dev  # scripts/fuzz.sh: clang, libFuzzer + ASan/UBSan runtimes, OpenMP for clang
)
if [ "$with_torch" -eq 1 ]; then
  PKGS+=(python3-torch libopenblas0-openmp)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
