#!/usr/bin/env bash
# The test command (README, .ci/run). In the README's order on this clone:
#   1. the main job, `bash fstm/demo.sh --quick` (it configures build/ with tests off, as a user's
#      first command does), so that step 2 is checked to turn them back on;
#   2. configure build/ with every option this script relies on named explicitly (a cached OFF from
#      the demo or from a user's own configure must not survive), build, run the whole suite;
#   3. the unit tests again under AddressSanitizer + UBSan + LeakSanitizer, and the end-to-end tests
#      that feed the ASan-built fstm bad input (the quick demo, predict, extract, train, full disks,
#      a corrupt dataset);
#   4. the threaded parts (Detector, loader, face detector) under ThreadSanitizer (tests/tsan.sh);
#   5. the libFuzzer targets (tests/fuzz/run.sh): each one's regression inputs, then 25 s of fuzzing.
# Every phase must run at least one test and as many as it registered; the closing line states
# the counts, and is printed only when all of that held.
#   FSTM_SKIP_DEMO=1   skip step 1    FSTM_SKIP_ASAN=1   skip step 3    FSTM_SKIP_TSAN=1   skip step 4
#   FSTM_SKIP_FUZZ=1   skip step 5
#   FSTM_JOBS=N        build parallelism (default: number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${FSTM_JOBS:-$(nproc)}
start=$(date +%s)
logs=build/test-logs

die() { echo "tests/run.sh: $*" >&2; exit 1; }

bash cmake/install-deps.sh

if [[ "${FSTM_SKIP_DEMO:-0}" != 1 ]]; then
  echo "== the README's first command: bash fstm/demo.sh --quick"
  bash fstm/demo.sh --quick --out build/demo-quick
  [[ -s build/demo-quick/report.html ]] || die "the quick demo wrote no build/demo-quick/report.html"
fi

echo "== build (Release, all components required, tests and benchmarks on)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFSTM_REQUIRE_ALL=ON \
  -DFSTM_BUILD_TESTS=ON -DFSTM_BUILD_BENCH=ON -DFSTM_SANITIZE=OFF -DFSTM_NATIVE=OFF \
  -DFSTM_ONEDNN=ON -DFSTM_FFMPEG=ON -DFSTM_DLIB=ON
cmake --build build -j "$jobs"
build/fstm info
mkdir -p "$logs"

echo "== tests"
registered=$(ctest --test-dir build -N | sed -n 's/^Total Tests: \([0-9]*\)$/\1/p')
[[ "${registered:-0}" -gt 0 ]] || die "build/ registers no tests (was it configured with FSTM_BUILD_TESTS=OFF?)"
ctest --test-dir build --output-on-failure --no-tests=error -j "$jobs" --timeout 1500 \
  --output-junit "$PWD/$logs/ctest.xml" | tee "$logs/ctest.log"
release=$(python3 tests/tools/summarise_tests.py ctest "$logs/ctest.xml" --expect "$registered")

asan="not run (FSTM_SKIP_ASAN=1)"
if [[ "${FSTM_SKIP_ASAN:-0}" != 1 ]]; then
  echo "== unit tests under AddressSanitizer + UBSan"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFSTM_SANITIZE=ON -DFSTM_CUDA=OFF \
    -DFSTM_BUILD_TESTS=ON -DFSTM_BUILD_BENCH=OFF -DFSTM_REQUIRE_ALL=OFF -DFSTM_NATIVE=OFF
  cmake --build build-asan -j "$jobs" --target fstm_tests fstm  # CLI tests run the fstm program
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # Of the slow cases only the quick demo (the whole pipeline, twice); compare's and the
  # pipeline's are covered by the Release run above.
  build-asan/tests/fstm_tests --gtest_filter="${FSTM_ASAN_FILTER:--CompareCommand.QuickSlow:Pipeline.*Slow}" \
    --gtest_output="json:$PWD/$logs/asan.json" | tee "$logs/asan.log"
  asan=$(python3 tests/tools/summarise_tests.py gtest "$logs/asan.json" --log "$logs/asan.log")
  cli='^py_test_(predict|extract|train_cli|full_disk|corrupt_dataset)$'
  ctest --test-dir build-asan -R "$cli" -j "$jobs" --output-on-failure --no-tests=error --timeout 1500 \
    --output-junit "$PWD/$logs/asan-cli.xml" | tee "$logs/asan-cli.log"
  asan="$asan; end to end: $(python3 tests/tools/summarise_tests.py ctest "$logs/asan-cli.xml" --expect 5)"
  unset ASAN_OPTIONS UBSAN_OPTIONS
fi

tsan="not run (FSTM_SKIP_TSAN=1)"
if [[ "${FSTM_SKIP_TSAN:-0}" != 1 ]]; then
  echo "== threaded parts under ThreadSanitizer"
  FSTM_JOBS=$jobs bash tests/tsan.sh --build build-tsan --gtest_output="json:$PWD/$logs/tsan.json" | tee "$logs/tsan.log"
  tsan=$(python3 tests/tools/summarise_tests.py gtest "$logs/tsan.json" --log "$logs/tsan.log")
fi

fuzz="not run (FSTM_SKIP_FUZZ=1)"
if [[ "${FSTM_SKIP_FUZZ:-0}" != 1 ]]; then
  echo "== fuzz targets (libFuzzer + ASan/UBSan): regression inputs, then 25 s each"
  FSTM_JOBS=$jobs bash tests/fuzz/run.sh --seconds "${FSTM_FUZZ_SECONDS:-25}" --build build-fuzz \
    --table "$logs/fuzz.md" || die "a fuzz target failed (table above; inputs under build-fuzz/artifacts/)"
  fuzz="$(grep -c '| ok |' "$logs/fuzz.md") targets clean"
fi

echo "== Release suite: $release; ASan/UBSan unit tests: $asan; TSan: $tsan; fuzzing: $fuzz;" \
  "$(( $(date +%s) - start )) s"
phases=("$logs/ctest.xml")
[[ "${FSTM_SKIP_ASAN:-0}" != 1 ]] && phases+=("$logs/asan.json" "$logs/asan-cli.xml")
[[ "${FSTM_SKIP_TSAN:-0}" != 1 ]] && phases+=("$logs/tsan.json")
python3 tests/tools/summarise_tests.py total "${phases[@]}"
