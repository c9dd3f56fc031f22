#!/usr/bin/env bash
# Checks the build guarantees of the module build (docs/architecture.md, "Build") on a configured build dir:
#  1. an immediate second ninja does no work;
#  2. touching a module interface rebuilds its importers in one pass (and then nothing is left to do).
set -euo pipefail
build=$1
source_root=$(cd "$(dirname "$0")/.." && pwd)
ninja -C "$build" > /dev/null
if ! ninja -C "$build" -n | grep -q "no work to do"; then
  echo "check-build: a second ninja still has work to do:"; ninja -C "$build" -n -d explain 2>&1 | head -20
  exit 1
fi
importer="tests/test-endpoint.p/test_endpoint.cpp.o"
[ -f "$build/$importer" ] || { echo "check-build: $build/$importer missing (configure with -Dtests=true)"; exit 1; }
touch "$source_root/modules/dgram.endpoint.cppm"
planned=$(ninja -C "$build" -n -v)
for output in "-fmodule-output=dgram.endpoint.pcm" "-o $importer"; do
  if ! grep -q -- "$output" <<< "$planned"; then
    echo "check-build: touching dgram.endpoint.cppm does not rebuild $output"; exit 1
  fi
done
ninja -C "$build" > /dev/null
if ! ninja -C "$build" -n | grep -q "no work to do"; then
  echo "check-build: a second pass was needed after touching a module interface"; exit 1
fi
echo "check-build: no-op rebuild does nothing; an edited interface rebuilds its importers in one pass"
