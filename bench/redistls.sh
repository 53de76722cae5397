#!/usr/bin/env bash
# Compares Redis's CPU per scored event over TLS and over plain TCP: one
# redis-server with a plain port and a TLS port, bench/redismem run
# against one then the other in alternation (each run flushes first), so
# both see the same server and the same machine. Redis's CPU is INFO cpu
# (user + system), stable on a shared machine where wall time is not.
# Usage: bench/redistls.sh [events] [rounds]   e.g. bench/redistls.sh 50000 2
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-50000}
rounds=${2:-2}
out=$(mktemp -d)
trap 'redis-cli -p 16401 shutdown nosave >/dev/null 2>&1 || true; rm -rf "$out"' EXIT
go build -o "$out/redismem" ./bench/redismem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
  -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$out/tls.key" -out "$out/tls.csr" 2>/dev/null
openssl x509 -req -in "$out/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -days 1 \
  -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1') -out "$out/tls.crt" 2>/dev/null
redis-server --port 16401 --tls-port 16402 --tls-cert-file "$out/tls.crt" --tls-key-file "$out/tls.key" \
  --tls-ca-cert-file "$out/ca.crt" --tls-auth-clients no --save "" --appendonly no --bind 127.0.0.1 --daemonize yes \
  --logfile "$out/redis.log" --dir "$out"
for _ in $(seq 50); do redis-cli -p 16401 ping >/dev/null 2>&1 && break; sleep 0.1; done
for r in $(seq "$rounds"); do
  for side in plain tls; do
    extra=()
    [ $side = tls ] && extra=(-store-tls 127.0.0.1:16402 -ca-file "$out/ca.crt")
    printf '%s %s: ' "$r" $side
    "$out/redismem" -redis 127.0.0.1:16401 -events "$events" "${extra[@]}" | grep -E '^(redis cpu|events)' | tr '\n' ' '
    echo
  done
done
