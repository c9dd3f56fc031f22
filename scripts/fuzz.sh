#!/usr/bin/env bash
# Runs the libFuzzer targets: scripts/fuzz.sh [TARGET|all] [SECONDS]   (default: all, 60 s each)
# Builds build-fuzz/ (clang -fsanitize=fuzzer,address,undefined) when needed, fuzzes each target on all cores
# from its committed corpus (tests/fuzz/corpus/TARGET; new inputs go to build-fuzz/corpus/TARGET), and prints
# executions/s and coverage. A crash leaves its input as build-fuzz/crash-*: add it to the corpus as a
# regression input once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-all}
seconds=${2:-60}
[ -d build-fuzz/meson-private ] || meson setup build-fuzz --native-file clang.ini -Dfuzz=true \
  -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug -Dexamples=false -Dtests=false > /dev/null
ninja -C build-fuzz > /dev/null
all_targets=(record endpoint_checksum listener pump established server_endpoint)
targets=("${all_targets[@]}")
[ "$target" = all ] || targets=("$target")
for name in "${targets[@]}"; do
  binary=$PWD/build-fuzz/tests/fuzz/fuzz-${name//_/-}
  [ -x "$binary" ] || { echo "fuzz.sh: no target '$name' (have: ${all_targets[*]})" >&2; exit 2; }
  mkdir -p "build-fuzz/corpus/$name"
  echo "== $name, $seconds s on $(nproc) cores"
  # Run inside build-fuzz/: with -jobs, libFuzzer writes a fuzz-N.log per job into the current directory.
  (cd build-fuzz && "$binary" -max_total_time="$seconds" -jobs="$(nproc)" -workers="$(nproc)" -print_final_stats=1 \
    -artifact_prefix=./ "corpus/$name" "../tests/fuzz/corpus/$name" > "fuzz-$name.log" 2>&1 || true)
  cat build-fuzz/fuzz-[0-9]*.log 2>/dev/null | grep -E "stat::number_of_executed_units|stat::average_exec_per_sec" |
    awk '{sum[$1] += $2} END {for (k in sum) print k, sum[k]}'
  grep -hE "DONE .*cov:" build-fuzz/fuzz-[0-9]*.log 2>/dev/null | tail -1
  if grep -qE "ERROR: |SUMMARY: " build-fuzz/fuzz-[0-9]*.log 2>/dev/null; then
    grep -hE "ERROR: |SUMMARY: " build-fuzz/fuzz-[0-9]*.log; echo "fuzz.sh: $name crashed; the input is build-fuzz/crash-*"; exit 1
  fi
  rm -f build-fuzz/fuzz-[0-9]*.log
done
