package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/riskd/riskd/features"
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
		outage(t, []*redistest.Server{srv}, 20*time.Second, srv.Addr())
	})
	t.Run("cluster", func(t *testing.T) {
		c := redistest.StartCluster(t)
		outage(t, c.Nodes, 20*time.Second, c.Addrs()...)
	})
}

// TestOutageBacklog: an outage longer than the record timeout. The
// events that gave up wait in the backlog, and are recorded when Redis
// answers again: every later event's features are the oracle's.
func TestOutageBacklog(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		srv := redistest.Start(t)
		outage(t, []*redistest.Server{srv}, 300*time.Millisecond, srv.Addr())
	})
	t.Run("cluster", func(t *testing.T) {
		c := redistest.StartCluster(t)
		outage(t, c.Nodes, 300*time.Millisecond, c.Addrs()...)
	})
}

// outage pauses every node of nodes for 5 s while events are scored,
// with the store's record timeout record: longer than the outage, the
// events are recorded by their own attempts; shorter, by the backlog.
func outage(t *testing.T, nodes []*redistest.Server, record time.Duration, addrs ...string) {
	clock := &storetest.Clock{}
	var mu sync.Mutex
	var errs []error
	s := newRedisOpts(t, clock, Options{Addrs: addrs, RecordTimeout: record,
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
	kept := func(id string) {
		t.Helper()
		poll.Wait{For: 30 * time.Second}.Until(t, "the answer of "+id+" is kept", func() bool {
			v, err := s.client.Get(t.Context(), s.idKey(id)).Result()
			return err == nil && strings.HasPrefix(v, string(answerMark))
		})
	}
	for i := range 5 {
		check(event(fmt.Sprint("before", i), int64(i), "card"))
	}
	// Their answers are kept before the outage: the writer's failures
	// are another story (reported; a retry then scores again).
	for i := range 5 {
		kept(fmt.Sprint("before", i))
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
	if record < 5*time.Second {
		poll.Wait{For: 30 * time.Second}.Until(t, "the events that gave up wait in the backlog", func() bool {
			s.backlog.mu.Lock()
			defer s.backlog.mu.Unlock()
			return len(s.backlog.events) == len(lost)
		})
	}
	// A 5 s outage, then Redis answers again; the clock moves on past
	// the claims' lease, as it would have (the store's clock is the
	// test's).
	time.Sleep(5*time.Second - time.Since(paused))
	clock.Advance(storetest.T0 + 20_000)
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
		kept(e.ID)
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

// TestBacklogFullIsReported: events that find the backlog full are
// counted and reported, never dropped silently.
func TestBacklogFullIsReported(t *testing.T) {
	srv := redistest.Start(t)
	var mu sync.Mutex
	var errs []string
	s := newRedisOpts(t, nil, Options{Addrs: []string{srv.Addr()}, Backlog: 2,
		OnError: func(err error) { mu.Lock(); errs = append(errs, err.Error()); mu.Unlock() }})
	srv.Stop()
	f := storetest.NewFeature(features.Count, time.Hour)
	for i := range 4 {
		obs := storetest.NewObservation([]*features.Feature{f}, storetest.Event{ID: fmt.Sprint(i), TS: storetest.T0 + 1000, Fields: map[string]string{"k": "a"}})
		if err := s.Observe(t.Context(), obs); err == nil {
			t.Fatal("Observe succeeded with the server down")
		}
	}
	if n := testutil.ToFloat64(s.backlog.gauge); n != 2 {
		t.Errorf("riskd_redis_record_backlog %v, want 2", n)
	}
	if n := testutil.ToFloat64(s.backlog.dropped.WithLabelValues("full")); n != 2 {
		t.Errorf(`riskd_redis_record_dropped_total{reason="full"} %v, want 2`, n)
	}
	// The first drop is reported at once, the next ones at most every
	// dropReportEvery: held until then.
	mu.Lock()
	defer mu.Unlock()
	s.backlog.mu.Lock()
	reported := 2 - s.backlog.drops["full"]
	s.backlog.mu.Unlock()
	var said int
	for _, e := range errs {
		if strings.Contains(e, "full:1") {
			said++
		} else if strings.Contains(e, "full:2") {
			said += 2
		}
	}
	if len(errs) == 0 || !strings.Contains(errs[0], `event "2"`) || said != reported {
		t.Errorf("reported %q (%d drops, want %d), want the first naming event 2, the backlog full", errs, said, reported)
	}
}
