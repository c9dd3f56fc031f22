#!/usr/bin/env bash
# Usage: fetch-debian-source.sh PACKAGE VERSION_PREFIX TARGET
#
# Unpacks Debian trixie's source package PACKAGE (with Debian's patches applied) into TARGET, replacing what is
# there, and fails unless its version starts with VERSION_PREFIX (5.7.2 takes 5.7.2-0.1+deb13u2, 3.6 takes
# 3.6.4-2, not 3.60): callers are written and tested for one upstream release, and trixie may move on.
# TARGET appears only complete (unpacked beside it, then renamed). Callers read the exact version from
# TARGET/debian/changelog (dpkg-parsechangelog -l TARGET/debian/changelog -S Version).
#
# Debian 12 has no trixie sources, so this uses an apt configuration private to the project, under the cache
# directory, with one deb-src line for trixie on the mirror the system already uses: no host name is written
# into the repository, and the system's apt state is not touched. The downloaded files are cached in
# ${XDG_CACHE_HOME:-~/.cache}/dgram/PACKAGE-trixie/ (or $DGRAM_CACHE/PACKAGE-trixie/), so they are fetched once
# per machine. Needs apt-get and dpkg-source (dpkg-dev).
#
# Error messages start with $DGRAM_FETCH_NAME (default fetch-debian-source), so that they name the script the
# user ran.
set -euo pipefail

name=${DGRAM_FETCH_NAME:-fetch-debian-source}
if [ $# -ne 3 ] || [ -z "$1" ] || [ -z "$2" ] || [ -z "$3" ]; then
  echo "usage: $0 PACKAGE VERSION_PREFIX TARGET" >&2
  exit 2
fi
package=$1
version_wanted=$2
target=$3
suite=trixie
cache=${DGRAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dgram}/$package-$suite

for tool in apt-get dpkg-source; do
  if ! command -v "$tool" > /dev/null; then
    echo "$name: '$tool' is missing: install apt and dpkg-dev (scripts/install-deps.sh does)" >&2
    exit 1
  fi
done

# The .dsc in the download folder whose version starts with the wanted prefix (at a component boundary), if
# any. Only a complete download is ever named download/, so a .dsc there has all its files beside it.
matching_dsc() {
  local dsc version
  for dsc in "$cache/download/${package}"_*.dsc; do
    [ -f "$dsc" ] || continue
    version=$(basename "$dsc" .dsc)
    version=${version#"${package}_"}
    case $version in
      "$version_wanted" | "$version_wanted".* | "$version_wanted"-* | "$version_wanted"+* | "$version_wanted"~*)
        echo "$dsc"; return ;;
    esac
  done
}

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

mkdir -p "$cache/apt/lists/partial" "$cache/apt/archives/partial"
if [ -z "$(matching_dsc)" ]; then
  mirror=$(system_mirror)
  if [ -z "$mirror" ]; then
    echo "$name: found no Debian mirror in /etc/apt/sources.list{,.d}: cannot fetch $suite's $package source" >&2
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
    { rm -rf "$partial"; echo "$name: apt-get source $package/$suite failed" >&2; exit 1; }
  rm -rf "$cache/download"
  mv "$partial" "$cache/download"
fi
dsc=$(matching_dsc)
if [ -z "$dsc" ]; then
  echo "$name: $suite's $package source is not version $version_wanted any more:" \
    "$(ls "$cache/download" | tr '\n' ' ')" >&2
  exit 1
fi

# Unpacked into a folder private to this run beside TARGET (so that the rename is atomic: same file system),
# named like TARGET with a leading dot so that a .gitignore line for ".TARGET.*" covers an interrupted run.
parent=$(dirname "$target")
mkdir -p "$parent"
unpacked=$(mktemp -d "$parent/.$(basename "$target" | sed 's/^\.//').XXXXXX")
rmdir "$unpacked"   # dpkg-source wants to create it
# Applies Debian's patches. (--no-check: apt-get already verified the files against the signed archive; the
# uploader's key is in no keyring here.) dpkg-source leaves a copy of the tarball beside the tree: removed.
if ! dpkg-source --no-check -x "$dsc" "$unpacked" > /dev/null; then
  rm -rf "$unpacked"
  echo "$name: dpkg-source could not unpack $dsc" >&2
  exit 1
fi
rm -f "$parent"/"${package}"_*.orig.tar.* "$parent"/"${package}"_*.orig-*.tar.*
rm -rf "$target"
mv "$unpacked" "$target"
