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
	Wait{}.Until(t, what, cond)
}

// Wait says how to poll. Zero values take the defaults in the comments.
type Wait struct {
	Every time.Duration // between two calls of the condition; default 10ms
	For   time.Duration // before failing; default 30s
	// Explain, if set, says what the test saw, after the failure's message.
	Explain func() string
}

// Until polls cond until it holds, or fails t naming what it waited for.
func (w Wait) Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if w.Every <= 0 {
		w.Every = 10 * time.Millisecond
	}
	if w.For <= 0 {
		w.For = 30 * time.Second
	}
	deadline := time.Now().Add(w.For)
	for !cond() {
		if time.Now().After(deadline) {
			if w.Explain != nil {
				t.Fatalf("waited %v for %s\n%s", w.For, what, w.Explain())
			}
			t.Fatalf("waited %v for %s", w.For, what)
		}
		time.Sleep(w.Every)
	}
}
