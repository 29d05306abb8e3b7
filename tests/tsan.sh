#!/usr/bin/env bash
# The tests of what fstm runs on several threads, under ThreadSanitizer: the embedding API
# (Detector: concurrent calls on one model), the data loader's workers, the shared face detector.
#   tests/tsan.sh [--build DIR]      (default build-tsan; FSTM_TSAN_FILTER overrides the tests)
# The kernels' OpenMP regions run on one thread here (OMP_NUM_THREADS=1): Debian's libgomp is not
# built for ThreadSanitizer, and its own thread pool would report false races. The threads under
# test are the callers' own.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-tsan
[[ "${1:-}" == --build ]] && build=$2
mkdir -p "$build"
filter=${FSTM_TSAN_FILTER:-Detector.*:Loader.*:FaceDlib.ThreadsShareOneDetector}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFSTM_TSAN=ON -DFSTM_SANITIZE=OFF -DFSTM_CUDA=OFF \
  -DFSTM_BUILD_TESTS=ON -DFSTM_BUILD_BENCH=OFF -DFSTM_REQUIRE_ALL=OFF -DFSTM_NATIVE=OFF >"$build/configure.log" 2>&1 \
  || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j "${FSTM_JOBS:-$(nproc)}" --target fstm_tests
OMP_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
  "$build/tests/fstm_tests" --gtest_filter="$filter" "${@:3}"
