#!/bin/sh
# SPDX-License-Identifier: MIT
# tls-check.sh HTTPS_HELLO TLS_FETCH - the TLS guide's two examples
# against each other: make a CA and a server certificate for localhost
# (ECDSA P-256, with `openssl req`), start example_https_hello with them,
# fetch a page with example_tls_fetch verifying against the CA (and with
# curl --cacert where curl is installed), then check that tls_fetch
# without the CA refuses the server (a certificate it cannot verify).
# Exit 0 when all went as the guide says.
set -eu
hello_bin=$1
fetch_bin=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-tls-check.XXXXXX")
server=
cleanup() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# A CA, and a server certificate for localhost that it signs.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$tmp/ca.key" -out "$tmp/ca.pem" -days 2 \
    -subj "/CN=weft example CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$tmp/key.pem" -out "$tmp/req.pem" -subj "/CN=localhost" \
    2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$tmp/ext"
openssl x509 -req -in "$tmp/req.pem" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
    -CAcreateserial -days 2 -extfile "$tmp/ext" -out "$tmp/cert.pem" \
    2>/dev/null

: >"$tmp/server.log" # before the server: sed reads it at once
"$hello_bin" "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/server.log" 2>&1 &
server=$!
port=
i=0
while [ $i -lt 100 ]; do
    port=$(sed -n 's/^listening on \([0-9]*\).*/\1/p' "$tmp/server.log")
    [ -n "$port" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.05
    i=$((i + 1))
done
if [ -z "$port" ]; then
    echo "tls-check: https_hello did not start:" >&2
    cat "$tmp/server.log" >&2
    exit 1
fi

# tls_fetch, verifying the server against the CA
"$fetch_bin" --ca "$tmp/ca.pem" localhost "$port" / >"$tmp/fetch.out"
cat "$tmp/fetch.out"
grep -q '^TLSv1\.3 .*, ALPN http/1\.1$' "$tmp/fetch.out"
grep -q '^HTTP/1\.1 200 OK$' "$tmp/fetch.out"
grep -q '^body: 6 bytes$' "$tmp/fetch.out"

# curl, where it is installed
if command -v curl >/dev/null 2>&1; then
    [ "$(curl -sS --cacert "$tmp/ca.pem" "https://localhost:$port/")" = hello ]
    echo "curl: hello"
fi

# the system's trust store does not know the CA: refused, with the reason
if "$fetch_bin" localhost "$port" / >/dev/null 2>"$tmp/refused.err"; then
    echo "tls-check: tls_fetch accepted a certificate it cannot verify" >&2
    exit 1
fi
cat "$tmp/refused.err"
grep -q 'certificate verify failed' "$tmp/refused.err"
echo "tls-check: ok"
