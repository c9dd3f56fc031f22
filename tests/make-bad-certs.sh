#!/usr/bin/env bash
# Makes the certificates the negative DTLS tests need, at run time, into OUT_DIR:
#   other-ca.pem        a CA that signed nothing we serve (a client trusting it must refuse our server)
#   expired.pem/.key    a server certificate from the test CA whose validity ended yesterday
#   other.key           a key that matches no certificate
#   control-name.pem/.key  a server certificate from the test CA whose names hold control characters (ESC, BEL)
#   chain-N.pem, chain.key a server certificate under N-1 intermediate CAs below the test CA, sent with them:
#                       a chain of N certificates (5, 6 and 10)
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

# Intermediate CAs 1..9, each signed by the one before (the first by the test CA), and a leaf under the 4th,
# 5th and 9th: chains of 5, 6 and 10 certificates.
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' > intermediate.ext
issuer_pem=$certs/ca.pem
issuer_key=$certs/ca.key
chain=""
for i in 1 2 3 4 5 6 7 8 9; do
  openssl ecparam -name prime256v1 -genkey -noout -out "int$i.key"
  openssl req -new -key "int$i.key" -subj "/CN=intermediate $i" -out "int$i.csr" 2> /dev/null
  openssl x509 -req -in "int$i.csr" -CA "$issuer_pem" -CAkey "$issuer_key" -CAserial "int$i.srl" -CAcreateserial \
    -days 30 -extfile intermediate.ext -out "int$i.pem" 2> /dev/null
  chain="$(cat "int$i.pem")
$chain"
  issuer_pem=int$i.pem
  issuer_key=int$i.key
  case $i in
    4 | 5 | 9)
      [ -f chain.key ] || openssl ecparam -name prime256v1 -genkey -noout -out chain.key
      openssl req -new -key chain.key -subj "/CN=localhost" -out "chain-$((i + 1)).csr" 2> /dev/null
      openssl x509 -req -in "chain-$((i + 1)).csr" -CA "int$i.pem" -CAkey "int$i.key" -CAserial "chain-$i.srl" \
        -CAcreateserial -days 30 -extfile expired.ext -out "leaf-$((i + 1)).pem" 2> /dev/null
      printf '%s\n%s\n' "$(cat "leaf-$((i + 1)).pem")" "$chain" > "chain-$((i + 1)).pem"
      ;;
  esac
done
