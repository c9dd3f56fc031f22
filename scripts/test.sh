#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the Debian packages (and fetches the optimized wolfSSL's source),
# then
#   1. a warnings-as-errors build from scratch with -j2 (every variant) on the optimized wolfSSL (DTLS 1.3,
#      Connection IDs), the build guarantees, and every test;
#   2. the option matrix: raw UDP only, and UDP with blocking DTLS only on Debian's wolfSSL, each with its
#      tests; a variant asked for without its dependency stops meson setup with a clear line;
#   3. an AddressSanitizer + UndefinedBehaviorSanitizer build of every test on Debian's wolfSSL (the whole suite
#      on the system library: DTLS 1.2, and the DTLS 1.3 cases check the clear refusal), and a ThreadSanitizer
#      build of the suites where threads meet (event and threaded servers, servers under load) on the
#      optimized one;
#   4. the libFuzzer targets (tests/fuzz, built in the ASan build), each run for a bounded number of inputs
#      over its corpus.
# Ends with one line "N passed, N failed (in M min S s)". Build dirs: build-ci/, build-udp/, build-blocking/, build-asan/,
# build-tsan/ (reused when present).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SKIP_INSTALL:-0}" = 1 ] || bash scripts/install-deps.sh

passed=0
failed=0
stage() { echo "== $* (at $((SECONDS / 60)) min $((SECONDS % 60)) s)"; }
run_suite() {   # run_suite BUILD_DIR [meson test args...]
  local build=$1; shift
  local log="$build/meson-logs/testlog.txt"
  set +e
  meson test -C "$build" --print-errorlogs --num-processes 2 "$@"
  local status=$?
  set -e
  local ok fail
  ok=$(grep -E '^Ok:' "$log" | awk '{sum += $NF} END {print sum + 0}')
  fail=$(grep -E '^(Fail|Timeout|Unexpected Pass):' "$log" | awk '{sum += $NF} END {print sum + 0}')
  passed=$((passed + ${ok:-0}))
  failed=$((failed + fail))
  if [ $status -ne 0 ] && [ "$fail" -eq 0 ]; then failed=$((failed + 1)); fi
}

configure() {   # configure BUILD_DIR [meson options...]
  local build=$1; shift
  if [ -d "$build/meson-private" ]; then
    meson setup --reconfigure "$build" --native-file clang.ini "$@" > /dev/null
  else
    meson setup "$build" --native-file clang.ini "$@" > /dev/null
  fi
}

stage "strict build (-Dwerror=true, -j2)"
configure build-ci -Dwerror=true -Dwarning_level=3 -Dbench=true -Ddtls=enabled -Ddtls_nonblocking=enabled \
  -Ddtls_threaded=enabled -Dwolfssl=optimized
ninja -C build-ci -j2
bash scripts/check-build.sh build-ci
run_suite build-ci

stage "option matrix: raw UDP only; UDP and blocking DTLS on Debian's wolfSSL"
configure build-udp -Dwerror=true -Ddtls=disabled
ninja -C build-udp -j2
run_suite build-udp --no-suite consumer
configure build-blocking -Dwerror=true -Ddtls=enabled -Ddtls_nonblocking=disabled -Dwolfssl=system
ninja -C build-blocking -j2
run_suite build-blocking --no-suite consumer
bash scripts/check-options.sh

stage "AddressSanitizer + UndefinedBehaviorSanitizer build on Debian's wolfSSL (with the libFuzzer targets)"
configure build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug -Dfuzz=true \
  -Dwolfssl=system
ninja -C build-asan -j2
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
for symbolizer in /usr/bin/llvm-symbolizer-19 /usr/bin/llvm-symbolizer; do
  if [ -x "$symbolizer" ]; then export ASAN_SYMBOLIZER_PATH=$symbolizer; break; fi
done
run_suite build-asan --no-suite consumer

stage "ThreadSanitizer build on the optimized wolfSSL: the suites where threads meet"
# The event server (posted tasks, stop from other threads), the threaded server (workers, shared secrets and
# session cache, Connection ID forwarding between workers), the servers under load and the cluster (a threaded
# node handing forwarded records to its workers, drained by a signal); only their programs are built (the
# whole suite already ran twice).
configure build-tsan -Dwerror=true -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debug -Dwolfssl=optimized
tsan_suites=(dtls-event dtls-threaded dtls-server-load cluster)
ninja -C build-tsan -j2 tests/test-dtls-event tests/test-dtls-threaded tests/test-dtls-server-load \
  tests/dgram-cluster-client examples/dtls-echo-server examples/dtls-echo-client
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 run_suite build-tsan --no-rebuild "${tsan_suites[@]}"

stage "fuzz targets (libFuzzer, ASan, UBSan, built in build-asan): a bounded run of each over its corpus"
# Executions per target: the parsers take many, the engine targets (handshakes inside) fewer; all within ~2 min.
declare -A runs=([record]=200000 [endpoint_checksum]=200000 [listener]=3000 [pump]=4000 [established]=40000
                [server_endpoint]=3000)
for target in record endpoint_checksum listener pump established server_endpoint; do
  binary=build-asan/tests/fuzz/fuzz-${target//_/-}
  mkdir -p "build-asan/corpus/$target"   # new inputs go here, never into the committed corpus
  if "$binary" -runs="${runs[$target]}" -max_total_time=60 -artifact_prefix=build-asan/ "build-asan/corpus/$target" \
       "tests/fuzz/corpus/$target" > "build-asan/fuzz-$target.log" 2>&1; then
    echo "fuzz $target: $(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "build-asan/fuzz-$target.log")s, no crash"
    passed=$((passed + 1))
  else
    echo "fuzz $target FAILED:"; tail -30 "build-asan/fuzz-$target.log"
    failed=$((failed + 1))
  fi
done

echo "$passed passed, $failed failed (in $((SECONDS / 60)) min $((SECONDS % 60)) s)"
[ "$failed" -eq 0 ]
