#!/usr/bin/env bash
# Builds riskd and loadgen, starts riskd on loopback with the example
# policy and the memory store, and drives it at the given rates.
# Usage: bench/load.sh [rates] [duration]   e.g. bench/load.sh 1000,5000,10000 10s
# With REDIS=host:port riskd uses that Redis (loopback) instead of memory;
# with RULES=dir it serves that policy directory instead of the example.
set -euo pipefail
cd "$(dirname "$0")/.."
rates=${1:-1000,5000,10000}
duration=${2:-10s}
out=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$out"' EXIT
go build -o "$out/riskd" ./cmd/riskd
go build -o "$out/loadgen" ./bench/loadgen
store=()
[ -n "${REDIS:-}" ] && store=(-redis "$REDIS")
[ -n "${RULES:-}" ] && store+=(-rules "$RULES")
"$out/riskd" -listen 127.0.0.1:18090 "${store[@]}" 2>"$out/riskd.log" &
pid=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:18090/healthz >/dev/null && break; sleep 0.1; done
"$out/loadgen" -url http://127.0.0.1:18090/v1/score -rates "$rates" -duration "$duration"
