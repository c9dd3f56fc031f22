#!/usr/bin/env bash
# The vendored wolfSSL release is refused when it is not the pinned, signed one: scripts/fetch-wolfssl.sh run on
# a copy of the repository's release with one byte of the tarball changed, then of the signature, then with the
# signature missing, must fail each time, name the cause, and leave no source tree behind; the untouched copy
# must pass (so that the refusals are not the script failing for another reason).
#
#   check-wolfssl-release.sh SOURCE_ROOT
set -euo pipefail
root=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/subprojects"
cp -r "$root/scripts" "$work/"
cp -r "$root/subprojects/packagefiles" "$work/subprojects/"
mkdir "$work/subprojects/packagecache"
cp "$root"/subprojects/packagecache/wolfssl* "$work/subprojects/packagecache/"
cache=$work/subprojects/packagecache
tarball=$(ls "$cache"/wolfssl_*.orig.tar.gz)
pristine=$work/pristine
mkdir "$pristine" && cp "$tarball" "$tarball.asc" "$pristine/"

failures=0
expect_refusal() {   # NAME EXPECTED_TEXT
  local output
  if output=$(bash "$work/scripts/fetch-wolfssl.sh" 2>&1); then
    echo "FAIL $1: the script accepted it"; failures=$((failures + 1)); return
  fi
  if ! grep -qF -- "$2" <<< "$output"; then
    echo "FAIL $1: the error does not say \"$2\": $output"; failures=$((failures + 1)); return
  fi
  if [ -e "$work/subprojects/wolfssl-src" ]; then
    echo "FAIL $1: a source tree was left behind"; failures=$((failures + 1)); return
  fi
  echo "ok   $1: refused ($(head -1 <<< "$output" | cut -c1-100)...)"
}
restore() { cp "$pristine"/* "$cache/"; }

printf 'x' | dd of="$tarball" bs=1 seek=4096 conv=notrunc status=none
expect_refusal "one byte of the tarball changed" "not the pinned"
restore
printf 'Z' | dd of="$tarball.asc" bs=1 seek=120 conv=notrunc status=none
expect_refusal "one byte of the signature changed" "does not verify"
restore
rm "$tarball.asc"
expect_refusal "the signature missing" "is missing"
restore
if output=$(bash "$work/scripts/fetch-wolfssl.sh" 2>&1) && [ -f "$work/subprojects/wolfssl-src/.dgram-complete" ]; then
  echo "ok   the release as kept: verified and unpacked"
else
  echo "FAIL the release as kept was refused: $output"; failures=$((failures + 1))
fi
[ "$failures" = 0 ]
