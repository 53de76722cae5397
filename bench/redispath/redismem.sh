#!/usr/bin/env bash
# Redis CPU per event of two builds of bench/redismem side by side, on one
# server and on a 3-node Cluster, alternated (old, new, old, new) so the
# shared machine's noise falls on both. Usage, from the project root:
#   (git stash; go build -o /tmp/redismem-old ./bench/redismem; git stash pop)   # or at the old commit
#   go build -o /tmp/redismem-new ./bench/redismem
#   OLD=/tmp/redismem-old NEW=/tmp/redismem-new bench/redispath/redismem.sh [events] [workers]
set -euo pipefail
events=${1:-20000}; workers=${2:-32}
out=$(mktemp -d); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"' EXIT
redis() { mkdir -p "$out/r$1"; redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$out/r$1" ${2:-} >/dev/null 2>&1 & pids+=($!)
  for _ in $(seq 50); do redis-cli -p "$1" PING >/dev/null 2>&1 && break; sleep 0.1; done; }
redis 49120
for q in 49131 49132 49133; do redis $q "--cluster-enabled yes --cluster-config-file nodes.conf"; done
redis-cli --cluster create 127.0.0.1:49131 127.0.0.1:49132 127.0.0.1:49133 --cluster-replicas 0 --cluster-yes >/dev/null
for _ in $(seq 50); do redis-cli -p 49131 CLUSTER INFO | grep -q cluster_state:ok && break; sleep 0.2; done
for where in 127.0.0.1:49120 127.0.0.1:49131,127.0.0.1:49132,127.0.0.1:49133; do
  for bin in "$OLD" "$NEW" "$OLD" "$NEW"; do
    echo "== $(basename "$bin") $where"
    "$bin" -redis "$where" -events "$events" -workers "$workers" | grep -E '^(events|node|redis cpu|commands)'
  done
done
