#!/usr/bin/env bash
# The experiments view's screenshots (docs/hf-models.md, "The experiments view"): a 64-expert top-8
# model (moe-top2-8 with 64 experts of width 32) trained 800 steps on the embedded corpus by the CLI,
# then opened in the window three times: the compare and top-k sweep, the calibration curve, and the
# experts view with the domain analysis.
# Usage: scripts/experiments_screenshots.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-assets/screenshots}
ws=$(mktemp -d)
trap 'rm -rf "$ws"' EXIT
mkdir -p "$out"
python3 - "$ws/moe64.json" <<'PY'
import json, sys
c = json.load(open("assets/presets/moe-top2-8.json"))
c["name"] = "moe-top8-64"
c["description"] = "moe-top2-8 with 64 fine-grained experts of width 32, top-8"
c["model"]["moe"].update({"n_experts": 64, "top_k": 8, "d_ff_expert": 32})
c["train"]["steps"] = 800
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
build/app/routelab-cli train --config "$ws/moe64.json" --out "$ws/run" --workspace "$ws" | grep "done:"
gui() { xvfb-run -a -s '-screen 0 1600x1000x24' build/app/routelab --workspace "$ws" --checkpoint "$ws/run/checkpoint.safetensors" "$@" --quit |
          grep -E "screenshot|experiment|top-k|pass|layer" || true; }
gui --view experiments --experiment compare,sweep --top-k 2 --screenshot "$out/experiments-sweep.png"
gui --view experiments --experiment calibrate --screenshot "$out/experiments-calibration.png"
gui --view experts --experiment analyse --screenshot "$out/experiments-domains-64.png"
