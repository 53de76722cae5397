#!/usr/bin/env bash
# Sequential HTTP decisions on Redis through a proxy adding a fixed delay
# each way: the RTT through it, then p50 and p90 of n sequential requests
# for two riskd binaries, alternated. Usage, from the project root:
#   (cd ../shared/tools/lagproxy && go build -o /tmp/lagproxy .)
#   OLD=/tmp/riskd-old NEW=/tmp/riskd-new LAGPROXY=/tmp/lagproxy bench/redispath/rtt.sh [delay] [n]
set -u
delay=${1:-1ms}; n=${2:-100}
d=$(mktemp -d); pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null; done; rm -rf $d' EXIT
redis-server --port 48920 --bind 127.0.0.1 --save '' --appendonly no --dir $d >/dev/null 2>&1 & pids+=($!)
sleep 0.5
"$LAGPROXY" -listen 127.0.0.1:48930 -to 127.0.0.1:48920 -delay $delay & pids+=($!)
sleep 0.3
echo "RTT via proxy (redis-cli --latency, 3 s): $(timeout 3 redis-cli -p 48930 --latency --raw 2>/dev/null | tail -1)"
for bin in "$OLD" "$NEW" "$OLD" "$NEW"; do
  "$bin" -listen 127.0.0.1:48911 -log-level error -redis 127.0.0.1:48930 -store-timeout 2s 2>/dev/null & rp=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:48911/healthz >/dev/null && break; sleep 0.1; done
  for i in $(seq 10); do curl -s -o /dev/null localhost:48911/v1/score -d "{\"id\":\"w$bin$i$RANDOM\",\"type\":\"checkout\",\"account_id\":\"a$i\",\"card_id\":\"c$i\",\"device_id\":\"d$i\",\"amount\":10,\"currency\":\"EUR\",\"ip_country\":\"FR\",\"card_country\":\"FR\"}"; done
  ts=()
  for i in $(seq $n); do
    ts+=($(curl -s -o /dev/null -w '%{time_total}' localhost:48911/v1/score -d "{\"id\":\"e$bin$i$RANDOM$RANDOM\",\"type\":\"checkout\",\"account_id\":\"acc$((i%7))\",\"card_id\":\"card$((i%5))\",\"device_id\":\"dev$((i%3))\",\"amount\":80,\"currency\":\"EUR\",\"ip_country\":\"FR\",\"card_country\":\"FR\"}"))
  done
  deg=$(curl -s localhost:48911/v1/score -d "{\"id\":\"last$bin$RANDOM\",\"type\":\"checkout\",\"account_id\":\"acc1\",\"card_id\":\"card1\",\"amount\":80}" | grep -o '"degraded":[a-z]*')
  printf '%s\n' "${ts[@]}" | sort -n | awk -v b="$(basename "$bin")" -v deg="$deg" '{a[NR]=$1} END {printf "%s: p50 %.2f ms, p90 %.2f ms (%d sequential requests) %s\n", b, a[int(NR*0.5)]*1000, a[int(NR*0.9)]*1000, NR, deg}'
  kill $rp; wait $rp 2>/dev/null
done
