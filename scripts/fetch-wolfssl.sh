#!/usr/bin/env bash
# Fetches the source of the optimized wolfSSL (-Dwolfssl=optimized): Debian trixie's `wolfssl` source package
# (5.7.2 with Debian's patches), unpacked into subprojects/wolfssl-src/ with its configure script generated.
#
# Debian 12 has no such package: scripts/fetch-debian-source.sh fetches it from trixie on the mirror the system
# already uses, through an apt configuration private to the project (no host name in the repository, the
# system's apt state untouched), and caches the downloaded files in ${XDG_CACHE_HOME:-~/.cache}/dgram/wolfssl-trixie/
# (or $DGRAM_CACHE/wolfssl-trixie/), so they are fetched once per machine; the unpacked tree is reused while it
# is complete, with dgram's fixes applied (subprojects/packagefiles/wolfssl/). Needs apt-get, dpkg-source
# (dpkg-dev), autoconf, automake, libtool and patch.
set -euo pipefail
cd "$(dirname "$0")/.."

package=wolfssl
version_wanted=5.7.2       # what meson.build's optimized build is written and tested for
target=subprojects/wolfssl-src

# dgram's own fixes to wolfSSL (subprojects/packagefiles/wolfssl/*.patch, each saying what it fixes), applied
# after Debian's. The tree records which set it has: a changed set unpacks the source again (from the cache).
patches=(subprojects/packagefiles/wolfssl/*.patch)
patch_set=$(cat "${patches[@]}" | sha256sum | cut -c1-16)
if [ -x "$target/configure" ] && [ "$(cat "$target/.dgram-complete" 2> /dev/null)" = "$patch_set" ]; then
  echo "wolfSSL source: $target (already unpacked)"
  exit 0
fi

for tool in apt-get dpkg-source autoreconf automake libtoolize patch; do
  if ! command -v "$tool" > /dev/null; then
    echo "fetch-wolfssl: '$tool' is missing: install apt, dpkg-dev, autoconf, automake, libtool and patch" >&2
    echo "  (scripts/install-deps.sh does), or configure dgram with -Dwolfssl=system" >&2
    exit 1
  fi
done

# The generic part (private apt configuration, download into the cache, dpkg-source -x) is shared with the
# test peers' sources. Unpacked into a folder private to this run, so that $target appears only with its
# configure script generated (meson.build takes a $target with .dgram-complete as ready to build).
unpacked=$(mktemp -d "$(dirname "$target")/.wolfssl-src.XXXXXX")   # private to this run
DGRAM_FETCH_NAME=fetch-wolfssl bash scripts/fetch-debian-source.sh "$package" "$version_wanted" "$unpacked/src" ||
  { rmdir "$unpacked" 2> /dev/null; exit 1; }   # (it names the cause)
# The release tarball has no configure script; generate it once here, so the build only runs configure.
for fix in "${patches[@]}"; do
  patch -d "$unpacked/src" -p1 --quiet --forward < "$fix" ||
    { echo "fetch-wolfssl: $fix does not apply to this wolfSSL source" >&2; exit 1; }
done
(cd "$unpacked/src" && ./autogen.sh > autogen.log 2>&1) || {
  echo "fetch-wolfssl: autogen.sh failed; see $unpacked/src/autogen.log" >&2; exit 1; }
echo "$patch_set" > "$unpacked/src/.dgram-complete"
version=$(dpkg-parsechangelog -l "$unpacked/src/debian/changelog" -S Version)
rm -rf "$target"
mv "$unpacked/src" "$target"
rmdir "$unpacked"
echo "wolfSSL source: $target (${package}_${version#*:})"   # the .dsc's name: the version without its epoch
