package redisstore

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/internal/lagproxy"
	"github.com/riskd/riskd/internal/redistest"
	"github.com/riskd/riskd/internal/storetest"
)

// TestOneRoundTripPerEvent counts the round trips an event makes before
// its answer, through a proxy (the pool's handshakes and the answers
// written afterwards left out): one for a new event on a standalone server
// (claim, reads and records together), whatever its logs; its answer is
// kept afterwards. A retry of an answered event is one too: it finds the
// answer where it would have claimed.
func TestOneRoundTripPerEvent(t *testing.T) {
	srv := redistest.Start(t)
	proxy := lagproxy.Start(t, srv.Addr(), 0)
	clock := &storetest.Clock{}
	s := newRedis(t, clock, proxy.Addr())
	roundTrips(t, s, clock, proxy.Flights, proxy.Opened)
}

// TestOneRoundTripPerEventCluster: on a Cluster too, where the claim and
// each entity's logs live on different nodes, a new event is one round
// trip: one pipeline (per node, sent at once) before its answer. The
// proxy cannot stand between go-redis and a Cluster's nodes (they
// announce their own addresses), so the client's pipelines are counted,
// as they leave: one per round trip, however many nodes it reaches.
func TestOneRoundTripPerEventCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	clock := &storetest.Clock{}
	s := newRedis(t, clock, c.Addrs()...)
	var h tripHook
	s.client.AddHook(&h)
	roundTrips(t, s, clock, h.trips.Load, h.dials.Load)
}

// tripHook counts a client's round trips (a command alone, or a
// pipeline) and its dials.
type tripHook struct{ trips, dials atomic.Int64 }

func (h *tripHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.dials.Add(1)
		return next(ctx, network, addr)
	}
}

func (h *tripHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.trips.Add(1)
		return next(ctx, cmd)
	}
}

func (h *tripHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.trips.Add(1)
		return next(ctx, cmds)
	}
}

// roundTrips scores events on s and checks each took one round trip
// before its answer, as trips counts them; opened counts the dials, whose
// handshakes would count too.
func roundTrips(t *testing.T, s *Store, clock *storetest.Clock, trips, opened func() int64) {
	set := storetest.OracleSet() // every kind, several logs and entities
	one := int64(1_000_000)
	// The answers wait here until the count of their event is taken: they
	// are written after the answer, and would otherwise race the count.
	s.writer.close()
	held := &writer{client: s.client, timeout: time.Minute, jobs: make(chan writeJob, 64)}
	held.stop, held.cancel = context.WithCancel(context.Background())
	s.writer = held
	flush := func() {
		for {
			select {
			case j := <-held.jobs:
				held.send([]writeJob{j})
			default:
				return
			}
		}
	}
	score := func(id string, ts int64) int64 {
		t.Helper()
		clock.Advance(ts)
		obs := storetest.NewObservation(set.Features, storetest.Event{ID: id, Type: "b", TS: ts,
			Fields: map[string]string{"k": "a", "k2": "b", "of": "x"}, Amount: &one})
		before, dialled := trips(), opened()
		if err := s.Observe(t.Context(), obs); err != nil {
			t.Fatal(err)
		}
		n := trips() - before
		flush()
		if opened() != dialled {
			return -1 // the pool dialled meanwhile: its handshake counts too
		}
		return n
	}
	// The first events open the pool's connections and load the script.
	for i := range 8 {
		score(fmt.Sprint("warm", i), storetest.T0+int64(i)*1000)
	}
	counted, last := 0, 0
	for i := 0; counted < 20; i++ {
		id := fmt.Sprint("e", i)
		last = i
		switch n := score(id, storetest.T0+int64(10+i)*1000); {
		case n < 0:
			if i > 100 {
				t.Fatal("the pool keeps opening connections")
			}
		case n != 1:
			t.Errorf("event %s: %d round trips before its answer, want 1", id, n)
			fallthrough
		default:
			counted++
		}
	}
	// A retry as clients send them, its first scoring still in its logs
	// (one whose records were trimmed since takes them back: two).
	for n := int64(-1); n < 0; {
		if n = score(fmt.Sprint("e", last-2), storetest.T0+int64(10+last-2)*1000); n > 1 {
			t.Errorf("a retry: %d round trips before its answer, want 1", n)
		}
	}
}
