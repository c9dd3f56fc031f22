#!/usr/bin/env bash
# Makes the certificates the negative DTLS tests need, at run time, into OUT_DIR:
#   other-ca.pem        a CA that signed nothing we serve (a client trusting it must refuse our server)
#   expired.pem/.key    a server certificate from the test CA whose validity ended yesterday
#   other.key           a key that matches no certificate
#   control-name.pem/.key  a server certificate from the test CA whose names hold control characters (ESC, BEL)
# Usage: make-bad-certs.sh CERTS_DIR OUT_DIR
set -euo pipefail
certs=$1
out=$2
mkdir -p "$out"
cd "$out"
openssl ecparam -name prime256v1 -genkey -noout -out other-ca.key
openssl req -x509 -new -key other-ca.key -sha256 -days 30 -subj "/CN=some other CA" -out other-ca.pem 2> /dev/null
openssl ecparam -name prime256v1 -genkey -noout -out expired.key
openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr 2> /dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n' > expired.ext
openssl x509 -req -in expired.csr -CA "$certs/ca.pem" -CAkey "$certs/ca.key" -CAserial expired.srl -CAcreateserial \
  -days -1 -extfile expired.ext -out expired.pem 2> /dev/null
openssl ecparam -name prime256v1 -genkey -noout -out other.key
openssl ecparam -name prime256v1 -genkey -noout -out control-name.key
openssl req -new -key control-name.key -subj "/CN=evil$(printf '\033')[31mname" -out control-name.csr 2> /dev/null
printf 'subjectAltName=DNS:evil%s.example\n' "$(printf '\007')" > control-name.ext
openssl x509 -req -in control-name.csr -CA "$certs/ca.pem" -CAkey "$certs/ca.key" -CAserial control-name.srl \
  -CAcreateserial -days 30 -extfile control-name.ext -out control-name.pem 2> /dev/null
