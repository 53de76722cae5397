package redisstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/poll"
	"github.com/riskd/riskd/internal/redistest"
	"github.com/riskd/riskd/internal/storetest"
)

// TestClusterFailoverLosesNothing: events scored while a Cluster changes
// under them — a master failed over to its replica (CLUSTER FAILOVER,
// the safe manual one: MOVED, and now and then a node that sees the
// cluster fail for a few milliseconds: CLUSTERDOWN), a slot resharded to
// another master (ASK while it moves, TRYAGAIN while an entity's keys
// are split between the two nodes, MOVED after) — are each answered and
// recorded exactly once: the features of later events are the oracle's,
// which counts every one of them, and a retry of one is answered its
// first answer without being counted again.
func TestClusterFailoverLosesNothing(t *testing.T) {
	t.Run("failover", func(t *testing.T) {
		c := redistest.StartClusterReplicas(t)
		underLoad(t, c, func(phase func(string)) {
			// Every master in turn: whichever holds the hot entities'
			// slots (the entities spread over all of them).
			for i, m := range c.Masters(t) {
				phase(fmt.Sprint("failover ", i+1))
				c.Failover(t, c.ReplicaOf(t, m))
			}
		})
	})
	t.Run("migration", func(t *testing.T) {
		c := redistest.StartClusterReplicas(t)
		// The slot of card0's single-key features: the hash tag of
		// Store.entityKey.
		slot := c.KeySlot(t, "{[k]=card0}")
		from := c.SlotOwner(t, slot)
		var to *redistest.Server
		for _, m := range c.Masters(t) {
			if m != from {
				to = m
				break
			}
		}
		underLoad(t, c, func(phase func(string)) {
			phase("migrating, every key on the source")
			m := c.StartMigration(t, slot, from, to)
			hold()
			// Keys moved one at a time until one of card0's is: its
			// logs are split between the two nodes, so its transactions
			// are refused (TRYAGAIN) until the rest follows.
			phase("migrating, card0's keys split")
			for split := false; !split; {
				moved := m.MoveKeys(t, 1)
				if len(moved) == 0 {
					t.Fatalf("slot %d holds no key of card0", slot)
				}
				split = strings.Contains(moved[0], "{[k]=card0}")
			}
			hold()
			phase("migrating, every key on the target (ASK)")
			for len(m.MoveKeys(t, 100)) > 0 {
			}
			hold()
			phase("migrated (MOVED)")
			m.Finish(t)
		})
	})
}

// hold lets the load run for a while in the state the fault left.
func hold() { time.Sleep(300 * time.Millisecond) }

// loadEvent is an event scored under load, and what the store said.
type loadEvent struct {
	e     storetest.Event
	obs   *features.Observation
	err   error
	phase string
}

// underLoad scores events on a few hot entities from several goroutines
// while fault runs (naming each step with phase), then requires every
// one of them to be counted exactly once.
//
// The oracle is sequential and the load is not, so the load's own
// answers are not compared (their order differs); what is compared is
// what they left behind. Every load event is earlier than every check
// event after the load, and within the lateness allowance and the
// shortest window of them, so the oracle's features of the check events
// do not depend on the load's order: a load event lost makes a count
// lower than the oracle's, one recorded twice higher.
func underLoad(t *testing.T, c *redistest.Cluster, fault func(phase func(string))) {
	clock := &storetest.Clock{}
	var errMu sync.Mutex
	var errs []error
	// A record timeout the fault cannot outlast, and requests that give
	// up later still: every load event is answered, and recorded by its
	// own call, not left to the backlog.
	s := newRedisOpts(t, clock, Options{Addrs: c.Addrs(), RecordTimeout: 5 * time.Second,
		OnError: func(err error) { errMu.Lock(); errs = append(errs, err); errMu.Unlock() }})
	set := storetest.OracleSet()
	o := storetest.NewOracle(set.Features)
	cards := []string{"card0", "card1", "card2"}
	event := func(id string, ts int64, n int) storetest.Event {
		amount := int64(n%7+1) * 1_000_000
		if n%13 == 0 {
			amount = 600_000_000 // the "amount > 500" logs
		}
		typ := "a"
		if n%3 == 0 {
			typ = "b"
		}
		return storetest.Event{ID: id, Type: typ, TS: ts, Amount: &amount,
			Fields: map[string]string{"k": cards[n%len(cards)], "k2": "x", "of": fmt.Sprint("v", n%5)}}
	}
	check := func(e storetest.Event) {
		t.Helper()
		want := o.Observe(e)
		clock.Advance(e.TS)
		obs := storetest.NewObservation(set.Features, e)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := s.Observe(ctx, obs); err != nil {
			t.Fatalf("event %s: %v", e.ID, err)
		}
		for i, it := range obs.Items {
			if it.Value != want[i] {
				t.Errorf("event %s on %s %s: store %+v, oracle %+v", e.ID, e.Fields["k"], it.Feature.Name, it.Value, want[i])
			}
		}
	}
	// Each entity's runs start here, before the load: which of the
	// load's concurrent events comes first is not what is tested.
	for i := range 2 * len(cards) {
		check(event(fmt.Sprint("before", i), storetest.T0+int64(i)*1000, i))
	}

	var (
		next    atomic.Int64
		stop    atomic.Bool
		phase   atomic.Value
		mu      sync.Mutex
		scored  []loadEvent
		workers sync.WaitGroup
	)
	phase.Store("before the fault")
	for range 4 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for !stop.Load() {
				n := int(next.Add(1))
				// A millisecond apart from T0+10s: far fewer than the
				// 60,000 that would span the shortest window.
				e := event(fmt.Sprint("load", n), storetest.T0+10_000+int64(n), n)
				le := loadEvent{e: e, obs: storetest.NewObservation(set.Features, e), phase: phase.Load().(string)}
				clock.Advance(e.TS)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				le.err = s.Observe(ctx, le.obs)
				cancel()
				mu.Lock()
				scored = append(scored, le)
				mu.Unlock()
				// Paced: the oracle, which takes all of them after,
				// is quadratic in the events of a key.
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	hold()
	start := time.Now()
	fault(func(p string) { phase.Store(p) })
	took := time.Since(start)
	phase.Store("after the fault")
	hold()
	stop.Store(true)
	workers.Wait()

	phases := map[string]int{}
	var last int64
	for _, le := range scored {
		phases[le.phase]++
		last = max(last, le.e.TS)
		if le.err != nil {
			t.Errorf("load event %s (%s, %s): %v", le.e.ID, le.e.Fields["k"], le.phase, le.err)
		}
	}
	t.Logf("%d events scored under load, the fault taking %v: %v; Redis replied %s", len(scored), took.Round(time.Millisecond), phases, redirects(t, c))
	// The oracle records them all, in time order (the same in any
	// other: see above).
	slices.SortFunc(scored, func(a, b loadEvent) int { return cmp.Compare(a.e.TS, b.e.TS) })
	for _, le := range scored {
		o.Observe(le.e)
	}

	// A retry of events scored during the fault (the first two of each
	// step) is answered as they were, once their answers are kept, and
	// records nothing: the checks below would count it twice.
	retried := map[string]int{}
	for _, le := range scored {
		if le.err != nil || retried[le.phase] == 2 || strings.HasSuffix(le.phase, " the fault") {
			continue
		}
		retried[le.phase]++
		poll.Wait{For: 10 * time.Second}.Until(t, "the answer of "+le.e.ID+" is kept", func() bool {
			v, err := s.client.Get(t.Context(), s.idKey(le.e.ID)).Result()
			return err == nil && strings.HasPrefix(v, string(answerMark))
		})
		obs := storetest.NewObservation(set.Features, le.e)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := s.Observe(ctx, obs)
		cancel()
		if err != nil || !obs.Retry {
			t.Errorf("retry of %s (%s): retry %v, %v; want its first answer", le.e.ID, le.phase, obs.Retry, err)
			continue
		}
		for i, it := range obs.Items {
			if it.Value != le.obs.Items[i].Value {
				t.Errorf("retry of %s (%s) %s: %+v, first answered %+v", le.e.ID, le.phase, it.Feature.Name, it.Value, le.obs.Items[i].Value)
			}
		}
	}

	s.backlog.mu.Lock()
	left := len(s.backlog.events)
	s.backlog.mu.Unlock()
	if left > 0 {
		t.Errorf("%d events left in the backlog: not recorded by their own calls", left)
	}
	for i := range 3 * len(cards) {
		check(event(fmt.Sprint("after", i), last+1000+int64(i), i))
	}
	errMu.Lock()
	defer errMu.Unlock()
	for _, err := range errs {
		t.Errorf("store reported: %v", err)
	}
}

// redirects sums the replies of the nodes that send a client elsewhere
// or to try again (INFO errorstats): what the fault made the store
// follow.
func redirects(t *testing.T, c *redistest.Cluster) string {
	counts := map[string]int{}
	for _, addr := range c.Addrs() {
		rc := redis.NewClient(&redis.Options{Addr: addr})
		info, err := rc.Info(t.Context(), "errorstats").Result()
		rc.Close()
		if err != nil {
			t.Fatalf("INFO errorstats of %s: %v", addr, err)
		}
		for line := range strings.Lines(info) {
			var name string
			var n int
			_, err := fmt.Sscanf(strings.Replace(strings.TrimSpace(line), ":count=", " ", 1), "errorstat_%s %d", &name, &n)
			if err == nil && slices.Contains([]string{"MOVED", "ASK", "TRYAGAIN", "EXECABORT", "CLUSTERDOWN"}, name) {
				counts[name] += n
			}
		}
	}
	return fmt.Sprint(counts)
}
