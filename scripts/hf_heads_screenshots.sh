#!/usr/bin/env bash
# The heads view on real learned head routing (docs/hf-models.md, "JetMoE" and "MoH-LLaMA3"): the tiny
# random JetMoE and MoH-LLaMA3 checkpoints of scripts/hf_tiny_models.py (real on-disk layout, random
# weights), each opened in the window with the byte-level test tokenizer, on the default probe text.
# Usage: scripts/hf_heads_screenshots.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-assets/screenshots}
ws=$(mktemp -d)
trap 'rm -rf "$ws"' EXIT
mkdir -p "$out"
"${PYTHON:-/usr/bin/python3}" scripts/hf_tiny_models.py "$ws/models" --only jetmoe moh_llama3 > /dev/null
for m in jetmoe moh_llama3; do
    cp tests/data/tokenizers/ascii_byte_level.json "$ws/models/$m/tokenizer.json"
    xvfb-run -a -s '-screen 0 1600x1000x24' build/app/routelab --workspace "$ws" --model "$ws/models/$m" --view heads \
        --screenshot "$out/heads-${m//_/-}.png" --quit | grep -E "probe:|screenshot" || true
done
