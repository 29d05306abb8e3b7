#!/usr/bin/env bash
# Builds here, on a CPU machine with nvcc, the CUDA-only configuration that bench/gpu_check.sh runs
# on the GPU machine, and packs what the check runs into one folder to carry there, so that none of
# the GPU machine's scarce minutes go to compiling:
#
#   bench/gpu_bundle.sh [--out DIR] [--build-dir DIR] [--arch 90] [--jobs N]
#   (on the GPU machine, with DIR carried:)  bench/gpu_check.sh --prebuilt DIR
#
# DIR (default .gpu_bundle, git-ignored; the device tool's carry takes 64 MiB in all) mirrors a build
# tree: fstm, libfstm.so*, libfstm_cuda.so, tests/fstm_tests, tests/gpu_parity,
# bench/bench_cuda_ops, plus lib/ with the non-system libraries they need that the GPU image may
# lack (Google Benchmark, libgomp), NEEDED.txt (every shared library each binary asks for, and
# where this machine found it) and BUILD_INFO. GoogleTest is linked statically (Debian ships only libgtest.a), and so
# are libstdc++ and libgcc, so that the binaries do not depend on the GPU image's compiler. CUDA's
# own libraries (cudart, cuBLAS, cuDNN) are not packed: gpu_check.sh finds them in the toolkit or
# in PyTorch's nvidia-* wheels there. Binaries are stripped.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR="$ROOT/.gpu_bundle"
BUILD="$ROOT/build-gpu-bundle"
ARCH=90
JOBS=$(nproc 2>/dev/null || echo 2)
LIMIT_MIB=64
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT_DIR=$(realpath -m "$2"); shift 2 ;;
    --build-dir) BUILD=$(realpath -m "$2"); shift 2 ;;
    --arch) ARCH="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "gpu_bundle: unknown argument $1" >&2; exit 2 ;;
  esac
done
NVCC=/usr/local/cuda/bin/nvcc
[[ -x "$NVCC" ]] || NVCC=$(command -v nvcc || true)
[[ -n "$NVCC" ]] || { echo "gpu_bundle: no nvcc (CUDA toolkit) on this machine" >&2; exit 1; }

static_runtime="-static-libstdc++ -static-libgcc"
mkdir -p "$BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$NVCC" \
  -DFSTM_CUDA=ON -DFSTM_ONEDNN=OFF -DFSTM_FFMPEG=OFF -DFSTM_DLIB=OFF -DFSTM_SANITIZE=OFF -DFSTM_NATIVE=OFF \
  -DFSTM_BUILD_TESTS=ON -DFSTM_BUILD_BENCH=ON -DFSTM_CUDA_ARCHITECTURES="$ARCH" \
  -DCMAKE_EXE_LINKER_FLAGS="$static_runtime" -DCMAKE_SHARED_LINKER_FLAGS="$static_runtime" > "$BUILD/configure.log" 2>&1 ||
  { tail -n 30 "$BUILD/configure.log"; echo "gpu_bundle: configure failed ($BUILD/configure.log)" >&2; exit 1; }
grep -E "^-- +(CUDA|oneDNN|FFmpeg|dlib) " "$BUILD/configure.log" || true
ninja -C "$BUILD" -j "$JOBS" fstm fstm_tests gpu_parity bench_cuda_ops

rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR/tests" "$OUT_DIR/bench" "$OUT_DIR/lib"
cp -P "$BUILD"/fstm "$BUILD"/libfstm*.so* "$OUT_DIR/"
cp "$BUILD/tests/fstm_tests" "$BUILD/tests/gpu_parity" "$OUT_DIR/tests/"
cp "$BUILD/bench/bench_cuda_ops" "$OUT_DIR/bench/"
binaries=("$OUT_DIR/fstm" "$OUT_DIR/tests/fstm_tests" "$OUT_DIR/tests/gpu_parity" "$OUT_DIR/bench/bench_cuda_ops")
libraries=()
for f in "$OUT_DIR"/libfstm*.so*; do [[ -L "$f" ]] || libraries+=("$f"); done
strip --strip-unneeded "${binaries[@]}" "${libraries[@]}"

# What each binary needs (NEEDED.txt, with where this machine found it), and what to carry: every
# needed library but the C library, the loader, CUDA's own (cudart, cuBLAS, cuDNN: from the GPU
# machine) and fstm's (in the bundle). Here that is Google Benchmark, a Debian package only, and
# libgomp.
{
  echo "# Shared libraries the bundle's binaries ask for (readelf NEEDED), and where this machine found them."
  echo "# CUDA, cuBLAS and cuDNN come from the GPU machine's toolkit or PyTorch's nvidia-* wheels"
  echo "# (gpu_check.sh --prebuilt sets LD_LIBRARY_PATH); lib/ holds the others the GPU image lacks."
  for f in "${binaries[@]}" "${libraries[@]}"; do
    echo "${f#$OUT_DIR/}:"
    found=$(LD_LIBRARY_PATH="$BUILD:/usr/local/cuda/lib64" ldd "$f")
    for lib in $(readelf -d "$f" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
      where=$(awk -v l="$lib" '$1 == l {print $3}' <<< "$found")
      echo "  $lib  ${where:-not found here}"
      case "$lib" in
        libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|ld-linux*|libfstm*|libcuda*|libcublas*|libcudnn*) ;;
        *) if [[ -n "$where" && ! -e "$OUT_DIR/lib/$lib" ]]; then cp -L "$where" "$OUT_DIR/lib/$lib"; fi ;;
      esac
    done
  done
} > "$OUT_DIR/NEEDED.txt"
{
  echo "fstm GPU bundle"
  echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), $(ldd --version | head -n 1)"
  echo "nvcc: $("$NVCC" --version | tail -n 1)"
  echo "architectures: $ARCH"
} > "$OUT_DIR/BUILD_INFO"

size_kib=$(du -sk "$OUT_DIR" | cut -f1)
echo "gpu_bundle: $OUT_DIR, $(( size_kib / 1024 )) MiB ($(find "$OUT_DIR" -type f | wc -l) files)"
if (( size_kib > LIMIT_MIB * 1024 )); then
  echo "gpu_bundle: over the ${LIMIT_MIB} MiB the device tool carries" >&2
  exit 1
fi
# It runs here: fstm info through the bundle's own libraries.
LD_LIBRARY_PATH="$OUT_DIR:$OUT_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$OUT_DIR/fstm" info | head -n 20
