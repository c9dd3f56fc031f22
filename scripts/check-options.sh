#!/usr/bin/env bash
# Checks that a variant asked for without what it needs stops `meson setup` with one clear line: Debian's wolfSSL
# hidden from pkg-config (as on a machine without libwolfssl-dev), the optimized wolfSSL asked for without its
# fetched source, and a variant whose parent is disabled.
set -euo pipefail
source_root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
expect_setup_error() {   # expect_setup_error NAME MESSAGE [env and meson options...]
  local name=$1 message=$2; shift 2
  if env "$@" > "$work/$name.log" 2>&1; then
    echo "check-options: $name: meson setup should have failed"; exit 1
  fi
  grep -qF -- "$message" "$work/$name.log" ||
    { echo "check-options: $name: expected '$message' in:"; cat "$work/$name.log"; exit 1; }
}
setup=(meson setup --native-file "$source_root/clang.ini")
expect_setup_error dtls-without-wolfssl "-Ddtls=enabled needs wolfSSL: install libwolfssl-dev" \
  PKG_CONFIG_LIBDIR=/nonexistent "${setup[@]}" "$work/a" "$source_root" -Ddtls=enabled -Dwolfssl=system
expect_setup_error nonblocking-without-wolfssl "-Ddtls_nonblocking=enabled needs wolfSSL: install libwolfssl-dev" \
  PKG_CONFIG_LIBDIR=/nonexistent "${setup[@]}" "$work/b" "$source_root" -Ddtls_nonblocking=enabled -Dwolfssl=system
expect_setup_error nonblocking-without-dtls "-Ddtls_nonblocking=enabled needs the DTLS variant, which -Ddtls=disabled" \
  "${setup[@]}" "$work/c" "$source_root" -Ddtls=disabled -Ddtls_nonblocking=enabled
expect_setup_error threaded-without-wolfssl "-Ddtls_threaded=enabled needs wolfSSL: install libwolfssl-dev" \
  PKG_CONFIG_LIBDIR=/nonexistent "${setup[@]}" "$work/e" "$source_root" -Ddtls_threaded=enabled -Dwolfssl=system
expect_setup_error threaded-without-nonblocking "-Ddtls_threaded=enabled needs the non-blocking variant, which -Ddtls_nonblocking=disabled" \
  "${setup[@]}" "$work/f" "$source_root" -Ddtls_nonblocking=disabled -Ddtls_threaded=enabled
# A copy of the project without the fetched wolfSSL source.
mkdir "$work/bare"
tar -C "$source_root" --exclude='./build*' --exclude=./subprojects/wolfssl-src --exclude='./subprojects/fmt-*' \
  --exclude=./.git -cf - . | tar -C "$work/bare" -xf -
expect_setup_error optimized-without-source "-Dwolfssl=optimized needs wolfSSL's source: run scripts/fetch-wolfssl.sh" \
  "${setup[@]}" "$work/g" "$work/bare" -Dwolfssl=optimized
meson configure "$work/d" > /dev/null 2>&1 || "${setup[@]}" "$work/d" "$source_root" > /dev/null
meson configure "$work/d" | grep -q "dtls_nonblocking .*DTLS event-driven server" ||
  { echo "check-options: meson configure does not describe dtls_nonblocking"; exit 1; }
meson configure "$work/d" | grep -q "dtls_threaded .*DTLS threaded server" ||
  { echo "check-options: meson configure does not describe dtls_threaded"; exit 1; }
meson configure "$work/d" | grep -q "wolfssl .*wolfSSL for the DTLS variants: optimized = 5.9.2" ||
  { echo "check-options: meson configure does not describe wolfssl"; exit 1; }
echo "check-options: missing dependencies and disabled parents stop meson setup with a clear line"
