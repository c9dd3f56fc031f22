#!/usr/bin/env bash
# The demo: builds dgram (with the optimized wolfSSL it builds from Debian's source), starts the DTLS echo server
# on a free localhost port with the test certificates, DTLS 1.3 with Connection IDs, sends it a few lines with
# the DTLS client (then again, resuming the session by ticket), prints what came back and what the server
# logged, and stops the server. Build dir: build/ (reused when present).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  echo "== installing the Debian packages dgram needs (about 30 s the first time)"
  bash scripts/install-deps.sh --no-test-peers   # (the peers of the interop tests: the test command's)
fi
if [ ! -d build/meson-private ]; then
  echo "== configuring build/ (meson, clang-19)"
  meson setup build --native-file clang.ini -Dwolfssl=optimized > /dev/null
fi
echo "== building wolfSSL 5.9.2 and the two programs of the demo (about two minutes on 2 cores the first time;" \
  "ninja counts the steps)"
# Only what the demo runs: `ninja -C build` builds the rest (tests included) when you want it.
ninja -C build examples/dtls-echo-server examples/dtls-echo-client | grep -v '^ninja: Entering directory' ||
  { echo "demo: the build failed" >&2; exit 1; }
echo "== the demo"

server_out=$(mktemp)
server_err=$(mktemp)
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$server_out" "$server_err"' EXIT
build/examples/dtls-echo-server --port 0 --cert certs/server-ecdsa.pem --key certs/server-ecdsa.key \
  --dtls 1.3 --cid > "$server_out" 2> "$server_err" &
server=$!
for _ in $(seq 100); do grep -q '^listening on' "$server_out" && break; sleep 0.05; done
address=$(head -1 "$server_out"); address=${address#listening on }
echo "server: DTLS 1.3 with Connection IDs, listening on $address (test certificate for localhost)"
printf 'hello, dgram\nthe tutorial said: I hear you fashizzle!\n' |
  build/examples/dtls-echo-client --port "${address##*:}" --ca certs/ca.pem --dtls 1.3 --cid --resume --verbose 2>&1 |
  sed 's/^session resumed/client: session resumed/; t; s/^dtls-echo-client: /client: /; t; s/^/reply: /'
kill -TERM "$server"
wait "$server"
sed 's/^dtls-echo-server: /server: /' "$server_err"
