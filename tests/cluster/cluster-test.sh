#!/usr/bin/env bash
# The cluster tests: three dtls-echo-server nodes in their own network namespaces behind an nftables balancer
# (kube-proxy's UDP balancing: DNAT by `jhash ip saddr . udp sport mod 3` to a map of nodes), clients in another
# namespace, and the cases a cluster must get right (docs/deploy.md):
#   300 clients with every echo right; a ticket from one node resuming on another (DTLS 1.2 and 1.3); clients
#   that move to a new source port mid-session, which the balancer hashes to other nodes, keeping their sessions
#   through forwarding; forged forwards refused; one node drained mid-traffic with no echo lost and its cut
#   sessions resumed elsewhere; cookie and ticket keys rotating (2 s and 6 s periods) without a failed handshake,
#   and a ticket sealed in one period resuming in the next.
#
# Usage: cluster-test.sh DTLS_ECHO_SERVER DGRAM_CLUSTER_CLIENT CERTS_DIR
# Needs root (network namespaces, veth, nftables): otherwise it says so and exits 77, which meson reports as a
# skipped test. Touches nothing outside the namespaces it makes (names dgc<pid>-*), which it deletes on every
# exit path, with every process it started.
set -euo pipefail

server=$1
client=$2
certs=$3

skip() {
  echo "SKIP cluster: $1"
  exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, veth pairs and an nftables balancer)"
command -v ip > /dev/null || skip "needs ip (iproute2)"
command -v nft > /dev/null || skip "needs nft (the nftables package)"
command -v python3 > /dev/null || skip "needs python3 (to send the forged forwards)"

# Namespaces a run killed with SIGKILL (no trap ran) left behind: theirs, when that run's process is gone.
for stale in $(ip netns list | grep -o '^dgc[0-9]*-[a-z0-9]*'); do
  owner=${stale%%-*}
  [ -d "/proc/${owner#dgc}" ] && continue
  ip netns pids "$stale" 2> /dev/null | xargs -r kill -KILL 2> /dev/null || true
  ip netns delete "$stale" 2> /dev/null || true
done

tag="dgc$$"
work=$(mktemp -d)
namespaces=()
pids=()

cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2> /dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2> /dev/null || true; done
  local name
  for name in "${namespaces[@]}"; do   # (anything still running in one is ours: a namespace outlives no process)
    ip netns pids "$name" 2> /dev/null | xargs -r kill -KILL 2> /dev/null || true
    ip netns delete "$name" 2> /dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() {
  local name=$1
  shift
  ip netns exec "$tag-$name" "$@"
}

fail() {   # (on stderr: it may run inside a command substitution)
  {
    echo "FAIL: $*"
    local log
    for log in "$work"/*.err; do
      [ -f "$log" ] || continue
      echo "--- last lines of $(basename "$log")"
      tail -n 5 "$log"
    done
  } >&2
  exit 1
}

# Waits (at most $2 tenths of a second) until the command in $3... succeeds.
wait_for() {
  local what=$1 tenths=$2
  shift 2
  local i
  for ((i = 0; i < tenths; i++)); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  fail "$what did not happen within $((tenths / 10)) s"
}

# ---- The network ------------------------------------------------------------------------------------------
#   clients 10.201.2.1 --- balancer 10.201.2.254 | 10.201.1.254 (bridge) --- nodes 10.201.1.10, .11, .12
# Clients write to the service address 10.201.0.1:4433, which the balancer rewrites to a node; a node's
# replies pass back through the balancer, whose connection tracking gives them the service address again.
cookie_period=2   # short, so that keys rotate while the cases run
ticket_period=6
vip=10.201.0.1
port=4433
node_ips=(10.201.1.10 10.201.1.11 10.201.1.12)
cluster_nodes="${node_ips[0]}:7000,${node_ips[1]}:7000,${node_ips[2]}:7000"

make_network() {
  local name
  for name in lb cl n0 n1 n2; do
    ip netns add "$tag-$name" || skip "cannot create a network namespace here"
    namespaces+=("$tag-$name")
    ip -n "$tag-$name" link set lo up
  done
  ip -n "$tag-lb" link add br0 type bridge
  ip -n "$tag-lb" address add 10.201.1.254/24 dev br0
  ip -n "$tag-lb" link set br0 up
  local i
  for i in 0 1 2; do
    ip -n "$tag-lb" link add "n$i" type veth peer name eth0 netns "$tag-n$i"
    ip -n "$tag-lb" link set "n$i" master br0 up
    ip -n "$tag-n$i" address add "${node_ips[$i]}/24" dev eth0
    ip -n "$tag-n$i" link set eth0 up
    ip -n "$tag-n$i" route add default via 10.201.1.254
  done
  ip -n "$tag-lb" link add cl type veth peer name eth0 netns "$tag-cl"
  ip -n "$tag-lb" address add 10.201.2.254/24 dev cl
  ip -n "$tag-lb" link set cl up
  ip -n "$tag-cl" address add 10.201.2.1/24 dev eth0
  ip -n "$tag-cl" link set eth0 up
  ip -n "$tag-cl" route add default via 10.201.2.254
  in_ns lb sysctl -qw net.ipv4.ip_forward=1
  in_ns lb nft -f - << EOF
table ip balancer {
  map nodes {
    typeof numgen inc mod 3 : ip daddr
    elements = { 0 : ${node_ips[0]}, 1 : ${node_ips[1]}, 2 : ${node_ips[2]} }
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr $vip udp dport $port dnat to jhash ip saddr . udp sport mod 3 map @nodes
  }
}
EOF
}

# ---- The nodes --------------------------------------------------------------------------------------------

start_node() {
  local i=$1
  shift
  # (ip netns exec, not in_ns: $! must be the server itself, which the drain test signals.)
  ip netns exec "$tag-n$i" "$server" "$@" --bind "${node_ips[$i]}" --port "$port" \
    --cert "$certs/server-ecdsa.pem" --key "$certs/server-ecdsa.key" --dtls any --cid \
    --cluster-key "$work/cluster.key" --node "$i" --cluster-nodes "$cluster_nodes" \
    --cookie-rotation-s "$cookie_period" --ticket-rotation-s "$ticket_period" --drain-timeout-ms 2000 --health-file "$work/node$i.health" \
    --idle-timeout-ms 30000 --stats-interval-ms 500 > "$work/node$i.out" 2> "$work/node$i.err" &
  pids+=($!)
  node_pids[$i]=$!
  wait_for "node $i listening" 100 grep -q "listening on" "$work/node$i.out"
}

# The count before "$2" (e.g. "records forwarded to their node") in node $1's closing line; fails the test when
# the line or the count is missing (a changed format must not read as zero).
count_of() {
  local value
  value=$(grep "served" "$work/node$1.err" | tail -n 1 | grep -o "[0-9][0-9]* $2" | head -n 1 | cut -d' ' -f1)
  [ -n "$value" ] || fail "node $1's closing line has no count of '$2'"
  echo "$value"
}
sum_of() {
  local total=0 n value
  for n in 0 1 2; do
    value=$(count_of "$n" "$1") || exit 1
    total=$((total + value))
  done
  echo "$total"
}

run_clients() {   # name, then dgram-cluster-client's options; prints its line, fails the test when it fails
  local name=$1
  shift
  # (In the background with wait: a TERM from the test runner is acted on at once, not when the clients end.)
  in_ns cl "$client" --ca "$certs/ca.pem" --host "$vip" --port "$port" "$@" > "$work/clients.out" 2>&1 &
  pids+=($!)
  if ! wait $!; then
    cat "$work/clients.out"
    fail "$name"
  fi
  last_line=$(grep "^clients=" "$work/clients.out")
  echo "ok: $name: $last_line"
}

field() { echo "$last_line" | grep -o "$1=[0-9,:]*" | head -n 1 | cut -d= -f2; }

# ---- The cases --------------------------------------------------------------------------------------------

(umask 077 && openssl rand -hex 32 > "$work/cluster.key")
started=$(date +%s)
make_network
declare -a node_pids
start_node 0 --mode event
start_node 1 --mode threaded --workers 2   # (the one drained: its workers stop together)
start_node 2 --mode event

run_clients "300 clients through the balancer, 3 echoes each (DTLS 1.3)" --clients 300 --messages 3
[ "$(field nodes | tr ',' '\n' | wc -l)" -eq 3 ] || fail "the balancer did not spread 300 clients over 3 nodes"

for version in 1.2 1.3; do
  run_clients "a ticket from one node resumes on another (DTLS $version)" --dtls "$version" --clients 20 \
    --messages 1 --resume-elsewhere
  [ "$(field resumed_elsewhere)" -eq 20 ] || fail "not every client resumed on another node (DTLS $version)"
done

for version in 1.2 1.3; do
  run_clients "a ticket sealed with one period's key resumes in the next, on another node (DTLS $version)" \
    --dtls "$version" --clients 20 --messages 1 --resume-elsewhere --resume-after-period-s "$ticket_period"
  [ "$(field resumed_elsewhere)" -eq 20 ] || fail "not every client resumed in the next ticket period (DTLS $version)"
done

for version in 1.3 1.2; do
  run_clients "clients that move to a new source port keep their sessions (DTLS $version)" --dtls "$version" \
    --clients 40 --messages 4 --move-after 2
  [ "$(field moved)" -eq 40 ] || fail "not every client moved (DTLS $version)"
done

# Forged forwards from the node network: a client's record and a reply, both with a MAC of zeros.
# (Header: magic, kind, node 1, IPv4, port 10000, 10.201.2.1; then 60 bytes that end in the "MAC"; one datagram
# each.)
for kind in 01 02; do
  in_ns lb python3 -c 'import socket, sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(bytes.fromhex(sys.argv[1]), (sys.argv[2], 7000))' \
    "64676331${kind}0001042710$(printf '0ac90201%024d' 0)$(printf '%0120d' 0)" "${node_ips[0]}"
done

# One node drained mid-traffic: its health file goes, the balancer (this script, as a health check would)
# sends new flows elsewhere, its sessions are served until they end or 2 s pass, then cut; the cut clients
# reconnect from a new port with their tickets and resume on another node.
before_drain=$(wc -l < "$work/node1.err")
ip netns exec "$tag-cl" "$client" --ca "$certs/ca.pem" --host "$vip" --port "$port" --clients 90 --messages 16 --stagger \
  --interval-ms 250 --reconnect-on-close > "$work/drain-clients.out" 2>&1 &
drain_clients=$!
pids+=($drain_clients)
# (Every client established first: a handshake still under way at the drain's deadline would be cut too.)
all_established() { grep -q "all 90 clients established" "$work/drain-clients.out"; }
wait_for "the drain test's clients established" 300 all_established
node1_serving() { tail -n "+$((before_drain + 1))" "$work/node1.err" | grep "stats" | tail -n 1 | grep -q "sessions open [1-9]"; }
wait_for "node 1 serving the drain test's clients" 100 node1_serving
kill -TERM "${node_pids[1]}"
health_gone() { [ ! -e "$work/node1.health" ]; }
wait_for "node 1's health file going" 50 health_gone
in_ns lb nft "delete element ip balancer nodes { 1 }; add element ip balancer nodes { 1 : ${node_ips[0]} }"
node1_done() { ! kill -0 "${node_pids[1]}" 2> /dev/null; }
wait_for "node 1 ending its drain" 100 node1_done
wait "${node_pids[1]}" || fail "node 1 exited with $? after draining"
if ! wait "$drain_clients"; then
  cat "$work/drain-clients.out"
  fail "the clients of the drain test"
fi
last_line=$(grep "^clients=" "$work/drain-clients.out")
echo "ok: one node drained mid-traffic: $last_line"
drained=$(grep "drained:" "$work/node1.err") || fail "node 1 printed no drain summary"
echo "    node 1: ${drained#dtls-echo-server: }"
[ "$(field reconnected)" -ge 1 ] || fail "no session was cut at the drain deadline (the test did not test it)"
[ "$(field reconnect_resumed)" -eq "$(field reconnected)" ] || fail "a cut session did not resume elsewhere"
echo "$drained" | grep -q "drained: [1-9][0-9]* sessions\? ended in time" || fail "no session ended within the drain"

# The rest stop; their closing lines say what crossed the cluster, and that rotation failed no handshake.
kill -INT "${node_pids[0]}" "${node_pids[2]}"
wait "${node_pids[0]}" || fail "node 0 exited with $?"
wait "${node_pids[2]}" || fail "node 2 exited with $?"
forwarded=$(sum_of "records forwarded to their node")
through=$(sum_of "replies sent back through other nodes")
refused=$(count_of 0 "refused (bad MAC")
failed=$(sum_of "failed handshake")
bad_cookies=$(sum_of "bad cookie")
echo "ok: across the cluster: $forwarded records forwarded to their node, $through replies back through the node" \
  "they came in by; ${refused:-0} forged forwards refused; $failed failed handshakes, $bad_cookies bad cookies"
[ "$forwarded" -ge 1 ] || fail "no moved client's record crossed to its node (the move test did not test it)"
[ "$through" -ge 1 ] || fail "no reply went back through the node a client came in by"
[ "${refused:-0}" -eq 2 ] || fail "node 0 refused ${refused:-0} forwards, not the 2 forged ones"
[ "$failed" -eq 0 ] || fail "$failed handshakes failed while keys rotated"
[ "$bad_cookies" -eq 0 ] || fail "$bad_cookies cookies failed while keys rotated"
ended=$(date +%s)
cookie_rotations=$((ended / cookie_period - started / cookie_period))
ticket_rotations=$((ended / ticket_period - started / ticket_period))
echo "ok: while the cases ran ($((ended - started)) s) cookie keys rotated $cookie_rotations times and ticket keys" \
  "$ticket_rotations times, with no failed handshake"
[ "$cookie_rotations" -ge 2 ] && [ "$ticket_rotations" -ge 1 ] || fail "the keys did not rotate during the test"
echo "PASS cluster"
