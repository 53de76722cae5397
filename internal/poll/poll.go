// Package poll waits in tests for a condition to hold, in place of
// sleeping for a time that is too long on a quiet machine and too short
// on a loaded one.
package poll

import (
	"testing"
	"time"
)

// Until polls cond every 10ms until it holds, or fails t after 30s naming
// what it waited for.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
