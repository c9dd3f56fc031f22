#!/usr/bin/env bash
# Builds the optimized wolfSSL for -Dwolfssl=optimized; meson.build runs it as one custom_target, so ninja
# runs it only when its outputs are missing or this script changed (a reconfigure does not rebuild wolfSSL).
#
#   build-wolfssl.sh SOURCE_DIR OUT_DIR [PATCH_SET]
#
# SOURCE_DIR is the unpacked release with dgram's fixes (scripts/fetch-wolfssl.sh); PATCH_SET, the id of the
# release and those fixes, is not read here: meson passes it so that a new set changes this command and ninja runs it again.
# Everything is written under OUT_DIR: the build tree (OUT_DIR/wolfssl-build), the static library and headers
# (OUT_DIR/wolfssl-prefix), wolfSSL's example client and server (OUT_DIR/wolfssl-{client,server}: the DTLS 1.3
# peer of the interop tests, run from OUT_DIR/wolfssl-root) and OUT_DIR/wolfssl_built.h, the stamp the compiles
# that include wolfSSL's headers wait for. The full log is OUT_DIR/wolfssl-build.log.
#
# A finished build is also kept in ${XDG_CACHE_HOME:-~/.cache}/dgram/ (or $DGRAM_CACHE), keyed by this script,
# the release, dgram's fixes and the C compiler: another build directory of the same machine (the test
# command makes two) copies it instead of building again.
set -euo pipefail
source_dir=$(cd "$1" && pwd)
out=$(mkdir -p "$2" && cd "$2" && pwd)
build=$out/wolfssl-build
prefix=$out/wolfssl-prefix
log=$out/wolfssl-build.log

# What dgram uses and nothing else (a small attack surface), plus the assembly that makes it fast.
flags=(
  --enable-static --disable-shared --with-pic
  --enable-dtls --enable-dtls13 --enable-dtlscid --enable-dtls-frag-ch --enable-dtls-mtu
  --enable-session-ticket --enable-sessioncerts --enable-psk
  --enable-curve25519 --enable-ecc --enable-sp --enable-aesgcm --enable-chacha --enable-poly1305
  --enable-aesccm --enable-rpk                           # what devices run: CoAP's CCM-8 suites (RFC 7252),
                                                         # raw public keys (RFC 7250)
  --enable-mlkem --enable-pqc-hybrids                    # ML-KEM (FIPS 203) and the hybrid groups
                                                         # X25519MLKEM768, SECP256R1MLKEM768
  --enable-srtp --enable-keying-material                 # DTLS-SRTP (RFC 5764) and the exporter (RFC 5705)
  --enable-opensslextra                                  # the X509 helpers the engine uses to explain failures
  --enable-sp-asm --enable-intelasm --enable-aesni       # assembly crypto
  --enable-ip-alt-name --disable-crypttests --disable-benchmark --enable-examples
)
# Connection IDs of 8 bytes (wolfSSL's default maximum is 2). What the engine relies on that Debian's build
# also has: certificate names and IP addresses (ALT_NAMES), the peer's certificate kept after the handshake,
# the verify callback's access to its session (EX_DATA), alerts for more fatal errors, tickets with IDs.
cflags="-O2 -DDTLS_CID_MAX_SIZE=8 -DWOLFSSL_ALT_NAMES -DKEEP_PEER_CERT -DHAVE_EX_DATA -DWOLFSSL_EXTRA_ALERTS"
cflags+=" -DWOLFSSL_TICKET_HAVE_ID -DWOLFSSL_CERT_NAME_ALL"
# The static (non-ephemeral) PSK suites, PSK-AES128-CCM-8 and PSK-AES128-GCM-SHA256 among them: what CoAP and
# LwM2M devices offer. Without this wolfSSL drops them from a cipher list without a word.
cflags+=" -DWOLFSSL_STATIC_PSK"
# A ClientHello with more than 150 cipher suites is refused as malformed (BUFFER_E) at wolfSSL's default of 300
# bytes: Mbed TLS's default configuration offers 165. 512 bytes take 256 suites.
cflags+=" -DWOLFSSL_MAX_SUITE_SZ=512"
# The verify callback runs for the peer's certificate or raw public key also when wolfSSL finds nothing wrong:
# a raw public key (which wolfSSL takes without any check) is compared with the pinned keys there, inside the
# handshake, so a refused peer hears an alert instead of a completed handshake and a close.
cflags+=" -DWOLFSSL_ALWAYS_VERIFY_CB"
# A DTLS 1.3 server may answer a hello keyed by a pre-shared key it knows (a resumption ticket) without the
# HelloRetryRequest cookie round trip, per connection (wolfSSL_dtls13_no_hrr_on_resume): how dgram's
# DtlsConfig::resumption_skips_cookie works.
cflags+=" -DWOLFSSL_DTLS13_NO_HRR_ON_RESUME"
# Every session keeps its peer's certificate chain (SESSION_CERTS, so a resumed session still knows who the
# peer is) in a fixed array of MAX_CHAIN_DEPTH certificates of 2 KB each: 18 KB of a 37 KB idle session at
# wolfSSL's default of 9. Five (a leaf, three intermediates and a root) takes 8 KB less per session; a peer
# that sends a longer chain is refused with a line that says so. wolfSSL derives the largest handshake message
# it takes from the same number: kept at its default (9 certificates of 2 KB), so large chains and other large
# messages are read as before.
cflags+=" -DMAX_CHAIN_DEPTH=5 -DMAX_CERTIFICATE_SZ=18462"

# The C compiler: $CC, else cc (gcc, which install-deps.sh installs), else clang-19.
CC=${CC:-$(command -v cc || command -v gcc || command -v clang-19 || true)}
if [ -z "$CC" ]; then
  echo "building wolfSSL needs a C compiler: install gcc (scripts/install-deps.sh does)" >&2
  exit 1
fi
export CC
key=$( { cat "$0"; cat "$source_dir/.dgram-complete";   # (the release and dgram's fixes to it)
  "$CC" --version 2>/dev/null | head -1; } |
  sha256sum | cut -c1-16)
cache=${DGRAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dgram}/wolfssl-build-$key
outputs=(libwolfssl.a wolfssl-client wolfssl-server wolfssl-prefix wolfssl-root wolfssl_built.h)
if [ -f "$cache/wolfssl_built.h" ]; then
  rm -rf "$prefix" "$out/wolfssl-root"
  (cd "$cache" && cp -a "${outputs[@]}" "$out/")
  touch "$out/libwolfssl.a" "$out/wolfssl_built.h" "$out/wolfssl-client" "$out/wolfssl-server"   # newer than
  # this script and the source: ninja sees them up to date
  # The stamp says what happened here: a copy, not a build.
  version=$(sed 's|^// ||; s| built in .*||' "$cache/wolfssl_built.h")
  echo "// $version copied from $cache (built there before; no compile now)" > "$out/wolfssl_built.h"
  cat "$out/wolfssl_built.h"
  exit 0
fi

rm -rf "$build" "$prefix"
mkdir -p "$build"
started=$SECONDS
# (A subshell with each step chained: `set -e` does not apply inside a `||` list.)
(cd "$build" && echo "configure ${flags[*]} CFLAGS=$cflags" &&
  "$source_dir/configure" --prefix="$prefix" "${flags[@]}" CFLAGS="$cflags" &&
  make -j"$(nproc)" && make install) > "$log" 2>&1 || {
  echo "building wolfSSL failed; the last lines of $log:" >&2
  tail -25 "$log" >&2
  exit 1
}
cp "$prefix/lib/libwolfssl.a" "$out/libwolfssl.a"
cp "$build/examples/client/client" "$out/wolfssl-client"
cp "$build/examples/server/server" "$out/wolfssl-server"
# The examples look for ./certs/dh2048.pem from their working directory upwards (their "wolf root").
mkdir -p "$out/wolfssl-root/certs"
cp "$source_dir/certs/dh2048.pem" "$out/wolfssl-root/certs/"
echo "// wolfSSL $(sed -n 's/^#define LIBWOLFSSL_VERSION_STRING "\(.*\)"/\1/p' "$prefix/include/wolfssl/version.h") built in $((SECONDS - started)) s" \
  > "$out/wolfssl_built.h"
cat "$out/wolfssl_built.h"
# Into the cache atomically (a copy under another name, then one rename), so a half copy is never used.
if mkdir -p "$(dirname "$cache")" 2>/dev/null; then
  rm -rf "$cache.tmp.$$"
  mkdir "$cache.tmp.$$" && (cd "$out" && cp -a "${outputs[@]}" "$cache.tmp.$$/") &&
    mv -T "$cache.tmp.$$" "$cache" 2>/dev/null || rm -rf "$cache.tmp.$$"
fi
