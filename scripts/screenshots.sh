#!/usr/bin/env bash
# Screenshots of every view for the README: one scripted window per view, same preset and steps.
# Usage: scripts/screenshots.sh [STEPS] [PRESET] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-300}
preset=${2:-moh-moe}
out=${3:-assets/screenshots}
ws=$(mktemp -d)
mkdir -p "$out"
for view in heads experts routing attention curves speedup generate; do
  extra=()
  [ "$view" = generate ] && extra=(--prompt "User: What is the capital of France? Assistant:")
  xvfb-run -a -s '-screen 0 1600x1000x24' build/app/routelab --preset "$preset" --demo-steps "$steps" --view "$view" \
    --workspace "$ws" --screenshot "$out/$view.png" --quit "${extra[@]}" | grep -E "screenshot|window run|generated"
done
rm -rf "$ws"
