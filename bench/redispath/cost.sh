#!/usr/bin/env bash
# CPU cost per HTTP decision, riskd and Redis apart, of two riskd binaries
# side by side (memory store, then one Redis twice, then a 3-node Cluster):
# drives each with bench/loadgen at a fixed rate and divides each process's
# CPU time (utime+stime, /proc) by the requests served. A variant of the
# session's ../shared/tools/cost.sh that compares builds in one run.
# Usage, from the project root:
#   go build -o /tmp/riskd-old ./cmd/riskd   # at the old commit
#   go build -o /tmp/riskd-new ./cmd/riskd
#   OLD=/tmp/riskd-old NEW=/tmp/riskd-new bench/redispath/cost.sh [rate] [duration]
set -euo pipefail
rate=${1:-2000}; dur=${2:-10s}
out=$(mktemp -d); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"' EXIT
go build -o "$out/loadgen" ./bench/loadgen
cpu() { awk '{print $14+$15}' /proc/$1/stat; }   # clock ticks
tck=$(getconf CLK_TCK)
redis() { mkdir -p "$out/r$1"; redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$out/r$1" ${2:-} >/dev/null 2>&1 & pids+=($!)
  for _ in $(seq 50); do redis-cli -p "$1" PING >/dev/null 2>&1 && break; sleep 0.1; done; }
run() { # name, riskd args, redis pids...
  local name=$1 args=$2; shift 2
  "$BIN" -listen 127.0.0.1:48911 -log-level error $args 2>"$out/$name.log" & local rp=$!; pids+=($rp)
  for _ in $(seq 100); do curl -sf http://127.0.0.1:48911/healthz >/dev/null && break; sleep 0.1; done
  "$out/loadgen" -url http://127.0.0.1:48911/v1/score -rates "$rate" -duration 3s >/dev/null 2>&1 || true  # warm
  local r0 rs0=() ; r0=$(cpu $rp); for p in "$@"; do rs0+=($(cpu $p)); done
  local lg; lg=$("$out/loadgen" -url http://127.0.0.1:48911/v1/score -rates "$rate" -duration "$dur" 2>&1 | tail -1)
  local r1; r1=$(cpu $rp)
  local n=$(( rate * ${dur%s} ))
  local line="$name: riskd $(( (r1-r0)*1000000/tck/n )) us/req"
  local i=0; for p in "$@"; do line+=" redis[$i] $(( ($(cpu $p)-${rs0[$i]})*1000000/tck/n )) us/req"; i=$((i+1)); done
  echo "$line | $lg"
  kill $rp; wait $rp 2>/dev/null || true
}
for BIN in "$OLD" "$NEW"; do run "$(basename "$BIN")-memory" ""; done
redis 48920; rp1=${pids[-1]}
for BIN in "$OLD" "$NEW" "$OLD" "$NEW"; do run "$(basename "$BIN")-redis" "-redis 127.0.0.1:48920" $rp1; done
c=(); for q in 48931 48932 48933; do redis $q "--cluster-enabled yes --cluster-config-file nodes.conf"; c+=(${pids[-1]}); done
redis-cli --cluster create 127.0.0.1:48931 127.0.0.1:48932 127.0.0.1:48933 --cluster-replicas 0 --cluster-yes >/dev/null
for _ in $(seq 50); do redis-cli -p 48931 CLUSTER INFO | grep -q cluster_state:ok && break; sleep 0.2; done
for BIN in "$OLD" "$NEW"; do run "$(basename "$BIN")-cluster" "-redis 127.0.0.1:48931,127.0.0.1:48932,127.0.0.1:48933" "${c[@]}"; done
