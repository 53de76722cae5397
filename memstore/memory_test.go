package memstore

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/storetest"
)

func TestMemoryMatchesOracle(t *testing.T) {
	newMemory := func(runningFrom int) storetest.StoreMaker {
		return func(t *testing.T) (features.Store, *storetest.Clock) {
			return New(Options{Options: features.Options{IdempotencyWindow: storetest.Window, Lateness: storetest.Lateness, RunningFrom: runningFrom}, EventTime: true}), nil
		}
	}
	storetest.Conformance(t, newMemory(0))
	// Windows here rarely hold enough events for the running aggregates
	// busy keys use: run again with them on every in-order read.
	t.Run("running", func(t *testing.T) {
		storetest.Conformance(t, newMemory(-1))
	})
}

func TestMemoryKinds(t *testing.T) {
	storetest.Kinds(t, func(*testing.T) features.Store { return newTestMemory() })
}

func newTestMemory() *Store { return New(Options{EventTime: true}) }

func TestMemoryEvictsHistoryOlderThanTheHorizon(t *testing.T) {
	m := newTestMemory()
	f := storetest.NewFeature(features.Count, time.Minute)
	// 20,000 events one second apart over 2,000 keys: each key sees an
	// event every 2,000 s, far more than the minute it keeps.
	for i := 0; i < 20000; i++ {
		storetest.ObserveOne(t, m, f, storetest.Ev{ID: fmt.Sprint(i), TS: float64(i), Key: fmt.Sprint("k", i%2000)})
	}
	st := m.Stats()
	if st.Entries > 2000 {
		t.Errorf("store holds %d entries, want at most one per key (2000)", st.Entries)
	}
	// Ids are kept for a day of event time; 20,000 s is less than a day.
	if st.IDs != 20000 {
		t.Errorf("store remembers %d ids, want 20000", st.IDs)
	}
	// A day and more later, idle keys and old ids go.
	for i := 0; i < 20000; i++ {
		storetest.ObserveOne(t, m, f, storetest.Ev{ID: fmt.Sprint("late", i), TS: 200000 + float64(i), Key: "hot"})
	}
	st = m.Stats()
	if st.Series > 100 {
		t.Errorf("store keeps %d series after every key went idle, want the idle ones evicted", st.Series)
	}
	if st.IDs >= 20000+20000 {
		t.Errorf("store remembers %d ids, want old ones forgotten", st.IDs)
	}
}

func TestMemoryConcurrentScoringCountsEachEventOnce(t *testing.T) {
	m := newTestMemory()
	f := storetest.NewFeature(features.Count, time.Hour)
	const workers, perWorker = 8, 500
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				// Every worker sends the same ids: each is a retry of the others.
				storetest.ObserveOne(t, m, f, storetest.Ev{ID: fmt.Sprint(i), TS: float64(i) / 1000, Key: "shared"})
			}
		}()
	}
	wg.Wait()
	got := storetest.ObserveOne(t, m, f, storetest.Ev{ID: "final", TS: 10, Key: "shared"})
	if got.Num != perWorker {
		t.Fatalf("count after %d workers sent the same %d events: %v, want %d", workers, perWorker, got.Num, perWorker)
	}
}

// TestMemoryStaysBoundedWithNewKeys: three keys never seen again per
// event (the 90 s windows over unique keys) leave no more keys
// alive than the horizon, lateness and margin hold, and with a cap no
// more than the cap, the least recently seen going first.
func TestMemoryStaysBoundedWithNewKeys(t *testing.T) {
	fs := []*features.Feature{
		{Name: "a", Kind: features.Count, Key: []features.Path{features.NewPath("a")}, Entity: "a", Window: 90 * time.Second},
		{Name: "b", Kind: features.Count, Key: []features.Path{features.NewPath("b")}, Entity: "b", Window: 90 * time.Second},
		{Name: "c", Kind: features.Count, Key: []features.Path{features.NewPath("c")}, Entity: "c", Window: 90 * time.Second},
	}
	features.NewSet(fs...)
	for _, tt := range []struct {
		name     string
		cap      int
		wantMost int
	}{
		// Kept: 90 s + 10 min lateness + a day's margin, three keys a
		// second, and at most a third more expired but not yet examined.
		{"expiry", 0, 4 * (90 + 600 + 86400 + 60)},
		{"cap", 5000, 5000 + numShards*examinePerNew},
	} {
		t.Run(tt.name, func(t *testing.T) {
			evictions := 0
			m := New(Options{EventTime: true, MaxEntities: tt.cap, OnEvict: func(n int) { evictions += n }})
			for i := range 150_000 { // an event a second: 41 hours
				obs := storetest.NewObservation(fs, storetest.Event{ID: fmt.Sprint(i), Type: "a", TS: storetest.T0 + int64(i)*1000,
					Fields: map[string]string{"a": fmt.Sprint("a", i), "b": fmt.Sprint("b", i), "c": fmt.Sprint("c", i)}})
				if err := m.Observe(context.Background(), obs); err != nil {
					t.Fatal(err)
				}
			}
			st := m.Stats()
			if st.Entities > tt.wantMost || int64(st.Entities) != m.count.Load() {
				t.Errorf("%d keys alive (counted %d), want at most %d", st.Entities, m.count.Load(), tt.wantMost)
			}
			if tt.cap > 0 && (evictions == 0 || int64(evictions) != m.Evicted()) {
				t.Errorf("cap evicted %d (told %d)", m.Evicted(), evictions)
			}
		})
	}
}

// TestMemoryCapsAnswers: with MaxAnswers, the answers kept for retries
// stay within it (the oldest go first) inside the idempotency window; a
// retry of a recent id still gets its answer, one of an id let go is
// scored as a new event.
func TestMemoryCapsAnswers(t *testing.T) {
	fs := []*features.Feature{{Name: "a", Kind: features.Count, Key: []features.Path{features.NewPath("a")}, Entity: "a", Window: time.Hour}}
	features.NewSet(fs...)
	m := New(Options{EventTime: true, MaxAnswers: 10 * numShards})
	event := func(i int) *features.Observation {
		return storetest.NewObservation(fs, storetest.Event{ID: fmt.Sprint("e", i), Type: "a", TS: storetest.T0 + int64(i), Fields: map[string]string{"a": "k"}})
	}
	const n = 5000 // within a few seconds: far inside the 24h window
	for i := range n {
		if err := m.Observe(context.Background(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	if ids := m.Stats().IDs; ids > 10*numShards {
		t.Errorf("%d answers kept, over the cap of %d", ids, 10*numShards)
	}
	for _, tt := range []struct {
		i     int
		retry bool
	}{{n - 1, true}, {0, false}} {
		obs := event(tt.i)
		if err := m.Observe(context.Background(), obs); err != nil {
			t.Fatal(err)
		}
		if obs.Retry != tt.retry {
			t.Errorf("id e%d again: retry %v, want %v", tt.i, obs.Retry, tt.retry)
		}
	}
}

func TestMemoryKeepsDecisions(t *testing.T) {
	storetest.KeptDecisions(t, New(Options{Options: features.Options{IdempotencyWindow: storetest.Window}, EventTime: true}), nil)
}
