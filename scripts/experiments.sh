#!/usr/bin/env bash
# Routing experiments of the routing issue, on the embedded corpus with equal steps for every preset.
# Usage: scripts/experiments.sh [STEPS] [OUT_DIR]   (default 600 steps, runs/experiments)
set -euo pipefail
STEPS=${1:-600}
OUT=${2:-runs/experiments}
CLI=${CLI:-build/app/routelab-cli}
mkdir -p "$OUT"
run() {  # name preset [--set ...]
  local name=$1; shift
  echo "== $name" >&2
  "$CLI" train --steps "$STEPS" --out "$OUT/$name" "$@" > "$OUT/$name.log" 2>&1
  grep -E "^(routing|specialization|done)" "$OUT/$name.log" >&2 || true
}
run seed-baseline --preset seed-baseline
run seed-moh --preset seed-moh
run moe-top2-8 --preset moe-top2-8
run mh-moe-h2 --preset mh-moe-h2
run mh-moe-h3 --preset mh-moe-h3
run seed-moh-beta0 --preset seed-moh --set model.attention.heads.beta=0
run moe-top2-8-noaux --preset moe-top2-8 --set model.moe.aux_weight=0 --set model.moe.z_loss_weight=0
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
print(f"{'run':22s} {'val loss':>9s} {'train loss':>10s} {'tok/s':>8s}  routing")
for name in sorted(os.listdir(out)):
    p = os.path.join(out, name, 'summary.json')
    if not os.path.exists(p): continue
    s = json.load(open(p))
    r = s.get('routing', [])
    cv = ' '.join(f"h{l.get('head_load_cv', float('nan')):.2f}/e{l.get('expert_load_cv', float('nan')):.2f}" for l in r)
    print(f"{name:22s} {s['final_val_loss']:9.4f} {s['final_train_loss']:10.4f} {s['tokens_per_s']:8.0f}  {cv}")
PY
