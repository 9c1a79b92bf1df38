#!/usr/bin/env bash
# Training speed under contention (docs/benchmarks.md §6): seed-baseline training tok/s, the
# median of steps 30..N of metrics.csv, on an idle machine with 1 and 2 threads, then beside two
# busy processes (the load: two `while :; do :; done` shells, a 2-thread CPU hog).
# Usage: scripts/bench_contention.sh [routelab-cli] ; env PRESET (seed-baseline), STEPS (250).
set -euo pipefail
BIN=${1:-build/app/routelab-cli}
P=${PRESET:-seed-baseline}
N=${STEPS:-250}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"; kill ${H1:-} ${H2:-} 2>/dev/null || true' EXIT
median() {  # of the tok_per_s column, steps 31 and on (the first ones warm up)
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "tok_per_s") c = i; next } NR > 31 { print int($c) }' \
    "$1/metrics.csv" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
run() {  # name threads -> median tok/s
  OMP_NUM_THREADS=$2 "$BIN" train --preset "$P" --steps "$N" --out "$OUT/$1" > /dev/null 2>&1
  median "$OUT/$1"
}
echo "idle: 1 thread $(run i1 1) tok/s, 2 threads $(run i2 2) tok/s"
sh -c 'while :; do :; done' & H1=$!
sh -c 'while :; do :; done' & H2=$!
sleep 1
echo "beside 2 busy threads: 1 thread $(run l1 1) tok/s, 2 threads (thread governor) $(run l2 2) tok/s"
