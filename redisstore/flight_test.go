package redisstore

import (
	"testing"
	"time"
	"unsafe"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/poll"
	"github.com/riskd/riskd/internal/redistest"
	"github.com/riskd/riskd/internal/storetest"
)

// TestFlightsOutliveReusedIDs: the engine's observations carry an id
// that aliases the request's body, reused for the next request once
// Observe returns. The event's flight lands after that (when its answer
// is kept), and must still find itself: a flight left behind would make
// every later retry of its id wait out its budget.
func TestFlightsOutliveReusedIDs(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, &storetest.Clock{}, srv.Addr())
	f := storetest.NewFeature(features.Count, time.Hour)
	body := []byte("event-1")
	obs := storetest.NewObservation([]*features.Feature{f}, storetest.Event{ID: unsafe.String(&body[0], len(body)),
		TS: storetest.T0, Fields: map[string]string{"k": "a"}})
	if err := s.Observe(t.Context(), obs); err != nil {
		t.Fatal(err)
	}
	copy(body, "other-2") // the next request
	poll.Wait{For: 10 * time.Second}.Until(t, "its flight to land", func() bool {
		s.flights.mu.Lock()
		defer s.flights.mu.Unlock()
		return len(s.flights.m) == 0
	})
}
