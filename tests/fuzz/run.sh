#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each one: first over its regression
# inputs (regressions/<target>/, files that once crashed it), then fuzzing from its corpus.
#
#   tests/fuzz/run.sh                    # every target for 30 s (what tests/run.sh does in CI)
#   tests/fuzz/run.sh --seconds 600      # longer
#   tests/fuzz/run.sh --runs 1000000     # a fixed number of executions per target (README table)
#   tests/fuzz/run.sh image video        # some targets only
# Options: --build DIR (default build-fuzz), --table FILE (also write the results table there).
#
# The corpus grows in DIR/corpus/<target> (seeded from corpus/<target> here) and is kept between
# runs. A crash, leak, sanitizer report, timeout (10 s) or allocation over 2 GB stops that target,
# leaves the input in DIR/artifacts/<target>/, and makes the script exit 1 after the table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build-fuzz
budget=(-max_total_time=30)
table=""
targets=()
while (($#)); do
  case $1 in
    --seconds) budget=(-max_total_time="$2"); shift 2 ;;
    --runs) budget=(-runs="$2"); shift 2 ;;
    --build) build=$(realpath -m "$2"); shift 2 ;;
    --table) table=$(realpath -m "$2"); shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "tests/fuzz/run.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all=(safetensors checkpoint_metadata face_index landmarks image video ffpp_scan)
((${#targets[@]})) || targets=("${all[@]}")

mkdir -p "$build"
command -v clang++ >/dev/null || { echo "tests/fuzz/run.sh: clang++ not found (apt-get install clang)" >&2; exit 1; }
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFSTM_FUZZ=ON \
  -DFSTM_CUDA=OFF -DFSTM_ONEDNN=OFF -DFSTM_DLIB=OFF -DFSTM_BUILD_TESTS=OFF -DFSTM_BUILD_BENCH=OFF >"$build/configure.log" \
  || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" --target fuzz -j "${FSTM_JOBS:-$(nproc)}"

dict_of() {
  case $1 in
    safetensors) echo "$here/safetensors.dict" ;;
    ffpp_scan) echo "$here/ffpp_scan.dict" ;;
    image|video) ;;
    *) echo "$here/json.dict" ;;
  esac
}

count_files() { if [[ -d $1 ]]; then find "$1" -maxdepth 1 -type f | wc -l; else echo 0; fi; }

failed=0
rows=()
for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/fuzz_$t
  [[ -x $bin ]] || { echo "tests/fuzz/run.sh: no target '$t' (targets: ${all[*]})" >&2; exit 2; }
  corpus=$build/corpus/$t artifacts=$build/artifacts/$t log=$build/logs/$t.log
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  cp -n "$here/corpus/$t/"* "$corpus/" 2>/dev/null || true
  common=(-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -artifact_prefix="$artifacts/")
  status=ok
  if compgen -G "$here/regressions/$t/*" >/dev/null; then
    "$bin" "${common[@]}" "$here/regressions/$t/"* >"$build/logs/$t.regressions.log" 2>&1 \
      || { status="REGRESSION (see $build/logs/$t.regressions.log)"; failed=1; }
  fi
  dict=$(dict_of "$t")
  echo "== fuzz_$t ${budget[*]}"
  "$bin" "${common[@]}" "${budget[@]}" -print_final_stats=1 ${dict:+-dict="$dict"} "$corpus" >"$log" 2>&1 \
    || { [[ $status == ok ]] && status="CRASH (input in $artifacts, log $log)"; failed=1; }
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  edges=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2 || true)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  rows+=("| $t | ${execs:-?} | ${rate:-?} | ${edges:-?} | $(count_files "$corpus") | $(count_files "$here/regressions/$t") | $status |")
done

{
  echo "| target | executions | exec/s | coverage (edges) | corpus | crashes found and fixed (regressions/) | result |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee ${table:+"$table"}
exit $failed
