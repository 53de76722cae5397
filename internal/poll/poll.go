// Package poll waits in tests for a condition another goroutine or
// process brings about, rather than for a guessed time.
package poll

import (
	"testing"
	"time"
)

// Every is how often Until asks again.
const Every = 5 * time.Millisecond

// Until returns once cond holds, asking every Every, and fails t (naming
// what was awaited) if it still does not after timeout.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(Every)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("%s: not within %v", what, timeout)
		case <-tick.C:
		}
	}
}
