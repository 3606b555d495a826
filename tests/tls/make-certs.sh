#!/usr/bin/env bash
# Makes throw-away certificates for the TLS tests with openssl, the way
# Docker's "Protect the Docker daemon socket" guide does:
#
#   OUT/ca.pem, ca-key.pem          the trusted CA
#   OUT/server-cert.pem, server-key.pem
#                                   a server certificate for 127.0.0.1 and localhost
#   OUT/cert.pem, key.pem           a client certificate from the CA (CN=flocker)
#   OUT/other/ca.pem, cert.pem, key.pem
#                                   a second CA and a client certificate from it,
#                                   which a --tlsverify listener must refuse
#
# Every key is written 0600. The client files carry Docker's names, so OUT
# (or OUT/other) is a DOCKER_CERT_PATH as it is.
#
# usage: tests/tls/make-certs.sh OUT [CLIENT_CN]
set -euo pipefail

out=${1:?usage: make-certs.sh OUT [CLIENT_CN]}
cn=${2:-flocker}
mkdir -p "$out/other"
umask 077
days=2
quiet() { "$@" >/dev/null 2>&1 || { echo "make-certs: failed: $*" >&2; "$@"; exit 1; }; }

# ca DIR NAME: a self-signed CA in DIR/ca.pem, DIR/ca-key.pem.
ca() {
    quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$1/ca-key.pem" -out "$1/ca.pem" -days "$days" -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}

# leaf DIR CA_DIR NAME CN EXT: a key and a certificate signed by CA_DIR's CA.
leaf() {
    local dir=$1 cadir=$2 name=$3 subject=$4 ext=$5
    quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$dir/$name-key.pem" -out "$dir/$name.csr" -subj "/CN=$subject"
    printf '%b' "$ext" >"$dir/$name.ext"
    quiet openssl x509 -req -in "$dir/$name.csr" -CA "$cadir/ca.pem" -CAkey "$cadir/ca-key.pem" \
        -CAcreateserial -out "$dir/$name-cert.pem" -days "$days" -extfile "$dir/$name.ext"
    rm -f "$dir/$name.csr" "$dir/$name.ext"
}

ca "$out" "flocker test CA"
ca "$out/other" "another CA"
leaf "$out" "$out" server localhost \
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
client_ext="extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"
leaf "$out" "$out" client "$cn" "$client_ext"
leaf "$out/other" "$out/other" client "$cn" "$client_ext"
for d in "$out" "$out/other"; do
    mv "$d/client-cert.pem" "$d/cert.pem"
    mv "$d/client-key.pem" "$d/key.pem"
    rm -f "$d"/*.srl
done
chmod 0644 "$out"/*.pem "$out"/other/*.pem
chmod 0600 "$out"/*key.pem "$out"/other/*key.pem
