#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is needed, builds fstm with every component,
# runs the whole test suite, then builds the unit tests with AddressSanitizer + UBSan and runs them.
#   FSTM_SKIP_ASAN=1   skip the sanitizer build
#   FSTM_JOBS=N        build parallelism (default: number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${FSTM_JOBS:-$(nproc)}
start=$(date +%s)

bash cmake/install-deps.sh

echo "== build (Release, all components required)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFSTM_REQUIRE_ALL=ON
cmake --build build -j "$jobs"
build/fstm info

echo "== tests"
ctest --test-dir build --output-on-failure -j "$jobs" --timeout 1500

if [[ "${FSTM_SKIP_ASAN:-0}" != 1 ]]; then
  echo "== unit tests under AddressSanitizer + UBSan"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFSTM_SANITIZE=ON -DFSTM_CUDA=OFF \
    -DFSTM_BUILD_BENCH=OFF -DFSTM_REQUIRE_ALL=OFF
  cmake --build build-asan -j "$jobs" --target fstm_tests fstm  # CLI tests run the fstm program
  # Slow end-to-end cases are covered by the Release run above.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    build-asan/tests/fstm_tests --gtest_filter="${FSTM_ASAN_FILTER:--*Slow*}"
fi
echo "== all tests passed in $(( $(date +%s) - start )) s"
