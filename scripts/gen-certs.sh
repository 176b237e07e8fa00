#!/usr/bin/env bash
# Generates a CA and certificates it signs, with openssl, for trying TLS locally
# (make cluster TLS=1) and as a worked example for docs/security.md. Not for production:
# keys are unencrypted and the CA key sits next to them.
#
#   scripts/gen-certs.sh DIR NAME...
#
# Writes DIR/ca.pem and DIR/ca-key.pem (once; kept if present), and for every NAME
# DIR/NAME.pem and DIR/NAME-key.pem: ECDSA P-256, valid 365 days, Common Name NAME,
# usable as server and client certificate (etcd's peer certificates must be both),
# with the subject alternative names in $CERT_SANS (default: the loopback names).
set -euo pipefail

dir=${1:?usage: scripts/gen-certs.sh DIR NAME...}
shift
sans=${CERT_SANS:-IP:127.0.0.1,IP:::1,DNS:localhost}
mkdir -p "$dir"
umask 077

if [ ! -f "$dir/ca.pem" ] || [ ! -f "$dir/ca-key.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" -days 3650 -subj "/CN=Conclave local CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
fi

for name in "$@"; do
  ext=$(mktemp)
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' \
    "$sans" >"$ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/$name-key.pem" -out "$dir/$name.csr" -subj "/CN=$name" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
    -CAcreateserial -out "$dir/$name.pem" -days 365 -extfile "$ext" 2>/dev/null
  rm -f "$ext" "$dir/$name.csr"
done
# Certificates are public; keys stay private (umask 077 above).
chmod 644 "$dir/ca.pem"
for name in "$@"; do chmod 644 "$dir/$name.pem"; done
