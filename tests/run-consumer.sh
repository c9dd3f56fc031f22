#!/usr/bin/env bash
# Builds tests/consumer against this checkout as a Meson subproject and runs its programs: the UDP round trip,
# then the collector with a reporter that has a client certificate (served; the collector's session line names
# the certificate) and one without (refused), then SIGINT to the collector (exit 0).
# Usage: run-consumer.sh SOURCE_ROOT WORK_DIR
set -euo pipefail
source_root=$(cd "$1" && pwd)
work=$2
rm -rf "$work"
mkdir -p "$work/subprojects"
cp "$source_root"/tests/consumer/meson.build "$source_root"/tests/consumer/*.cpp "$work/"
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

certs=$source_root/certs
collector_log=$work/collector.log
# Its output through a FIFO: the test reads its first line ("listening on ...") as it comes, with a bound; the
# rest is read once it has exited (a few lines: far below a pipe's buffer).
mkfifo "$work/collector.out"
"$work/build/collector" "$certs" > "$work/collector.out" 2>&1 &
collector=$!
exec 3< "$work/collector.out"
# On every way out: the collector stopped, and what it said shown when something failed.
stop_collector() {
  local status=$?
  kill "$collector" 2> /dev/null || true
  wait "$collector" 2> /dev/null || true
  if [ "$status" -ne 0 ]; then
    echo "run-consumer: the collector's output:"
    timeout 5 cat <&3 || true
  fi
}
trap stop_collector EXIT
read -r -t 10 -u 3 first_line || { echo "run-consumer: no first line from the collector in 10 s"; exit 1; }
address=${first_line#listening on }
[ "$address" != "$first_line" ] || { echo "run-consumer: the collector did not start: $first_line"; exit 1; }
timeout 30 "$work/build/reporter" "$certs" "$address"
if timeout 30 "$work/build/reporter" "$certs" "$address" --anonymous 2> "$work/anonymous.log"; then
  echo "run-consumer: a reporter without a certificate was served"; exit 1
fi
cat "$work/anonymous.log"
grep -q "certificate required" "$work/anonymous.log" ||
  { echo "run-consumer: the anonymous reporter's failure does not say a certificate is required"; exit 1; }
kill -INT "$collector"
timeout 10 tail --pid="$collector" -f /dev/null || { echo "run-consumer: the collector did not stop on SIGINT"; exit 1; }
status=0
wait "$collector" || status=$?
timeout 5 cat <&3 > "$collector_log"
cat "$collector_log"
[ "$status" -eq 0 ] || { echo "run-consumer: the collector exited $status after SIGINT"; exit 1; }
grep -qE '^collector: session 127\.0\.0\.1:[0-9]+ \(certificate O=dgram test, CN=dgram test client \(SHA-256 [0-9a-f]{16}\.\.\.\)\) ended \(closed by the peer\): 5 readings$' "$collector_log" ||
  { echo "run-consumer: no session line naming the client certificate with 5 readings"; exit 1; }
grep -q '^collector: refused 127\.0\.0\.1:[0-9]* (certificate required)' "$collector_log" ||
  { echo "run-consumer: the collector did not report the anonymous reporter as refused"; exit 1; }
echo "run-consumer: collector and reporters behaved"
