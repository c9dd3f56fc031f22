#!/usr/bin/env bash
# Installs what dgram needs to build, test and run its demos on Debian 12 (bookworm), unpacks the source of
# the optimized wolfSSL (scripts/fetch-wolfssl.sh: the release kept in the repository, verified first) and
# fetches the peers of the interop tests (scripts/fetch-peers.sh: Mbed TLS's test programs, node-dtls-client),
# unless --no-test-peers. Safe to run again.
set -euo pipefail
test_peers=1
case "${1:-}" in
  --no-test-peers) test_peers=0 ;;
  "") ;;
  *) echo "usage: install-deps.sh [--no-test-peers]" >&2; exit 2 ;;
esac
packages=(
  clang-19 libclang-rt-19-dev llvm-19 meson ninja-build pkg-config   # toolchain (clang-19: C++20 modules;
                                                                    # llvm-19 symbolizes sanitizer reports)
  libwolfssl-dev libmsgsl-dev catch2 libfmt-dev              # libraries
  openssl gnutls-bin tshark                                   # foreign peers and checkers for the tests
  perl                                                        # (with gcc and make) Mbed TLS's test programs
  autoconf automake libtool gcc make patch gpgv              # the optimized wolfSSL from its verified release
                                                              # (clang-19 satisfies libtool's C compiler, so gcc
                                                              # would not come by itself)
  dpkg-dev                                                    # Debian source packages of the test peers
  iproute2 nftables                                           # the cluster tests: network namespaces and a
                                                              # balancer (tests/cluster/cluster-test.sh)
)
sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; the tests only read files, so no.
echo "wireshark-common wireshark-common/install-setuid boolean false" | "${sudo[@]}" debconf-set-selections
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" > /dev/null
bash "$(dirname "$0")/fetch-wolfssl.sh"
if [ "$test_peers" = 1 ]; then
  # node and npm run node-dtls-client. Only when missing: a machine may have its own Node.js (not Debian's),
  # which Debian's npm package would replace.
  if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends nodejs npm > /dev/null
  fi
  bash "$(dirname "$0")/fetch-peers.sh"   # Mbed TLS's ssl_client2/ssl_server2, node-dtls-client
fi
