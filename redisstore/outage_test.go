package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riskd/riskd/internal/poll"
	"github.com/riskd/riskd/internal/redistest"
	"github.com/riskd/riskd/internal/storetest"
)

// TestOutageLosesNothing is the reproduction of a paused Redis (SIGSTOP:
// a GC pause, a partition, a failover taking its time) that used to lose
// the events scored during it: each gives up on its short budget, yet is
// recorded once Redis answers again, and every later event's features
// are the oracle's, as if nothing had happened. A retry of an event that
// gave up is answered.
func TestOutageLosesNothing(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		srv := redistest.Start(t)
		outage(t, []*redistest.Server{srv}, srv.Addr())
	})
	t.Run("cluster", func(t *testing.T) {
		c := redistest.StartCluster(t)
		outage(t, c.Nodes, c.Addrs()...)
	})
}

// outage pauses every node of nodes for 5 s while events are scored.
func outage(t *testing.T, nodes []*redistest.Server, addrs ...string) {
	clock := &storetest.Clock{}
	var mu sync.Mutex
	var errs []error
	s := newRedisOpts(t, clock, Options{Addrs: addrs, RecordTimeout: 20 * time.Second,
		OnError: func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }})
	set := storetest.OracleSet()
	o := storetest.NewOracle(set.Features)
	one := int64(1_000_000)
	event := func(id string, sec int64, k string) storetest.Event {
		return storetest.Event{ID: id, Type: "a", TS: storetest.T0 + sec*1000, Fields: map[string]string{"k": k, "k2": "x", "of": id}, Amount: &one}
	}
	check := func(e storetest.Event) {
		t.Helper()
		want := o.Observe(e)
		clock.Advance(e.TS)
		obs := storetest.NewObservation(set.Features, e)
		if err := s.Observe(t.Context(), obs); err != nil {
			t.Fatalf("event %s: %v", e.ID, err)
		}
		for i, it := range obs.Items {
			if it.Value != want[i] {
				t.Errorf("event %s %s: store %+v, oracle %+v", e.ID, it.Feature.Name, it.Value, want[i])
			}
		}
	}
	for i := range 5 {
		check(event(fmt.Sprint("before", i), int64(i), "card"))
	}
	for _, n := range nodes {
		n.Pause()
	}
	paused := time.Now()
	var lost []storetest.Event
	for i := range 5 {
		e := event(fmt.Sprint("during", i), int64(10+i), fmt.Sprint("card", i%2))
		o.Observe(e) // the oracle records it: the store must too
		clock.Advance(e.TS)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
		err := s.Observe(ctx, storetest.NewObservation(set.Features, e))
		cancel()
		if err == nil {
			t.Fatalf("event %s answered while Redis was paused", e.ID)
		}
		lost = append(lost, e)
	}
	// A 5 s outage, then Redis answers again.
	time.Sleep(5*time.Second - time.Since(paused))
	for _, n := range nodes {
		n.Resume()
	}
	// A retry of an event that gave up is answered, not degraded again:
	// it waits for the recording under way and gets its answer, or (its
	// claim reaching Redis first) is the one that records it. Either way
	// the event is recorded once: the checks below would count it twice.
	obs := storetest.NewObservation(set.Features, lost[0])
	if err := s.Observe(t.Context(), obs); err != nil {
		t.Fatalf("retry of %s: %v", lost[0].ID, err)
	}
	// The events that gave up are recorded in the background; later
	// events are compared once that is done (their answers are kept).
	for _, e := range lost {
		poll.Wait{For: 30 * time.Second}.Until(t, "the answer of "+e.ID+" is kept", func() bool {
			v, err := s.client.Get(t.Context(), s.idKey(e.ID)).Result()
			return err == nil && strings.HasPrefix(v, string(answerMark))
		})
	}
	for i := range 5 {
		check(event(fmt.Sprint("after", i), int64(20+i), fmt.Sprint("card", i%2)))
		check(event(fmt.Sprint("after-card", i), int64(20+i), "card"))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, err := range errs {
		t.Errorf("store reported: %v", err)
	}
}
