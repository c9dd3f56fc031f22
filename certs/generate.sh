#!/usr/bin/env bash
# Makes dgram's TEST-ONLY certificates with the openssl CLI: a CA, two server certificates (ECDSA P-256 and
# RSA-2048, valid for localhost, 127.0.0.1 and ::1) and a client certificate. The private keys are public (they
# are committed): never use these outside tests and demos.
# Usage: certs/generate.sh [OUT_DIR]   (default: the folder of this script)
set -euo pipefail
out=${1:-$(cd "$(dirname "$0")" && pwd)}
mkdir -p "$out"
cd "$out"
days=3650
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/O=dgram test/CN=dgram test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem

issue() {   # issue NAME KEYFILE SUBJECT EXTENSIONS
  local name=$1 key=$2 subject=$3 extensions=$4
  printf '%s\n' "$extensions" > "$work/$name.ext"
  openssl req -new -key "$key" -subj "$subject" -out "$work/$name.csr"
  openssl x509 -req -in "$work/$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -CAserial "$work/ca.srl" \
    -days "$days" -sha256 -extfile "$work/$name.ext" -out "$name.pem" 2> /dev/null
}

server_extensions='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1'

openssl ecparam -name prime256v1 -genkey -noout -out server-ecdsa.key
issue server-ecdsa server-ecdsa.key "/O=dgram test/CN=localhost" "$server_extensions"
openssl genrsa -out server-rsa.key 2048 2> /dev/null
issue server-rsa server-rsa.key "/O=dgram test/CN=localhost" "$server_extensions"

openssl ecparam -name prime256v1 -genkey -noout -out client.key
issue client client.key "/O=dgram test/CN=dgram test client" 'basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'

echo "certs: wrote ca.pem, server-ecdsa.pem, server-rsa.pem, client.pem and their keys to $out (TEST ONLY)"
