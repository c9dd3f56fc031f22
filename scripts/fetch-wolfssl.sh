#!/usr/bin/env bash
# Fetches the source of the optimized wolfSSL (-Dwolfssl=optimized): Debian trixie's `wolfssl` source package
# (5.7.2 with Debian's patches), unpacked into subprojects/wolfssl-src/ with its configure script generated.
#
# Debian 12 has no such package, so this uses an apt configuration private to the project (under the cache
# directory) with one deb-src line for trixie on the mirror the system already uses: no host name is written
# into the repository, and the system's apt state is not touched. The downloaded files are cached in
# ${XDG_CACHE_HOME:-~/.cache}/dgram/ (or $DGRAM_CACHE), so they are fetched once per machine; the unpacked tree
# is reused while it is complete. Needs apt-get, dpkg-source (dpkg-dev), autoconf, automake and libtool.
set -euo pipefail
cd "$(dirname "$0")/.."

suite=trixie
package=wolfssl
version_wanted=5.7.2       # what meson.build's optimized build is written and tested for
target=subprojects/wolfssl-src
cache=${DGRAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dgram}/wolfssl-$suite

if [ -x "$target/configure" ] && [ -f "$target/.dgram-complete" ]; then
  echo "wolfSSL source: $target (already unpacked)"
  exit 0
fi

# The Debian mirror the system is configured with: the first URI that serves the Debian suites (not security).
system_mirror() {
  local file uri
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    # deb822 stanzas: take the URIs of a stanza whose Suites name bookworm (or any release) without "-security".
    uri=$(awk 'BEGIN{RS=""; FS="\n"}
      { uris=""; suites=""; signed="";
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
          if ($i ~ /^Suites:/) { suites = $i }
        }
        if (uris != "" && suites !~ /security/ && uris ~ /debian/) { split(uris, u, " "); print u[1]; exit } }' "$file")
    if [ -n "$uri" ]; then echo "$uri"; return; fi
  done
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$file" ] || continue
    uri=$(awk '$1 == "deb" && $0 !~ /security/ && $0 ~ /debian/ {
      for (i = 2; i <= NF; i++) if ($i ~ /^(https?|ftp|file|mirror\+[a-z]+):/) { print $i; exit } }' "$file")
    if [ -n "$uri" ]; then echo "$uri"; return; fi
  done
}

for tool in apt-get dpkg-source autoreconf automake libtoolize; do
  if ! command -v "$tool" > /dev/null; then
    echo "fetch-wolfssl: '$tool' is missing: install apt, dpkg-dev, autoconf, automake and libtool" >&2
    echo "  (scripts/install-deps.sh does), or configure dgram with -Dwolfssl=system" >&2
    exit 1
  fi
done

mkdir -p "$cache/apt/lists/partial" "$cache/apt/archives/partial"
if ! ls "$cache/download/${package}_${version_wanted}"*.dsc > /dev/null 2>&1; then   # (only complete downloads)
  mirror=$(system_mirror)
  if [ -z "$mirror" ]; then
    echo "fetch-wolfssl: found no Debian mirror in /etc/apt/sources.list{,.d}: cannot fetch trixie's wolfssl source" >&2
    exit 1
  fi
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  echo "deb-src [signed-by=$keyring] $mirror $suite main" > "$cache/apt/sources.list"
  apt_options=(
    -o "Dir::Etc::SourceList=$cache/apt/sources.list" -o "Dir::Etc::SourceParts=-"
    -o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache=$cache/apt" -o "Dir::Cache::Archives=$cache/apt/archives"
    -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)"
  )
  echo "fetching $package source from $suite on $mirror"
  apt-get "${apt_options[@]}" update -qq
  # Into a fresh folder, renamed into place only when complete: an interrupted download is never taken for one.
  partial=$(mktemp -d "$cache/partial.XXXXXX")
  (cd "$partial" && apt-get "${apt_options[@]}" source --download-only -qq "$package/$suite") ||
    { rm -rf "$partial"; echo "fetch-wolfssl: apt-get source $package/$suite failed" >&2; exit 1; }
  rm -rf "$cache/download"
  mv "$partial" "$cache/download"
fi
dsc=$(ls "$cache/download/${package}_${version_wanted}"*.dsc 2>/dev/null | head -1 || true)
if [ -z "$dsc" ]; then
  echo "fetch-wolfssl: trixie's $package source is not version $version_wanted any more:" \
    "$(ls "$cache/download" | tr '\n' ' ')" >&2
  exit 1
fi

unpacked=$(mktemp -d "$(dirname "$target")/.wolfssl-src.XXXXXX")   # private to this run
rmdir "$unpacked"   # dpkg-source wants to create it
# Applies Debian's patches. (--no-check: apt-get already verified the files against the signed archive; the
# uploader's key is in no keyring here.) dpkg-source leaves a copy of the tarball beside the tree: removed.
dpkg-source --no-check -x "$dsc" "$unpacked" > /dev/null
rm -f "$(dirname "$target")"/"${package}"_*.orig.tar.*
# The release tarball has no configure script; generate it once here, so the build only runs configure.
(cd "$unpacked" && ./autogen.sh > autogen.log 2>&1) || {
  echo "fetch-wolfssl: autogen.sh failed; see $unpacked/autogen.log" >&2; exit 1; }
touch "$unpacked/.dgram-complete"
rm -rf "$target"
mv "$unpacked" "$target"
echo "wolfSSL source: $target ($(basename "$dsc" .dsc))"
