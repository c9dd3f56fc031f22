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
"$work/build/consumer"
