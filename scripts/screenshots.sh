#!/usr/bin/env bash
# Screenshots of every view for the README: one scripted window per view, same preset and steps.
# The curves view overlays seed-baseline and moe-top2-8 runs of the same length, trained first in
# the same (temporary) workspace.
# Usage: scripts/screenshots.sh [STEPS] [PRESET] [OUT_DIR] [VIEW ...]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-300}
preset=${2:-moh-moe}
out=${3:-assets/screenshots}
shift $(( $# < 3 ? $# : 3 ))
views=("$@")
[ ${#views[@]} -eq 0 ] && views=(heads experts routing attention curves speedup generate)
ws=$(mktemp -d)
trap 'rm -rf "$ws"' EXIT
mkdir -p "$out"
gui() { xvfb-run -a -s '-screen 0 1600x1000x24' build/app/routelab --workspace "$ws" "$@" | grep -E "screenshot|window run|generated" || true; }
for view in "${views[@]}"; do
  extra=()
  if [ "$view" = generate ]; then extra=(--prompt "User: What is the capital of France? Assistant:"); fi
  if [ "$view" = curves ]; then
    for other in seed-baseline moe-top2-8; do gui --preset "$other" --demo-steps "$steps" --quit; done
    extra=(--overlay-runs)
  fi
  gui --preset "$preset" --demo-steps "$steps" --view "$view" --screenshot "$out/$view.png" --quit "${extra[@]}"
  rm -f "$ws/runs.sqlite"  # the next view starts from an empty run list
done
