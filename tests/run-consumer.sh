#!/usr/bin/env bash
# Builds tests/consumer against this checkout as a Meson subproject and runs it.
# Usage: run-consumer.sh SOURCE_ROOT WORK_DIR
set -euo pipefail
source_root=$(cd "$1" && pwd)
work=$2
rm -rf "$work"
mkdir -p "$work/subprojects"
cp "$source_root"/tests/consumer/meson.build "$source_root"/tests/consumer/consumer.cpp "$work/"
ln -s "$source_root" "$work/subprojects/dgram"
# The consumer needs dgram's compiler and nothing else: no tests, examples or bench of dgram.
meson setup "$work/build" "$work" --native-file "$source_root/clang.ini" \
  -Ddgram:tests=false -Ddgram:examples=false -Ddgram:bench=false > "$work/setup.log" 2>&1 ||
  { cat "$work/setup.log"; exit 1; }
ninja -C "$work/build" > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
# Set up with GCC, the error must name the native file by its path in the consumer's tree.
if command -v g++ > /dev/null; then
  if CXX=g++ meson setup "$work/build-gcc" "$work" > "$work/setup-gcc.log" 2>&1; then
    echo "run-consumer: meson setup with g++ should have failed"; exit 1
  fi
  grep -q -- "--native-file subprojects/dgram/clang.ini" "$work/setup-gcc.log" ||
    { echo "run-consumer: the g++ setup error does not name subprojects/dgram/clang.ini:"; cat "$work/setup-gcc.log"; exit 1; }
fi
"$work/build/consumer"
