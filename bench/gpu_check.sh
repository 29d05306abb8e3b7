#!/usr/bin/env bash
# GPU check: proves fstm's CUDA backend on a GPU machine in one command, in under 8 minutes on an
# H100 box with 16 cores (every stage has a timeout inside an overall deadline).
#
# The GPU machine has the NVIDIA driver, CUDA (nvcc, cuBLAS), cuDNN 9, CMake, ninja, g++ and
# PyTorch with torchvision, but no network and no Debian -dev packages. So:
#   1. here, on a machine with the Debian archive:   bench/fetch_debs.sh   (fills .debs/)
#   2. carry .debs/ with the working tree (the device tool's carry: [".debs"]) and run there:
#        bench/gpu_check.sh [--build-dir DIR] [--out DIR] [--jobs N] [--skip-bench] [--skip-ops]
#                           [--all-tests] [--deadline SECONDS] [--prebuilt DIR]
#   Faster: build here with bench/gpu_bundle.sh (CUDA-only, sm_90, under 64 MiB), carry its folder
#   and run `bench/gpu_check.sh --prebuilt .gpu_bundle`: no build on the GPU machine.
#   Without a GPU, `bench/gpu_check.sh --cpu-dry-run --reuse-build build` runs every stage that can
#   run on the CPU against an existing build (CUDA tests skip, parity and benchmarks on the CPU
#   with tiny sizes), to check the script itself.
#
# Stages (a failed stage is reported and the later ones still run where they can):
#   1. unpack .debs/*.deb with dpkg -x into BUILD/deps (never into /): GoogleTest, nlohmann-json,
#      CLI11, stb headers, Google Benchmark; compile GoogleTest with this machine's compiler;
#   2. find cuDNN (system, CUDA toolkit, or the nvidia-cudnn wheel next to PyTorch) and the GPU's
#      compute capability; configure a clean Release build (-DFSTM_CUDA=ON -DFSTM_ONEDNN=OFF
#      -DFSTM_FFMPEG=OFF -DFSTM_DLIB=OFF) and build fstm, fstm_tests, gpu_parity and bench_cuda_ops
#      (ninja -k 0: what can be built is built);
#   3. fstm info; fstm_tests --gtest_filter=<tests/gpu_tests.txt> (every CUDA op against the CPU reference, the
#      runtime, and the CUDA inference executor); a skipped CUDA test counts as a failure here;
#   4. GPU-vs-CPU parity of ResNet-18/34 (bench/gpu_parity.py + tests/tools/gpu_parity): eval and
#      train logits, loss and every parameter gradient, CUDA against CPU and against PyTorch on the
#      GPU; inference plans f32/f16/bf16 against the CPU forward;
#   5. ResNet-18 against PyTorch on the same GPU (bench/gpu_bench.py): inference batch 256 f32 and
#      bf16, training step f32 batch 128, img/s, ratios and peak GPU memory, as a Markdown table;
#   6. op-level timings against PyTorch (bench_cuda_ops), if time is left.
#
# Output in OUT (default: $OUT when set, as on the device tool, else BUILD/gpu_check): summary.txt
# (one line per stage, then the table, ready for the README; also printed last) and
# gpu_check.tar.gz with every log: build.log, info.txt, cuda_tests.log/.json, parity.log,
# bench_model.txt/.json, gpu_table.md, bench_ops.txt/.json. Exit status 0 when
# the build, every CUDA test and the parity checks passed (benchmark targets are reported, not
# enforced).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build-gpu"
OUT_DIR="${OUT:-}"
JOBS=$(nproc 2>/dev/null || echo 8)
SKIP_BENCH=0
SKIP_OPS=0
ALL_TESTS=0
DRY_RUN=0
REUSE_BUILD=0
PREBUILT=0
DEADLINE=${DEADLINE:-460}           # seconds for the whole check
BUILD_TIMEOUT=${BUILD_TIMEOUT:-300}  # seconds for the main build (16 cores need about 2 minutes)
PYTHON=${PYTHON:-python3}
# The Python with PyTorch: the GPU image's python3; here the system one (a pyenv python3 may shadow it).
if ! "$PYTHON" -c 'import torch' > /dev/null 2>&1 && /usr/bin/python3 -c 'import torch' > /dev/null 2>&1; then
  PYTHON=/usr/bin/python3
fi
# The GPU tests: tests/gpu_tests.txt, one GoogleTest pattern per line (fstm_tests fails a GPU test
# that it does not name, so this selection cannot fall behind the tests).
CUDA_FILTER=$(grep -v '^#' "$ROOT/tests/gpu_tests.txt" | grep -v '^[[:space:]]*$' | paste -sd: -)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD=$(realpath -m "$2"); shift 2 ;;
    --out) OUT_DIR=$(realpath -m "$2"); shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --skip-bench) SKIP_BENCH=1; shift ;;
    --skip-ops) SKIP_OPS=1; shift ;;
    --all-tests) ALL_TESTS=1; shift ;;
    --deadline) DEADLINE="$2"; shift 2 ;;
    --cpu-dry-run) DRY_RUN=1; shift ;;
    --reuse-build) REUSE_BUILD=1; BUILD=$(realpath -m "$2"); shift 2 ;;
    --prebuilt) REUSE_BUILD=1; PREBUILT=1; BUILD=$(realpath -m "$2"); shift 2 ;;
    --print-filter) echo "$CUDA_FILTER"; exit 0 ;;
    -h|--help) sed -n '2,38p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "gpu_check: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n "$OUT_DIR" ]] || OUT_DIR="$BUILD/gpu_check"
DEPS="$BUILD/deps"
T0=$(date +%s)
SUMMARY=()
STATUS=0

note() { echo "[gpu_check $(( $(date +%s) - T0 ))s] $*"; }
summary() { SUMMARY+=("$*"); note "$*"; }
fail() { summary "$*"; STATUS=1; }
# Seconds a stage may take: its own limit, cut to what is left before the deadline (at least 20).
budget() {
  local left=$(( DEADLINE - ($(date +%s) - T0) - 15 ))
  (( left < 20 )) && left=20
  (( $1 < left )) && echo "$1" || echo "$left"
}
time_left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
# OUT gets two files: gpu_check.tar.gz (every log, JSON and table of the run) and summary.txt
# (one line per stage, then the benchmark table); the device tool returns at most 8 files.
finish() {
  mkdir -p "$OUT_DIR" "$LOGS"
  {
    printf '%s\n' "${SUMMARY[@]}"
    echo "total $(( $(date +%s) - T0 ))s, exit $STATUS"
    if [[ -s "$LOGS/gpu_table.md" ]]; then
      echo
      cat "$LOGS/gpu_table.md"
    fi
  } > "$LOGS/summary.txt"
  cp "$LOGS/summary.txt" "$OUT_DIR/summary.txt"
  tar -czf "$OUT_DIR/gpu_check.tar.gz" -C "$LOGS" . || echo "gpu_check: could not write $OUT_DIR/gpu_check.tar.gz" >&2
  echo "---- logs: $OUT_DIR/gpu_check.tar.gz; summary ($OUT_DIR/summary.txt):"
  cat "$OUT_DIR/summary.txt"
  exit "$STATUS"
}

if [[ $REUSE_BUILD -eq 0 ]]; then
  rm -rf "$BUILD"
fi
LOGS="$BUILD/gpu_check_logs"
rm -rf "$LOGS"  # nothing stale from an earlier run
mkdir -p "$BUILD" "$DEPS" "$OUT_DIR" "$LOGS"
rm -f "$OUT_DIR/summary.txt" "$OUT_DIR/gpu_check.tar.gz"
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader | tee "$LOGS/gpu.txt"
elif [[ $DRY_RUN -eq 0 ]]; then
  summary "nvidia-smi not found: is this a GPU machine?"
fi
[[ $DRY_RUN -eq 1 ]] && summary "CPU dry run: checks the script; no GPU numbers"

# The folders holding CUDA's runtime, cuBLAS and cuDNN: the toolkit's, then PyTorch's nvidia-*
# wheels (site-packages/nvidia/<part>/lib, versioned names only).
cuda_library_dirs() {
  local d site
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do [[ -d "$d" ]] && echo "$d"; done
  site=$("$PYTHON" -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null || true)
  if [[ -n "$site" ]]; then
    for d in "$site"/nvidia/*/lib; do [[ -d "$d" ]] && echo "$d"; done
  fi
  return 0
}
# The first file matching the name pattern $1 (e.g. 'libcublas.so.[0-9]*') in those folders, or nothing.
find_cuda_library() {
  local d f
  while read -r d; do
    for f in "$d"/$1; do [[ -e "$f" ]] && { echo "$f"; return 0; }; done
  done < <(cuda_library_dirs)
  return 0
}

BUILT=0
if [[ $PREBUILT -eq 1 ]]; then
  # A bundle from bench/gpu_bundle.sh: its own libraries, then CUDA's wherever this machine has them.
  [[ -f "$BUILD/BUILD_INFO" ]] || fail "--prebuilt $BUILD: no BUILD_INFO (make the folder with bench/gpu_bundle.sh)"
  [[ -f "$BUILD/BUILD_INFO" ]] && note "bundle: $(tr '\n' ';' < "$BUILD/BUILD_INFO")"
  lib_path="$BUILD:$BUILD/lib"
  while read -r d; do lib_path+=":$d"; done < <(cuda_library_dirs)
  export LD_LIBRARY_PATH="$lib_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  missing=()
  for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9; do
    found=$(find_cuda_library "$lib")
    if [[ -n "$found" ]]; then note "$lib: $found"; else missing+=("$lib"); fi
  done
  (( ${#missing[@]} == 0 )) || fail "CUDA libraries not found in the toolkit or PyTorch's wheels: ${missing[*]}"
  # The tests find the sources and a scratch folder through these (tests/test_support.cpp).
  export FSTM_SOURCE_DIR="$ROOT" FSTM_BINARY_DIR="$BUILD"
  summary "prebuilt bundle in $BUILD (no build on this machine)"
  BUILT=1
elif [[ $REUSE_BUILD -eq 1 ]]; then
  summary "reusing the build in $BUILD"
  BUILT=1
else
  # ---- 1. the carried Debian packages, GoogleTest ---------------------------------------------------
  shopt -s nullglob
  debs=("$ROOT"/.debs/*.deb)
  unpacked=1
  if [[ ${#debs[@]} -eq 0 ]]; then
    fail "no .debs/*.deb (run bench/fetch_debs.sh where there is network and carry .debs/)"
    unpacked=0
  fi
  for deb in "${debs[@]}"; do
    if command -v dpkg-deb > /dev/null; then
      dpkg-deb -x "$deb" "$DEPS" || { fail "cannot unpack $deb"; unpacked=0; }
    else  # no dpkg: a .deb is an ar archive holding data.tar.*
      tmp=$(mktemp -d)
      (cd "$tmp" && ar x "$deb" && tar -xf data.tar.* -C "$DEPS") || { fail "cannot unpack $deb"; unpacked=0; }
      rm -rf "$tmp"
    fi
  done
  [[ $unpacked -eq 1 ]] && note "unpacked ${#debs[@]} packages into $DEPS"

  PREFIXES="$DEPS/usr"
  if [[ -f "$DEPS/usr/src/googletest/CMakeLists.txt" ]]; then
    if timeout "$(budget 120)" cmake -S "$DEPS/usr/src/googletest" -B "$BUILD/googletest" -G Ninja \
         -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$DEPS/gtest" -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
         -DBUILD_GMOCK=ON -DINSTALL_GTEST=ON > "$LOGS/googletest.log" 2>&1 &&
       timeout "$(budget 120)" ninja -C "$BUILD/googletest" -j "$JOBS" install >> "$LOGS/googletest.log" 2>&1; then
      PREFIXES="$DEPS/gtest;$DEPS/usr"
      note "GoogleTest compiled from source"
    else
      summary "GoogleTest from source failed (see googletest.log); using Debian's prebuilt libraries"
    fi
  fi

  # ---- 2. CUDA toolkit, cuDNN, GPU architecture; configure and build ----------------------------------
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
  # FindCUDAToolkit looks for unversioned libcudart.so / libcublas.so / libcublasLt.so next to
  # nvcc; an image that has them only as PyTorch's wheels (libcublas.so.13, no link) would stop
  # configure, so name the versioned files directly.
  for part in cudart cublas cublasLt; do
    [[ -e /usr/local/cuda/lib64/lib$part.so ]] && continue
    found=$(find_cuda_library "lib$part.so.[0-9]*")
    if [[ -n "$found" ]]; then
      CMAKE_ARGS+=(-DCUDA_${part}_LIBRARY="$found")
      export LD_LIBRARY_PATH="$(dirname "$found")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      note "lib$part: $found (no unversioned link in the toolkit)"
    fi
  done
  if command -v nvidia-smi > /dev/null; then
    cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
    [[ "$cap" =~ ^[0-9]+$ ]] && CMAKE_ARGS+=(-DFSTM_CUDA_ARCHITECTURES="$cap")
  fi

  note "cmake ${CMAKE_ARGS[*]}"
  if timeout "$(budget 180)" cmake -S "$ROOT" -B "$BUILD" -G Ninja "${CMAKE_ARGS[@]}" > "$LOGS/build.log" 2>&1; then
    grep -E "^-- +(CUDA|oneDNN|FFmpeg|dlib|build type|missing) " "$LOGS/build.log"
    targets=(fstm fstm_tests gpu_parity)
    ninja -C "$BUILD" -t query bench_cuda_ops > /dev/null 2>&1 && targets+=(bench_cuda_ops)
    if timeout "$(budget "$BUILD_TIMEOUT")" ninja -C "$BUILD" -k 0 -j "$JOBS" "${targets[@]}" >> "$LOGS/build.log" 2>&1; then
      summary "built ${targets[*]}"
    else
      grep -E "error|FAILED|interrupted" "$LOGS/build.log" | head -n 40
      built=()
      for t in fstm tests/fstm_tests tests/gpu_parity bench/bench_cuda_ops; do [[ -x "$BUILD/$t" ]] && built+=("$t"); done
      fail "build FAILED or took too long (build.log); built anyway: ${built[*]:-nothing}"
    fi
    BUILT=1
  else
    tail -n 40 "$LOGS/build.log"
    fail "configure FAILED (build.log); only PyTorch's side of the benchmarks can run"
  fi
fi

# ---- 3. fstm info, CUDA tests --------------------------------------------------------------------------
FSTM="$BUILD/fstm"
if [[ -x "$FSTM" ]]; then
  timeout 60 "$FSTM" info > "$LOGS/info.txt" 2>&1
  cat "$LOGS/info.txt"
fi
if [[ -x "$BUILD/tests/fstm_tests" ]]; then
  # Suites named Cuda* and the CUDA cases of other suites (ShapleyMask.CudaEqualsReferenceBitExact,
  # Loader.BatchesOnTheGpu...).
  timeout "$(budget 240)" "$BUILD/tests/fstm_tests" --gtest_filter="$CUDA_FILTER" \
    --gtest_output="json:$LOGS/cuda_tests.json" > "$LOGS/cuda_tests.log" 2>&1
  rc=$?
  grep -E "^\[ +(OK|FAILED|SKIPPED) +\]|Failure|Skipped|error" "$LOGS/cuda_tests.log" | head -n 80
  passed=$(grep -cE "^\[ +OK \]" "$LOGS/cuda_tests.log")
  failed=$(grep -cE "^\[ +FAILED +\] [A-Za-z]+\.[A-Za-z0-9_]+ \(" "$LOGS/cuda_tests.log")
  skipped=$(grep -cE "^\[ +SKIPPED +\] [A-Za-z]+\.[A-Za-z0-9_]+ \(" "$LOGS/cuda_tests.log")
  if (( passed + failed + skipped == 0 )); then
    fail "CUDA tests: the filter $CUDA_FILTER selected no test (exit $rc; cuda_tests.log)"
  elif [[ $rc -ne 0 || $failed -ne 0 ]]; then
    failing=$(grep -E "^\[ +FAILED +\] [A-Za-z]+\.[A-Za-z0-9_]+ \(" "$LOGS/cuda_tests.log" | awk '{print $4}' | head -n 12 | tr '\n' ' ')
    fail "CUDA tests FAILED: $passed passed, $failed failed ($failing), $skipped skipped (exit $rc; cuda_tests.log)"
  elif [[ $skipped -ne 0 && $DRY_RUN -eq 0 ]]; then
    fail "CUDA tests SKIPPED on a GPU check: $passed passed, $skipped skipped (no usable GPU? see info.txt)"
  else
    summary "CUDA tests passed: $passed ($skipped skipped)"
  fi
  if [[ $ALL_TESTS -eq 1 ]]; then
    if timeout "$(budget 240)" "$BUILD/tests/fstm_tests" --gtest_filter="-$CUDA_FILTER" > "$LOGS/other_tests.log" 2>&1; then
      other=$(grep -cE "^\[ +OK \]" "$LOGS/other_tests.log")
      if (( other == 0 )); then fail "other unit tests: none ran (other_tests.log)"; else summary "other unit tests passed: $other"; fi
    else
      fail "other unit tests FAILED or timed out (other_tests.log)"
    fi
  fi
elif [[ $BUILT -eq 1 ]]; then
  fail "no fstm_tests binary: CUDA tests not run"
fi

# ---- 4. GPU-vs-CPU parity of ResNet-18/34 (and PyTorch on the GPU) ----------------------------------------
if [[ -x "$BUILD/tests/gpu_parity" ]]; then
  # Weights and gradients (hundreds of MB) stay in the build tree, not in OUT.
  parity_args=(--tool "$BUILD/tests/gpu_parity" --work "$BUILD/parity_work")
  [[ $DRY_RUN -eq 1 ]] && parity_args+=(--cpu-dry-run --archs resnet18)
  timeout "$(budget 300)" "$PYTHON" "$ROOT/bench/gpu_parity.py" "${parity_args[@]}" > "$LOGS/parity.log" 2>&1
  prc=$?
  grep -E "^(FAIL|gpu_parity)|within bounds|error|Error" "$LOGS/parity.log" | head -n 40
  last=$(grep -E "^gpu_parity.py:|within bounds" "$LOGS/parity.log" | tail -n 1)
  case $prc in
    0) summary "parity passed: ${last:-see parity.log}" ;;
    77) if [[ $DRY_RUN -eq 1 ]]; then summary "parity skipped (exit 77)"; else fail "parity skipped: no GPU seen (parity.log)"; fi ;;
    124) fail "parity timed out (parity.log)" ;;
    *) fail "parity FAILED (exit $prc): ${last:-see parity.log}" ;;
  esac
elif [[ $BUILT -eq 1 ]]; then
  fail "no gpu_parity tool: parity not run"
fi

# ---- 5, 6. benchmarks against PyTorch --------------------------------------------------------------------
if [[ $SKIP_BENCH -eq 0 ]]; then
  bench_args=(--out "$LOGS/bench_model.json" --summary "$LOGS/gpu_table.md" --skip-ops)
  [[ -x "$FSTM" ]] && bench_args+=(--fstm "$FSTM")
  [[ $DRY_RUN -eq 1 ]] && bench_args+=(--cpu-dry-run)
  timeout "$(budget 300)" "$PYTHON" "$ROOT/bench/gpu_bench.py" "${bench_args[@]}" > "$LOGS/bench_model.txt" 2>&1
  brc=$?
  cat "$LOGS/bench_model.txt" | tail -n 30
  case $brc in
    0) summary "ResNet-18 benchmarks done (bench_model.txt; table below)" ;;
    77) summary "benchmarks skipped: PyTorch sees no GPU or is missing" ;;
    124) summary "ResNet-18 benchmarks timed out (bench_model.txt has what ran)" ;;
    *) summary "ResNet-18 benchmarks failed with exit $brc (bench_model.txt)" ;;
  esac
  if [[ $SKIP_OPS -eq 0 && $DRY_RUN -eq 0 ]]; then
    if (( $(time_left) > 100 )); then
      ops_args=(--skip-model --out "$LOGS/bench_ops.json")
      [[ -x "$BUILD/bench/bench_cuda_ops" ]] && ops_args+=(--bench-binary "$BUILD/bench/bench_cuda_ops")
      timeout "$(budget 200)" "$PYTHON" "$ROOT/bench/gpu_bench.py" "${ops_args[@]}" > "$LOGS/bench_ops.txt" 2>&1
      orc=$?
      grep -A 20 "geometric mean" "$LOGS/bench_ops.txt"
      case $orc in
        0) summary "op-level benchmarks done (bench_ops.txt)" ;;
        124) summary "op-level benchmarks timed out (bench_ops.txt has what ran)" ;;
        *) summary "op-level benchmarks exit $orc (bench_ops.txt)" ;;
      esac
    else
      summary "op-level benchmarks skipped: $(time_left)s left before the ${DEADLINE}s deadline"
    fi
  fi
fi
finish
