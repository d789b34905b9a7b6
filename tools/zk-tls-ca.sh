#!/bin/sh
# tools/zk-tls-ca.sh DIR [NAME]
#
# A throw-away certificate authority for a TLS-only ZooKeeper and its clients
# (tests, poold-local). Writes into DIR (created, mode 0700):
#   ca.pem       the CA certificate: `ca` for clients, ssl.trustStore for the server
#   ca.key       its key (kept so that more certificates can be signed later)
#   server.pem   the server's key and certificate in one PEM (ssl.keyStore, type PEM);
#                subjectAltName DNS:localhost, IP:127.0.0.1
#   client.crt   a client certificate (`cert` of zookeeper-tls, kazoo's certfile)
#   client.key   its key (`key` of zookeeper-tls, kazoo's keyfile)
# NAME (default "poold test") goes into the subjects' CN, so that two CAs made by
# this script are told apart in error messages. Existing files are replaced.
# P-256 keys: generated at once, and read by OpenSSL, Python and ZooKeeper's PEM loader.
set -eu

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: tools/zk-tls-ca.sh DIR [NAME]" >&2; exit 2; }
dir=$1
name=${2:-poold test}
mkdir -p "$dir"
chmod 0700 "$dir"
cd "$dir"
umask 077

days=3650
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

newkey ca.key
openssl req -x509 -new -key ca.key -sha256 -days $days -subj "/CN=$name CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out ca.pem

# sign NAME CN EXTFILE: NAME.key + NAME.crt signed by the CA
sign() {
        newkey "$1.key"
        openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
        openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days $days \
                -extfile "$3" -out "$1.crt" 2>/dev/null
        rm -f "$1.csr"
}

cat >server.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
EOF
cat >client.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EOF
sign server "$name ZooKeeper server" server.ext
sign client "$name ZooKeeper client" client.ext
cat server.key server.crt >server.pem
rm -f server.key server.crt server.ext client.ext ca.srl
# The CA certificate is public; the rest stays 0600.
chmod 0644 ca.pem
