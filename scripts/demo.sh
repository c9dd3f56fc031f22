#!/usr/bin/env bash
# The demo: builds dgram, starts an echo server on a free localhost port, sends it a few lines with the
# client, prints what came back, and stops the server. Build dir: build/ (reused when present).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SKIP_INSTALL:-0}" = 1 ] || bash scripts/install-deps.sh
[ -d build/meson-private ] || meson setup build --native-file clang.ini > /dev/null
ninja -C build > /dev/null

server_out=$(mktemp)
server_err=$(mktemp)
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$server_out" "$server_err"' EXIT
build/examples/udp-echo-server --port 0 > "$server_out" 2> "$server_err" &
server=$!
for _ in $(seq 100); do grep -q '^listening on' "$server_out" && break; sleep 0.05; done
address=$(head -1 "$server_out"); address=${address#listening on }
echo "server: listening on $address"
port=${address##*:}
printf 'hello, dgram\nthe tutorial said: I hear you fashizzle!\n' |
  build/examples/udp-echo-client --port "$port" | sed 's/^/reply: /'
kill -TERM "$server"
wait "$server"
sed 's/^udp-echo-server: /server: /' "$server_err"
