package storetest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/poll"
)

// KeptDecisions holds a store to the decisions it keeps beside first
// answers (GET /v1/decisions/{id}): none before an id is answered, the
// one kept after (a store writing it behind the answer within a poll),
// cut to features.MaxDecisionBytes, and none once the id's idempotency
// window has passed. clock is the store's clock (nil: the store runs on
// event time, moved by a later event).
func KeptDecisions(t *testing.T, s features.Store, clock *Clock) {
	ctx := context.Background()
	f := NewFeature(features.Count, time.Hour)
	if clock != nil {
		clock.Advance(T0)
	}
	lookup := func(id string) []byte {
		t.Helper()
		dec, err := s.Decision(ctx, id)
		if err != nil {
			t.Fatalf("decision of %s: %v", id, err)
		}
		return dec
	}
	if dec := lookup("d-1"); dec != nil {
		t.Fatalf("decision of an id never scored: %q", dec)
	}
	ObserveOne(t, s, f, Ev{ID: "d-1", Key: "k1"})
	s.KeepDecision("d-1", []byte(`{"decision":"review","score":70}`))
	long := `{"decision":"pass","reasons":"` + strings.Repeat("x", 2*features.MaxDecisionBytes) + `"}`
	ObserveOne(t, s, f, Ev{ID: "d-2", Key: "k1", TS: 1})
	s.KeepDecision("d-2", []byte(long))
	poll.Until(t, "the decisions kept", func() bool { return lookup("d-1") != nil && lookup("d-2") != nil })
	if got := lookup("d-1"); string(got) != `{"decision":"review","score":70}` {
		t.Errorf("decision of d-1: %q", got)
	}
	if got := lookup("d-2"); !bytes.Equal(got, []byte(long[:features.MaxDecisionBytes])) {
		t.Errorf("decision of d-2: %d bytes, want the first %d", len(got), features.MaxDecisionBytes)
	}
	// An id no answer is kept for keeps no decision either.
	s.KeepDecision("never", []byte(`{}`))
	// Past the window: a later event moves an event-time clock.
	later := Window.Seconds() + 10
	if clock != nil {
		clock.Advance(T0 + Window.Milliseconds() + 10_000)
	}
	ObserveOne(t, s, f, Ev{ID: "d-3", Key: "k2", TS: later})
	if got := lookup("d-1"); got != nil {
		t.Errorf("decision of d-1 past the idempotency window: %q", got)
	}
	if got := lookup("never"); got != nil {
		t.Errorf("decision of an id never answered: %q", got)
	}
}
