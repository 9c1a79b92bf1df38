#!/usr/bin/env bash
# Screenshots of every lesson for the README: each lesson run as a user would in the window
# (routelab --lesson NAME: its runs, its conclusion, its last run replayed with the view and the
# spotlight), one fresh workspace and fresh settings per lesson; prints the conclusion and the wall
# time of each. The aux-free lesson's picture is the README's expert-bias screenshot.
# Usage: scripts/lesson_screenshots.sh [OUT_DIR] [LESSON ...]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-assets/screenshots}
shift $(( $# < 1 ? $# : 1 ))
lessons=("$@")
[ ${#lessons[@]} -eq 0 ] && lessons=(heads collapse capacity expert-size moh-speed aux-free specialization imbalance-cost)
mkdir -p "$out"
for l in "${lessons[@]}"; do
  ws=$(mktemp -d) cfg=$(mktemp -d)
  file="$out/lesson-$l.png"
  [ "$l" = aux-free ] && file="$out/expert-bias.png"
  start=$(date +%s%N)
  XDG_CONFIG_HOME="$cfg" xvfb-run -a -s '-screen 0 1600x1000x24' build/app/routelab --workspace "$ws" --lesson "$l" \
    --screenshot "$file" --quit | grep -E "^lesson |^spotlight |^screenshot " || true
  tenths=$(( ($(date +%s%N) - start) / 100000000 ))
  echo "$l: $((tenths / 10)).$((tenths % 10)) s"
  rm -rf "$ws" "$cfg"
done
