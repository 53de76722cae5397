#!/usr/bin/env bash
# Measures riskd's CPU per HTTP decision with and without TLS on the
# scoring port: two riskd processes (memory store, example policy), one
# plain and one HTTPS, driven by bench/loadgen at the same rate in
# alternate steps, so both see the same machine. CPU is the process's
# user + system time (/proc/PID/stat): stable on a shared machine where
# wall time is not.
# Usage: bench/tls.sh [rate] [duration] [rounds]   e.g. bench/tls.sh 2000 10s 3
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-2000}
duration=${2:-10s}
rounds=${3:-3}
out=$(mktemp -d)
plain= tls=
trap 'kill $plain $tls 2>/dev/null || true; rm -rf "$out"' EXIT
go build -o "$out/riskd" ./cmd/riskd
go build -o "$out/loadgen" ./bench/loadgen

# A CA and a certificate for 127.0.0.1, as docs/operations.md makes them.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
  -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$out/tls.key" -out "$out/tls.csr" 2>/dev/null
openssl x509 -req -in "$out/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -days 1 \
  -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1') -out "$out/tls.crt" 2>/dev/null

"$out/riskd" -listen 127.0.0.1:18091 -log-level warn 2>"$out/plain.log" &
plain=$!
"$out/riskd" -listen 127.0.0.1:18092 -tls-cert-file "$out/tls.crt" -tls-key-file "$out/tls.key" -log-level warn 2>"$out/tls.log" &
tls=$!
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:18091/healthz >/dev/null && curl -sf --cacert "$out/ca.crt" https://127.0.0.1:18092/healthz >/dev/null && break
  sleep 0.1
done

tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
decided() { curl -sf --cacert "$out/ca.crt" "$1/metrics" | awk '/^riskd_http_requests_total\{/ && /code="200"/ && /handler="\/v1\/score"/ {print $2}'; }

printf '%-6s %-6s %10s %10s %14s\n' round port decisions cpu_s cpu_us/decision
declare -A total_cpu total_n
for r in $(seq "$rounds"); do
  for side in plain tls; do
    if [ $side = plain ]; then pid=$plain url=http://127.0.0.1:18091; else pid=$tls url=https://127.0.0.1:18092; fi
    c0=$(cpu $pid) n0=$(decided $url)
    "$out/loadgen" -url $url/v1/score -rates "$rate" -duration "$duration" -ca-file "$out/ca.crt" >"$out/loadgen.$side.$r"
    c1=$(cpu $pid) n1=$(decided $url)
    n=$(awk -v a="$n0" -v b="$n1" 'BEGIN{print b - a}')
    s=$(awk -v a="$c0" -v b="$c1" -v t="$tck" 'BEGIN{print (b - a) / t}')
    total_cpu[$side]=$(awk -v a="${total_cpu[$side]:-0}" -v b="$s" 'BEGIN{print a + b}')
    total_n[$side]=$(( ${total_n[$side]:-0} + n ))
    printf '%-6s %-6s %10d %10.2f %14.1f\n' "$r" $side "$n" "$s" "$(awk -v s="$s" -v n="$n" 'BEGIN{print s * 1e6 / n}')"
  done
done
for side in plain tls; do
  printf '%-6s %-6s %10d %10.2f %14.1f\n' all $side "${total_n[$side]}" "${total_cpu[$side]}" "$(awk -v s="${total_cpu[$side]}" -v n="${total_n[$side]}" 'BEGIN{print s * 1e6 / n}')"
done
