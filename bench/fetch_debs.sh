#!/usr/bin/env bash
# Downloads the Debian packages that a GPU machine without network or -dev packages needs to build
# fstm, into .debs/ at the repository root, for bench/gpu_check.sh to unpack there (dpkg -x into a
# prefix, never into /). Run it on a Debian 12 machine with access to the Debian archive:
#
#   bench/fetch_debs.sh            # then carry .debs/ to the GPU machine with the working tree
#
# What the build needs from each (checked below with dpkg-deb -c):
#   googletest          GoogleTest sources (/usr/src/googletest): gpu_check.sh compiles them with the
#                       GPU machine's own compiler, so no prebuilt library has to match its libstdc++
#   libgtest-dev        headers + prebuilt static libs + CMake config (fallback)
#   libgmock-dev        gmock parts of the GTest CMake config (GTestConfig includes them when present)
#   nlohmann-json3-dev  header-only JSON (CMake config in /usr/share/cmake)
#   libcli11-dev        header-only CLI11 (CMake config in /usr/share/cmake)
#   libstb-dev          stb headers (/usr/include/stb); fstm compiles stb itself, libstb0 is not needed
#   libbenchmark-dev    Google Benchmark headers + CMake config, for bench/bench_cuda_ops
#   libbenchmark1debian the shared library libbenchmark-dev links to
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST="$ROOT/.debs"
PACKAGES=(googletest libgtest-dev libgmock-dev nlohmann-json3-dev libcli11-dev libstb-dev libbenchmark-dev
          libbenchmark1debian)
# file each package must contain (a check that the right package was fetched)
declare -A MUST_HAVE=(
  [googletest]=./usr/src/googletest/CMakeLists.txt
  [libgtest-dev]=./usr/include/gtest/gtest.h
  [libgmock-dev]=./usr/include/gmock/gmock.h
  [nlohmann-json3-dev]=./usr/include/nlohmann/json.hpp
  [libcli11-dev]=./usr/include/CLI/CLI.hpp
  [libstb-dev]=./usr/include/stb/stb_image.h
  [libbenchmark-dev]=./usr/include/benchmark/benchmark.h
  [libbenchmark1debian]=./usr/lib/x86_64-linux-gnu/libbenchmark.so.1
)

mkdir -p "$DEST"
cd "$DEST"
rm -f ./*.deb
if ! apt-get download "${PACKAGES[@]}"; then
  echo "apt-get download failed; run 'apt-get update' (as root) and try again" >&2
  exit 1
fi
for p in "${PACKAGES[@]}"; do
  deb=$(ls "${p}"_*.deb 2>/dev/null | head -n 1 || true)
  [[ -n "$deb" ]] || { echo "missing .deb for $p" >&2; exit 1; }
  listing=$(dpkg-deb -c "$deb")
  grep -qF " ${MUST_HAVE[$p]}" <<<"$listing" || { echo "$deb lacks ${MUST_HAVE[$p]}" >&2; exit 1; }
done
echo "downloaded into $DEST:"
ls -l "$DEST"/*.deb
du -sh "$DEST"
