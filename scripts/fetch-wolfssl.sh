#!/usr/bin/env bash
# Prepares the source of the optimized wolfSSL (-Dwolfssl=optimized): wolfSSL's 5.9.2 release tarball, kept in
# this repository (subprojects/packagecache/, see its README.md), checked against its pinned SHA-256 and its
# release signature, unpacked into subprojects/wolfssl-src/ with dgram's fixes applied
# (subprojects/packagefiles/wolfssl/*.patch) and its configure script generated.
#
# Nothing is downloaded: the tarball is in the repository because no durable package source keeps it (Debian's
# pool drops a release when the next one arrives). The unpacked tree is reused while it is complete and has the
# same release and fixes. Needs tar, sha256sum, gpgv, patch, autoconf, automake and libtool.
set -euo pipefail
cd "$(dirname "$0")/.."

version=5.9.2   # what meson.build's optimized build is written and tested for
sha256=2f4ef3d4fd387a9b3191d36a6316d69116c46ff69bb9583b6c82b36d7b8ca114
cache=subprojects/packagecache
tarball=$cache/wolfssl_$version.orig.tar.gz
signature=$tarball.asc
signing_key=$cache/wolfssl-signing-key.gpg   # wolfSSL's release key, fingerprint in $cache/README.md
target=subprojects/wolfssl-src

fail() {
  echo "fetch-wolfssl: $*" >&2
  exit 1
}

# dgram's own fixes to wolfSSL, each saying what it fixes, applied to the release. The tree records which
# release and which set of fixes it has: a change unpacks the source again.
patches=(subprojects/packagefiles/wolfssl/*.patch)
source_id="$version-$(cat "${patches[@]}" | sha256sum | cut -c1-16)"
if [ -x "$target/configure" ] && [ "$(cat "$target/.dgram-complete" 2> /dev/null)" = "$source_id" ]; then
  echo "wolfSSL source: $target ($version, already unpacked)"
  exit 0
fi

for tool in tar sha256sum gpgv patch autoreconf automake libtoolize; do
  command -v "$tool" > /dev/null ||
    fail "'$tool' is missing: install tar, coreutils, gpgv, patch, autoconf, automake and libtool
  (scripts/install-deps.sh does), or configure dgram with -Dwolfssl=system"
done
for file in "$tarball" "$signature" "$signing_key"; do
  [ -f "$file" ] || fail "$file is missing (it is part of the repository: is this a complete clone?)"
done

# The pinned hash first (a truncated or replaced file stops here), then the release signature.
actual=$(sha256sum "$tarball" | cut -d' ' -f1)
[ "$actual" = "$sha256" ] || fail "$tarball has SHA-256 $actual, not the pinned $sha256: refusing to build it"
verdict=$(gpgv --keyring "$signing_key" "$signature" "$tarball" 2>&1) ||
  fail "the signature $signature does not verify $tarball with $signing_key:
$verdict"

# Unpacked into a folder private to this run, so that $target appears only with its configure script generated
# (meson.build takes a $target with .dgram-complete as ready to build).
unpacked=$(mktemp -d "$(dirname "$target")/.wolfssl-src.XXXXXX")
trap 'rm -rf "$unpacked"' EXIT
tar -xzf "$tarball" -C "$unpacked" --strip-components=1 || fail "could not unpack $tarball"
for fix in "${patches[@]}"; do
  patch -d "$unpacked" -p1 --quiet --forward < "$fix" || fail "$fix does not apply to wolfSSL $version"
done
# The release tarball has no configure script; generate it once here, so the build only runs configure.
(cd "$unpacked" && ./autogen.sh > autogen.log 2>&1) || {
  cp "$unpacked/autogen.log" "$(dirname "$target")/wolfssl-autogen.log" 2> /dev/null || true
  fail "autogen.sh failed; see $(dirname "$target")/wolfssl-autogen.log"
}
echo "$source_id" > "$unpacked/.dgram-complete"
rm -rf "$target"
mv "$unpacked" "$target"
trap - EXIT
echo "wolfSSL source: $target ($version, SHA-256 and signature verified)"
