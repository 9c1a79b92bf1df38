#!/usr/bin/env bash
# Fuzzes the core's readers of untrusted bytes (docs/hardening.md): builds the six libFuzzer targets
# of tests/fuzz with clang, ASan and UBSan in build-fuzz/, runs each for SECONDS (default 20) from the
# seeds in tests/fuzz/corpus/<target>/, prints one line per target with its executions, and exits 1
# on any finding (crash, leak, UB, timeout or out-of-memory), naming the input that caused it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
case "$seconds" in '' | *[!0-9]*) echo "fuzz: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;; esac
targets=(fuzz_config fuzz_safetensors fuzz_corpus fuzz_run_store fuzz_hf_model fuzz_sweep)
if ! command -v clang++ > /dev/null; then
  echo "fuzz: clang++ not found (bash scripts/setup.sh installs clang and libFuzzer)" >&2
  exit 2
fi

# The window and the tests are not needed: only the core and the fuzz targets are built.
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DROUTELAB_FUZZ=ON \
  -DROUTELAB_GUI=OFF -DBUILD_TESTING=OFF -DROUTELAB_CUDA=OFF > build-fuzz.log 2>&1 || { cat build-fuzz.log; exit 1; }
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]}" >> build-fuzz.log 2>&1 || { tail -50 build-fuzz.log; exit 1; }

echo "fuzz: build done in ${SECONDS} s"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
mkdir -p build-fuzz/artifacts
failed=0
for t in "${targets[@]}"; do
  # New inputs go to build-fuzz/corpus/<target> (first folder); the committed seeds are only read.
  mkdir -p "build-fuzz/corpus/$t"
  log="build-fuzz/$t.log"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  rc=0
  "build-fuzz/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
    -artifact_prefix="build-fuzz/artifacts/$t-" "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" > "$log" 2>&1 || rc=$?
  runs=$(sed -nE 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\1 executions in \2 s/p' "$log" | tail -1)
  if [ "$rc" -eq 0 ] && [ -n "$runs" ]; then
    echo "fuzz: $t: $runs, no findings"
  else
    failed=1
    echo "fuzz: $t: FINDING (exit $rc); log $log, input: $(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -1)"
    grep -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|contract broken|deadly signal' "$log" | head -5 || true
  fi
done
exit "$failed"
