#!/usr/bin/env bash
# Runs riskd's tests on a fresh machine: installs what they need where it
# is missing (redis-server and redis-cli for the Redis store's tests, kcat
# for the Kafka end-to-end test, curl for the docs' examples, promtool
# from Debian's prometheus package for the alerting rules, chromium for
# the review console's browser test), then vets and runs every test with
# the race detector.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v kcat >/dev/null || need+=(kcat)
command -v curl >/dev/null || need+=(curl)
command -v promtool >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  # Without recommends: prometheus would bring a node exporter along.
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

go vet ./...

# The alerting rules, and their unit tests: every alert fires where it
# should and nowhere else.
promtool check rules deploy/prometheus/alerts.yaml
(cd deploy/prometheus && promtool test rules alerts_test.yaml)

# The shipped policies and their rule tests, the way analysts check theirs.
for dir in rules/example bench/handbook; do
  go run ./cmd/riskctl validate "$dir"
  go run ./cmd/riskctl test "$dir"
done

go test -race -count=1 "$@" ./...

# The peer comparison is a module of its own: check that its four engines
# still agree on the example policy.
(cd bench/peers && go vet ./... && go test -count=1 ./...)
