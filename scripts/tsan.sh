#!/usr/bin/env bash
# Builds the tests with ThreadSanitizer and runs the trainer <-> GUI channel tests under it, then
# the Session tests (training thread, live commands, requests served after the last step) when the
# window is built.
# OpenMP runs one thread here: libgomp is not instrumented, so its own pool would be reported.
set -euo pipefail
cd "$(dirname "$0")/.."
# -O2 -g1, as scripts/sanitize.sh says why.
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" \
  -DROUTELAB_SANITIZE=ON -DROUTELAB_SANITIZER=thread -DROUTELAB_CUDA=OFF > build-tsan.log
# The channel tests have a target of their own here: the other core tests need not be compiled for them.
cmake --build build-tsan -j "$(nproc)" --target routelab_channel_tests >> build-tsan.log 2>&1 ||
  { tail -50 build-tsan.log; exit 1; }  # the compiler's warnings go to the log, not the CI output
OMP_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
  build-tsan/tests/routelab_channel_tests --gtest_filter='Channel.*'
# The session tests with the two app files they need (routelab_session_tests), not the whole window;
# a target only where the window is built, and then a failed build fails here.
targets=$(cmake --build build-tsan --target help)
if grep -q routelab_session_tests <<< "$targets"; then
  cmake --build build-tsan -j "$(nproc)" --target routelab_session_tests >> build-tsan.log 2>&1 ||
    { tail -50 build-tsan.log; exit 1; }
  OMP_NUM_THREADS=1 QT_QPA_PLATFORM=offscreen TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    build-tsan/tests/routelab_session_tests --gtest_filter='Session.*:ConfigDock.LiveLr*'
else
  echo "tsan: no window in this build: the Session tests are not run"
fi
