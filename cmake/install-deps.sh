#!/usr/bin/env bash
# Installs the Debian packages fstm builds and tests with (run as root; idempotent and quick when
# everything is already there). CUDA 13 + cuDNN 9 are expected at /usr/local/cuda when present.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  libdnnl-dev                                                  # oneDNN: CPU fast path
  ocl-icd-opencl-dev                                           # Debian's dnnl-config.cmake needs OpenCL
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev ffmpeg  # video decode/encode
  libstb-dev                                                   # PNG/JPEG
  libdlib-dev libdlib-data                                     # face detector + 68 landmarks
  nlohmann-json3-dev libcli11-dev                              # JSON, command line
  googletest libgtest-dev libbenchmark-dev                     # tests, benchmarks
  clang libclang-rt-dev libomp-dev                             # libFuzzer targets (tests/fuzz)
  python3-torch python3-torchvision python3-numpy python3-pil  # test oracle (/usr/bin/python3)
  python3-sklearn python3-skimage python3-venv                 # metric oracle, a real face photo, PyPI venvs
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all ${#packages[@]} packages present"
fi
