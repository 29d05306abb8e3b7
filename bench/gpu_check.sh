#!/usr/bin/env bash
# GPU check: proves fstm's CUDA backend on a GPU machine in one command (about 5 minutes on an
# H100 box with 16 cores; everything is bounded by timeouts so the whole run stays under 8).
#
# The GPU machine has the NVIDIA driver, CUDA (nvcc, cuBLAS), cuDNN 9, CMake, ninja, g++ and
# PyTorch, but no network and no Debian -dev packages. So:
#   1. here, on a machine with the Debian archive:   bench/fetch_debs.sh   (fills .debs/)
#   2. carry .debs/ with the working tree (the device tool's carry: [".debs"]) and run there:
#        bench/gpu_check.sh [--build-dir DIR] [--out DIR] [--jobs N] [--skip-bench] [--all-tests]
#
# Steps:
#   - unpacks .debs/*.deb with dpkg -x into BUILD/deps (never into /): GoogleTest, nlohmann-json,
#     CLI11, stb headers, Google Benchmark;
#   - compiles GoogleTest from the sources in the googletest package with this machine's compiler
#     (falls back to the prebuilt Debian libraries);
#   - finds cuDNN (system, CUDA toolkit, or the nvidia-cudnn wheel next to PyTorch) and the GPU's
#     compute capability (nvidia-smi);
#   - configures a clean Release build: -DFSTM_CUDA=ON -DFSTM_ONEDNN=OFF -DFSTM_FFMPEG=OFF
#     -DFSTM_DLIB=OFF, CMAKE_PREFIX_PATH pointing at the unpacked packages; builds fstm,
#     fstm_tests and bench_cuda_ops;
#   - runs fstm info and fstm_tests --gtest_filter='Cuda*' (GPU ops against the CPU reference);
#     a skipped CUDA test counts as a failure here, since this script exists to run them;
#   - with --all-tests also the rest of the unit tests;
#   - runs bench/gpu_bench.py: fstm's CUDA ops against PyTorch on the same GPU (ResNet-18 conv
#     shapes, linear, BN, pooling, AdamW) and torchvision's ResNet-18 img/s.
#
# Output in OUT (default: $OUT when set, as on the device tool, else BUILD/gpu_check): build.log,
# info.txt, cuda_tests.log/.json, bench.txt/.json, summary.txt. Exit status 0 when the build and
# every CUDA test passed (benchmark problems are reported in the summary but do not fail the run).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build-gpu"
OUT_DIR="${OUT:-}"
JOBS=$(nproc 2>/dev/null || echo 8)
SKIP_BENCH=0
ALL_TESTS=0
PYTHON=${PYTHON:-python3}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-360}  # seconds for the main build (16 cores need about 2 minutes)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD=$(realpath -m "$2"); shift 2 ;;
    --out) OUT_DIR=$(realpath -m "$2"); shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --skip-bench) SKIP_BENCH=1; shift ;;
    --all-tests) ALL_TESTS=1; shift ;;
    -h|--help) sed -n '2,34p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "gpu_check: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n "$OUT_DIR" ]] || OUT_DIR="$BUILD/gpu_check"
DEPS="$BUILD/deps"
T0=$(date +%s)
SUMMARY=()

note() { echo "[gpu_check $(( $(date +%s) - T0 ))s] $*"; }
summary() { SUMMARY+=("$*"); note "$*"; }
finish() {
  local status=$1
  mkdir -p "$OUT_DIR"
  { printf '%s\n' "${SUMMARY[@]}"; echo "total $(( $(date +%s) - T0 ))s, exit $status"; } > "$OUT_DIR/summary.txt"
  echo "---- summary ($OUT_DIR/summary.txt)"
  cat "$OUT_DIR/summary.txt"
  exit "$status"
}

# ---- 0. clean build directory -----------------------------------------------------------------------
rm -rf "$BUILD"
mkdir -p "$BUILD" "$DEPS" "$OUT_DIR"
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader | tee "$OUT_DIR/gpu.txt"
else
  summary "nvidia-smi not found: is this a GPU machine?"
fi

# ---- 1. unpack the carried Debian packages into BUILD/deps -------------------------------------------
shopt -s nullglob
debs=("$ROOT"/.debs/*.deb)
if [[ ${#debs[@]} -eq 0 ]]; then
  summary "no .debs/*.deb (run bench/fetch_debs.sh where there is network and carry .debs/)"
  finish 1
fi
for deb in "${debs[@]}"; do
  if command -v dpkg-deb > /dev/null; then
    dpkg-deb -x "$deb" "$DEPS" || { summary "cannot unpack $deb"; finish 1; }
  else  # no dpkg: a .deb is an ar archive holding data.tar.*
    tmp=$(mktemp -d)
    (cd "$tmp" && ar x "$deb" && tar -xf data.tar.* -C "$DEPS") || { summary "cannot unpack $deb"; finish 1; }
    rm -rf "$tmp"
  fi
done
note "unpacked ${#debs[@]} packages into $DEPS"

# ---- 2. GoogleTest built with this machine's compiler ------------------------------------------------
PREFIXES="$DEPS/usr"
if [[ -f "$DEPS/usr/src/googletest/CMakeLists.txt" ]]; then
  if timeout 120 cmake -S "$DEPS/usr/src/googletest" -B "$BUILD/googletest" -G Ninja -DCMAKE_BUILD_TYPE=Release \
       -DCMAKE_INSTALL_PREFIX="$DEPS/gtest" -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBUILD_GMOCK=ON \
       -DINSTALL_GTEST=ON > "$OUT_DIR/googletest.log" 2>&1 &&
     timeout 120 ninja -C "$BUILD/googletest" -j "$JOBS" install >> "$OUT_DIR/googletest.log" 2>&1; then
    PREFIXES="$DEPS/gtest;$DEPS/usr"
    note "GoogleTest compiled from source"
  else
    summary "GoogleTest from source failed (see googletest.log); using Debian's prebuilt libraries"
  fi
fi

# ---- 3. CUDA toolkit, cuDNN, GPU architecture --------------------------------------------------------
CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Release -DFSTM_CUDA=ON -DFSTM_ONEDNN=OFF -DFSTM_FFMPEG=OFF -DFSTM_DLIB=OFF
            -DCMAKE_PREFIX_PATH="$PREFIXES")
if [[ ! -x /usr/local/cuda/bin/nvcc ]] && command -v nvcc > /dev/null; then
  CMAKE_ARGS+=(-DCMAKE_CUDA_COMPILER="$(command -v nvcc)")
fi
cudnn_lib=""
cudnn_inc=""
for dir in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
  for name in libcudnn.so libcudnn.so.9; do
    [[ -z "$cudnn_lib" && -e "$dir/$name" ]] && cudnn_lib="$dir/$name"
  done
done
for dir in /usr/local/cuda/include /usr/include /usr/include/x86_64-linux-gnu; do
  [[ -z "$cudnn_inc" && -f "$dir/cudnn.h" ]] && cudnn_inc="$dir"
done
if [[ -z "$cudnn_lib" || -z "$cudnn_inc" ]]; then
  # PyTorch's wheels bring cuDNN as the nvidia-cudnn-cu* package: headers and libcudnn.so.9.
  wheel=$("$PYTHON" -c 'import nvidia.cudnn; print(list(nvidia.cudnn.__path__)[0])' 2>/dev/null || true)
  lib=$(ls "$wheel"/lib/libcudnn.so* 2>/dev/null | head -n 1)
  if [[ -n "$wheel" && -n "$lib" && -f "$wheel/include/cudnn.h" ]]; then
    cudnn_lib="$lib"
    cudnn_inc="$wheel/include"
    export LD_LIBRARY_PATH="$wheel/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi
if [[ -n "$cudnn_lib" && -n "$cudnn_inc" ]]; then
  CMAKE_ARGS+=(-DCUDNN_LIBRARY="$cudnn_lib" -DCUDNN_INCLUDE_DIR="$cudnn_inc")
  note "cuDNN: $cudnn_lib, $cudnn_inc/cudnn.h"
else
  summary "cuDNN not found in the usual places or next to PyTorch; CMake will look itself"
fi
if command -v nvidia-smi > /dev/null; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
  [[ "$cap" =~ ^[0-9]+$ ]] && CMAKE_ARGS+=(-DFSTM_CUDA_ARCHITECTURES="$cap")
fi

# ---- 4. configure and build ----------------------------------------------------------------------------
note "cmake ${CMAKE_ARGS[*]}"
if ! timeout 180 cmake -S "$ROOT" -B "$BUILD" -G Ninja "${CMAKE_ARGS[@]}" > "$OUT_DIR/build.log" 2>&1; then
  tail -n 40 "$OUT_DIR/build.log"
  summary "configure FAILED (build.log)"
  finish 1
fi
grep -E "^-- +(CUDA|oneDNN|FFmpeg|dlib|build type|missing) " "$OUT_DIR/build.log"
targets=(fstm fstm_tests)
ninja -C "$BUILD" -t query bench_cuda_ops > /dev/null 2>&1 && targets+=(bench_cuda_ops)
if ! timeout "$BUILD_TIMEOUT" ninja -C "$BUILD" -j "$JOBS" "${targets[@]}" >> "$OUT_DIR/build.log" 2>&1; then
  grep -E "error|FAILED|interrupted" "$OUT_DIR/build.log" | head -n 40
  summary "build FAILED or took over ${BUILD_TIMEOUT}s (build.log)"
  finish 1
fi
summary "built ${targets[*]}"
"$BUILD/fstm" info 2>&1 | tee "$OUT_DIR/info.txt"

# ---- 5. CUDA tests --------------------------------------------------------------------------------------
status=0
timeout 240 "$BUILD/tests/fstm_tests" --gtest_filter='Cuda*' --gtest_output="json:$OUT_DIR/cuda_tests.json" \
  > "$OUT_DIR/cuda_tests.log" 2>&1
rc=$?
grep -E "^\[ +(OK|FAILED|SKIPPED) +\]|Failure|Skipped|error" "$OUT_DIR/cuda_tests.log" | head -n 80
passed=$(grep -cE "^\[ +OK \]" "$OUT_DIR/cuda_tests.log")
failed=$(grep -cE "^\[ +FAILED +\] [A-Za-z]+\.[A-Za-z0-9_]+ \(" "$OUT_DIR/cuda_tests.log")
skipped=$(grep -cE "^\[ +SKIPPED +\] [A-Za-z]+\.[A-Za-z0-9_]+ \(" "$OUT_DIR/cuda_tests.log")
if [[ $rc -ne 0 || $failed -ne 0 ]]; then
  summary "CUDA tests FAILED: $passed passed, $failed failed, $skipped skipped (exit $rc; cuda_tests.log)"
  status=1
elif [[ $skipped -ne 0 ]]; then
  summary "CUDA tests SKIPPED on a GPU check: $passed passed, $skipped skipped (no usable GPU? see info.txt)"
  status=1
else
  summary "CUDA tests passed: $passed"
fi
if [[ $ALL_TESTS -eq 1 ]]; then
  if timeout 240 "$BUILD/tests/fstm_tests" --gtest_filter='-Cuda*' > "$OUT_DIR/other_tests.log" 2>&1; then
    summary "other unit tests passed"
  else
    summary "other unit tests FAILED or timed out (other_tests.log)"
    status=1
  fi
fi

# ---- 6. benchmarks against PyTorch ---------------------------------------------------------------------
if [[ $SKIP_BENCH -eq 0 ]]; then
  bench_args=(--fstm "$BUILD/fstm" --out "$OUT_DIR/bench.json")
  [[ -x "$BUILD/bench/bench_cuda_ops" ]] && bench_args+=(--bench-binary "$BUILD/bench/bench_cuda_ops")
  timeout 200 "$PYTHON" "$ROOT/bench/gpu_bench.py" "${bench_args[@]}" 2>&1 | tee "$OUT_DIR/bench.txt"
  brc=${PIPESTATUS[0]}
  case $brc in
    0) summary "benchmarks done (bench.txt, bench.json)" ;;
    77) summary "benchmarks skipped: PyTorch sees no GPU or is missing" ;;
    124) summary "benchmarks timed out (bench.txt has what ran)" ;;
    *) summary "benchmarks failed with exit $brc (bench.txt)" ;;
  esac
fi
finish $status
