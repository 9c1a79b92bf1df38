#!/usr/bin/env bash
# Builds the core and app test executables with g++, AddressSanitizer and UBSan in build-asan/ and
# runs them, then the Session tests under ThreadSanitizer (scripts/tsan.sh). Exits non-zero on any
# sanitizer report or failing test (docs/hardening.md).
set -euo pipefail
cd "$(dirname "$0")/.."
# -O1 -g1 (line tables: enough for a report's stack): ASan's advice, and a third of -O2 -g's compile
# time on our test files under ASan + UBSan (17 s against 57 s for test_model.cpp), for tests that run
# a little slower. NDEBUG as in the release build, so both run the same code.
sanitize_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG")
cmake -S . -B build-asan "${sanitize_flags[@]}" -DROUTELAB_SANITIZE=ON \
  -DROUTELAB_SANITIZER=address,undefined -DROUTELAB_CUDA=OFF > build-asan.log 2>&1 || { cat build-asan.log; exit 1; }
# routelab_core_tests depends on routelab-cli (its CLI tests run it), which is built with ASan too.
cmake --build build-asan -j "$(nproc)" --target routelab_core_tests routelab_app_tests >> build-asan.log 2>&1 ||
  { tail -50 build-asan.log; exit 1; }

echo "sanitize: ASan + UBSan build done in ${SECONDS} s"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
build-asan/tests/routelab_core_tests --gtest_brief=1
QT_QPA_PLATFORM=offscreen build-asan/tests/routelab_app_tests --gtest_brief=1
echo "sanitize: ASan + UBSan tests passed (${SECONDS} s so far); ThreadSanitizer next"
bash scripts/tsan.sh
echo "sanitize: done in ${SECONDS} s"
