#!/usr/bin/env bash
# Runs riskd's tests on a fresh machine: installs what they need where it
# is missing (gcc and the C library headers for the race detector,
# redis-server and redis-cli for the Redis store's tests, redis-sentinel
# for the failover tests, kcat for the Kafka end-to-end test, curl for the
# docs' examples, promtool from Debian's prometheus package for the
# alerting rules, chromium for the review console's browser test), then
# vets, runs every test with the race detector and
# every benchmark once.
# Extra arguments go to the race run: ./test.sh -run TestReload
set -euo pipefail
cd "$(dirname "$0")"

# step says what runs next: cold, the first steps spend minutes compiling
# before they print anything.
step() { echo "test.sh: $*" >&2; }

need=()
command -v gcc >/dev/null || need+=(gcc)
[ -e /usr/include/stdlib.h ] || need+=(libc6-dev)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v redis-sentinel >/dev/null || need+=(redis-sentinel)
command -v kcat >/dev/null || need+=(kcat)
command -v curl >/dev/null || need+=(curl)
command -v promtool >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  # Without recommends: prometheus would bring a node exporter along.
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The race detector needs cgo.
export CGO_ENABLED=1

step "go vet ./... (compiles every package: a minute or two when cold)"
go vet ./...

# The alerting rules, and their unit tests: every alert fires where it
# should and nowhere else.
step "promtool: the alerting rules and their tests"
promtool check rules deploy/prometheus/alerts.yaml
(cd deploy/prometheus && promtool test rules alerts_test.yaml)

# The shipped policies and their rule tests, the way analysts check theirs.
step "riskctl validate and test: rules/example, bench/handbook"
go build -o "${TMPDIR:-/tmp}/riskctl.$$" ./cmd/riskctl
trap 'rm -f "${TMPDIR:-/tmp}/riskctl.$$"' EXIT
for dir in rules/example bench/handbook; do
  "${TMPDIR:-/tmp}/riskctl.$$" validate -strict "$dir"
  "${TMPDIR:-/tmp}/riskctl.$$" test "$dir"
done

step "go test -race ./... (compiles again with the race detector, then one line a package)"
go test -race -count=1 "$@" ./...

# A benchmark that panics fails here, not in bench/run months later.
# -short keeps their warm-ups small: this checks that each runs, it
# measures nothing.
step "every benchmark once (-benchtime 1x -short)"
go test -short -count=1 -run XXX -bench . -benchtime 1x ./... | grep -Ev '^(Benchmark|goos:|goarch:|pkg:|cpu:|PASS$)'

# The peer comparison is a module of its own: check that its four engines
# still agree on the example policy.
step "bench/peers: vet, tests and benchmarks once"
(cd bench/peers && go vet ./... && go test -count=1 ./... && go test -short -count=1 -run XXX -bench . -benchtime 1x ./... | grep -Ev '^(Benchmark|goos:|goarch:|pkg:|cpu:|PASS$)')
step "ok"
