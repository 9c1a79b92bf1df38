#!/usr/bin/env bash
# A refactor's behaviour check: trains every preset 15 steps with the CLI (same seed, the embedded
# corpus) and prints, per preset, the sha256 of the trained weights and the 15 rows of losses
# (loss, val, ce, moh_balance, moe_aux, zloss, lr, grad_norm). Run it before and after a change and
# diff the two outputs: a structural change must leave every line the same, bit for bit.
# Usage: scripts/golden_check.sh [CLI] > before.txt   (CLI: default build/app/routelab-cli)
set -euo pipefail
cd "$(dirname "$0")/.."
cli=${1:-build/app/routelab-cli}
ws=$(mktemp -d)
trap 'rm -rf "$ws"' EXIT
for p in $("$cli" presets | grep -v '^ '); do
  "$cli" train --preset "$p" --steps 15 --workspace "$ws" --out "$ws/$p" > /dev/null 2>&1
  # The data section only: the header holds the config, whose JSON gains keys as settings are added.
  ck="$ws/$p/checkpoint.safetensors"
  n=$(od -An -tu8 -N8 "$ck" | tr -d ' ')
  weights=$(tail -c +$((9 + n)) "$ck" | sha256sum | cut -c1-16)
  echo "$p $weights $(cut -d, -f2-9 "$ws/$p/metrics.csv" | tail -n +2 | tr '\n' ' ')"
done
