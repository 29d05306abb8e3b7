#!/usr/bin/env bash
# The main job (README): installs what is needed, builds fstm, and runs `fstm demo` on the embedded
# synthetic dataset: generate videos, train the detector, source/target encoders and the
# FST-Matching model, evaluate on raw/c23/c40, explain, and write demo_out/report.html.
#   extra arguments go to `fstm demo` (for example --quick, --out DIR; the default is --out demo_out)
# Every option the demo relies on is named on the cmake line: a build/ that a user or tests/run.sh
# configured differently is reconfigured, not silently reused.
set -euo pipefail
cd "$(dirname "$0")/.."
bash cmake/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFSTM_REQUIRE_ALL=ON -DFSTM_BUILD_TESTS=OFF \
  -DFSTM_BUILD_BENCH=OFF -DFSTM_SANITIZE=OFF -DFSTM_NATIVE=OFF -DFSTM_ONEDNN=ON -DFSTM_FFMPEG=ON -DFSTM_DLIB=ON
cmake --build build -j "$(nproc)" --target fstm
build/fstm info
# OpenMP threads that spin while they wait collapse when another job shares the cores (ResNet-18
# training at 64 px, 2 threads, one other job running: 9 img/s spinning, 100 img/s passive).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
out=(--out demo_out)
for arg in "$@"; do [[ "$arg" == --out || "$arg" == --out=* ]] && out=(); done
exec build/fstm demo "${out[@]}" "$@"
