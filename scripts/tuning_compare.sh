#!/usr/bin/env bash
# Must-show 1 of docs/tuning.md: grid, random, successive halving and TPE on one fixed problem
# (moh-moe on the embedded corpus, 200 steps a run, 3 seeds a point; scripts/tuning/*.json), each
# search but the grid repeated with three search seeds. Each search's outcome goes to
# OUT/<name>.json (routelab-cli sweep --json); a search whose file exists is not run again, so the
# script picks up where a stopped one left off. Then one table: the best mean validation loss each
# found, its training steps against the grid's, and its gap to the grid's best.
#   scripts/tuning_compare.sh [OUT (default runs/tuning-compare)] [REPEATS (default 3)]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cli=${ROUTELAB_CLI:-$here/../build/app/routelab-cli}
out=${1:-runs/tuning-compare}
repeats=${2:-3}
mkdir -p "$out"
search() {  # FILE SEED NAME
    local file=$1 seed=$2 name=$3
    [ -f "$out/$name.json" ] && return 0
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); j["seed"]=int(sys.argv[2]); j["name"]=sys.argv[3]; print(json.dumps(j))' \
        "$file" "$seed" "$name" > "$out/$name.sweep.json"
    echo "== $name" >&2
    "$cli" sweep --grid "$out/$name.sweep.json" --workspace "$out/ws" --out "$out/runs/$name" --json "$out/$name.json.part" \
        > "$out/$name.log" 2>&1
    mv "$out/$name.json.part" "$out/$name.json"
}
search "$here/tuning/grid.json" 1 grid  # the grid's points and seeds are fixed: one run of it is every repeat
for r in $(seq 1 "$repeats"); do
    for m in random halving tpe; do search "$here/tuning/$m.json" "$r" "$m-$r"; done
done
# Must-show 3: two objectives (validation loss, tok/s) under dropped <= 1%, by successive halving.
# Its tok/s are only comparable on a quiet machine: run it alone.
[ "${PARETO:-1}" = 1 ] && search "$here/tuning/pareto.json" 1 pareto
python3 - "$out" "$repeats" <<'PY'
import json, sys, statistics
out, repeats = sys.argv[1], int(sys.argv[2])
def best(j):
    fin = [p for p in j["points"] if p["state"] == "finished"]
    b = min(fin, key=lambda p: p["objectives"]["val_loss"]["mean"])
    return b["objectives"]["val_loss"]["mean"], b["label"]
g = json.load(open(f"{out}/grid.json"))
gbest, glabel = best(g)
print(f"grid: best mean val loss {gbest:.4f} ({glabel}), {g['training_steps']} steps")
print(f"{'search':10} {'repeat':>6} {'steps':>7} {'of grid':>8} {'best val':>9} {'gap':>7}  point")
for m in ["random", "halving", "tpe"]:
    gaps = []
    for r in range(1, repeats + 1):
        j = json.load(open(f"{out}/{m}-{r}.json"))
        v, label = best(j)
        gap = 100 * (v - gbest) / gbest
        gaps.append(gap)
        print(f"{m:10} {r:>6} {j['training_steps']:>7} {j['training_steps'] / g['training_steps']:>8.2f} {v:>9.4f} {gap:>+6.2f}%  {label}")
    print(f"{m:10} {'median':>6} {'':>7} {'':>8} {'':>9} {statistics.median(gaps):>+6.2f}%")
PY
