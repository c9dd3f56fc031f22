#!/usr/bin/env bash
# Makes ready the foreign DTLS peers of the interop tests, besides OpenSSL and GnuTLS (Debian packages):
#
# - Mbed TLS's test programs ssl_client2 and ssl_server2, built from Debian trixie's `mbedtls` source package
#   (3.6.x, Debian's patches, Mbed TLS's default configuration: DTLS 1.2, PSK, CCM-8, GCM, RFC 9146 Connection
#   IDs, resumption), linked at subprojects/peers/bin/mbedtls-ssl-{client2,server2}. Debian ships no binaries of
#   these programs, hence the build: only the library and the two programs, with make (~30 s on 2 cores), into
#   ${XDG_CACHE_HOME:-~/.cache}/dgram/mbedtls-VERSION/ (or $DGRAM_CACHE/...), so once per machine.
# - node-dtls-client (a DTLS 1.2 PSK client written in JavaScript) and werift-dtls (the DTLS of a WebRTC stack in
#   TypeScript: DTLS-SRTP), at the exact versions and integrity hashes of tests/peers/node/package-lock.json,
#   installed there by `npm ci`; tests/peers/node/psk-echo-client.mjs and srtp-client.mjs use them.
#
# Safe to run again: what is ready is kept (a second run takes well under a second). Needs apt-get, dpkg-dev,
# gcc, make and perl for Mbed TLS, node and npm for node-dtls-client (scripts/install-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

# Absolute: the links in subprojects/peers/bin point into it.
cache_root=$(realpath -m "${DGRAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dgram}")
bin=subprojects/peers/bin

fail() {
  echo "fetch-peers: $*" >&2
  exit 1
}

# ---- Mbed TLS ----------------------------------------------------------------------------------------------------
mbedtls_version_wanted=3.6   # the LTS branch the tests are written for; trixie follows its bug-fix releases
# What the tests use, all in Mbed TLS's default configuration: checked in the built program (query_config) so that
# a later default that drops one fails here, not as an obscure handshake failure in a test.
mbedtls_needed=(
  MBEDTLS_SSL_PROTO_TLS1_2 MBEDTLS_SSL_PROTO_DTLS MBEDTLS_SSL_DTLS_HELLO_VERIFY MBEDTLS_SSL_DTLS_ANTI_REPLAY
  MBEDTLS_SSL_DTLS_CONNECTION_ID MBEDTLS_KEY_EXCHANGE_PSK_ENABLED MBEDTLS_CCM_C MBEDTLS_GCM_C
  MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA_ENABLED MBEDTLS_KEY_EXCHANGE_ECDHE_RSA_ENABLED MBEDTLS_X509_CRT_PARSE_C
  MBEDTLS_PEM_PARSE_C MBEDTLS_SSL_SESSION_TICKETS MBEDTLS_SSL_TICKET_C MBEDTLS_SSL_CACHE_C MBEDTLS_SSL_COOKIE_C
)

# A folder holding both programs, each runnable.
mbedtls_complete() {
  [ -x "$1/ssl_client2" ] && [ -x "$1/ssl_server2" ] && "$1/ssl_client2" query_config=MBEDTLS_SSL_PROTO_DTLS > /dev/null
}

# The newest complete build of the wanted branch already in the cache (any trixie revision will do: the tests need
# the features above, not one bug-fix release), or nothing.
mbedtls_cached_build() {
  local dir
  # (ls, not find: the names are Debian versions, without spaces.)
  # shellcheck disable=SC2012
  for dir in $(ls -d "$cache_root/mbedtls-$mbedtls_version_wanted".* "$cache_root/mbedtls-$mbedtls_version_wanted"-* \
      2> /dev/null | sort -rV); do
    if mbedtls_complete "$dir"; then echo "$dir"; return; fi
  done
}

# Builds trixie's mbedtls into $cache_root/mbedtls-VERSION and prints that folder's path.
mbedtls_build() {
  local tool work src version out staged log=$cache_root/mbedtls-trixie/build.log
  for tool in gcc make perl dpkg-parsechangelog; do
    command -v "$tool" > /dev/null ||
      fail "'$tool' is missing to build Mbed TLS's test programs: install gcc, make, perl and dpkg-dev" \
        "(scripts/install-deps.sh does)"
  done
  mkdir -p "$cache_root/mbedtls-trixie"
  # A build folder private to this run (two runs at once do not share a tree), removed whatever happens; only
  # the two programs are kept.
  work=$(mktemp -d "$cache_root/mbedtls-trixie/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  src=$work/src
  DGRAM_FETCH_NAME=fetch-peers bash scripts/fetch-debian-source.sh mbedtls "$mbedtls_version_wanted" "$src" >&2
  version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
  version=${version#*:}
  out=$cache_root/mbedtls-$version
  echo "building Mbed TLS $version's ssl_client2 and ssl_server2 (log: $log)" >&2
  # Make, not CMake: only the library and the two programs (CMake would configure and build the whole tree and
  # its test suites). CC=gcc: the Makefiles default to `cc`, which a machine need not have. Perl generates
  # programs/test/query_config.c; the release tarball has every other generated file.
  if ! { make -j2 -C "$src/library" CC=gcc && make -C "$src/programs" CC=gcc ssl/ssl_client2 ssl/ssl_server2; } \
      > "$log" 2>&1; then
    tail -n 20 "$log" >&2
    fail "building Mbed TLS failed; see $log"
  fi
  local missing=() option
  for option in "${mbedtls_needed[@]}"; do
    "$src/programs/ssl/ssl_client2" query_config="$option" > /dev/null 2>&1 || missing+=("$option")
  done
  # RFC 9146's Connection IDs (what wolfSSL speaks), not the draft's record format that COMPAT=1 selects.
  [ "$("$src/programs/ssl/ssl_client2" query_config=MBEDTLS_SSL_DTLS_CONNECTION_ID_COMPAT 2> /dev/null)" = 0 ] ||
    missing+=("MBEDTLS_SSL_DTLS_CONNECTION_ID_COMPAT=0")
  if [ ${#missing[@]} -ne 0 ]; then
    fail "Mbed TLS $version's default configuration lacks ${missing[*]}: set them with" \
      "scripts/config.py before the build, here"
  fi
  # The programs link Mbed TLS statically (the Makefiles' default), so they can move. Copied beside the final
  # folder, then renamed: a folder named mbedtls-VERSION is always complete.
  staged=$(mktemp -d "$cache_root/.mbedtls-$version.XXXXXX")
  cp "$src/programs/ssl/ssl_client2" "$src/programs/ssl/ssl_server2" "$staged/"
  rm -rf "$out"
  mv "$staged" "$out"
  rm -rf "$work"
  trap - EXIT
  echo "$out"
}

client_link=$bin/mbedtls-ssl-client2
server_link=$bin/mbedtls-ssl-server2
if [ -L "$client_link" ] && [ -L "$server_link" ] &&
    [ "$(dirname "$(readlink "$client_link")")" = "$(dirname "$(readlink "$server_link")")" ] &&
    mbedtls_complete "$(dirname "$(readlink "$client_link")")"; then
  mbedtls_dir=$(dirname "$(readlink "$client_link")")
  mbedtls_how="already built"
else
  mbedtls_dir=$(mbedtls_cached_build)
  mbedtls_how="built before on this machine"
  if [ -z "$mbedtls_dir" ]; then
    mbedtls_dir=$(mbedtls_build)
    mbedtls_how="built now"
  fi
  mkdir -p "$bin"
  # Symbolic links to the cache: the programs stay in one place per machine, whatever the number of checkouts.
  ln -sfn "$mbedtls_dir/ssl_client2" "$client_link"
  ln -sfn "$mbedtls_dir/ssl_server2" "$server_link"
fi
echo "Mbed TLS peers: $client_link, $server_link (mbedtls ${mbedtls_dir##*/mbedtls-}, $mbedtls_how)"

# ---- node-dtls-client --------------------------------------------------------------------------------------------
node_dir=tests/peers/node
for tool in node npm; do
  command -v "$tool" > /dev/null ||
    fail "'$tool' is missing for the node-dtls-client peer: install Debian's nodejs and npm" \
      "(scripts/install-deps.sh does)"
done
# node-dtls-client 2.x declares Node.js >= 22 but runs on Debian 12's 18 and on 20 (its code uses nothing newer);
# older ones lack what its ES modules use.
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] || fail "node $(node --version) is too old for node-dtls-client: 18 or newer is needed"

# What was installed, recorded after a complete `npm ci`: the lockfile's hash and node's version. While both
# match, the installed tree is the locked one and is kept.
stamp=$node_dir/node_modules/.dgram-installed
wanted_stamp="$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1) node-$(node --version)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted_stamp" ] &&
    [ -f "$node_dir/node_modules/node-dtls-client/package.json" ] &&
    [ -f "$node_dir/node_modules/werift-dtls/package.json" ]; then
  node_how="already installed"
else
  # npm ci installs exactly the lockfile, checks every tarball against its integrity hash, and fails when
  # package.json and the lockfile disagree. --ignore-scripts: nothing here needs an install script, so none of a
  # dependency's runs. --omit=optional: node-dtls-client's optional node-aead-crypto (native AEAD) is only loaded
  # on Node.js < 10. (package.json overrides it with its linux-x64 build, which has no dependencies: 11 of its
  # 13 platform builds are not on the registry this workplace reaches, so `npm install` leaves them out of the
  # lockfile, and npm ci then refuses that lockfile as out of sync.) --engine-strict=false: the declared
  # Node.js 22 is not a real need (above).
  npm_log=$(mktemp)
  if ! npm ci --prefix "$node_dir" --ignore-scripts --omit=optional --engine-strict=false --no-audit --no-fund \
      --loglevel=error > "$npm_log" 2>&1; then
    cat "$npm_log" >&2
    rm -f "$npm_log"
    fail "npm ci in $node_dir failed (above)"
  fi
  rm -f "$npm_log"
  echo "$wanted_stamp" > "$stamp"
  node_how="installed now"
fi
# The module must load on this node, not only be on disk.
(cd "$node_dir" && node --input-type=module \
  -e 'import { dtls } from "node-dtls-client"; if (typeof dtls.createSocket !== "function") process.exit(1);') ||
  fail "node-dtls-client does not load with node $(node --version); see the error above"
(cd "$node_dir" && node -e 'const { DtlsClient } = require("werift-dtls/lib/dtls/src/index.js");
  if (typeof DtlsClient !== "function") process.exit(1);') ||
  fail "werift-dtls does not load with node $(node --version); see the error above"
ndc_version=$(node -p 'require("./'"$node_dir"'/node_modules/node-dtls-client/package.json").version')
werift_version=$(node -p 'require("./'"$node_dir"'/node_modules/werift-dtls/package.json").version')
echo "node peers: $node_dir/psk-echo-client.mjs, srtp-client.mjs (node-dtls-client $ndc_version, werift-dtls" \
  "$werift_version, node $(node --version), $node_how)"
