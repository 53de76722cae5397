package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

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
		before, opened := proxy.Flights(), proxy.Opened()
		if err := s.Observe(t.Context(), obs); err != nil {
			t.Fatal(err)
		}
		n := proxy.Flights() - before
		flush()
		if proxy.Opened() != opened {
			return -1 // the pool dialled meanwhile: its handshake counts too
		}
		return n
	}
	// The first events open the pool's connections and load the script.
	for i := range 8 {
		score(fmt.Sprint("warm", i), storetest.T0+int64(i)*1000)
	}
	counted := 0
	for i := 0; counted < 20; i++ {
		id := fmt.Sprint("e", i)
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
	for n := int64(-1); n < 0; {
		if n = score("e3", storetest.T0+13_000); n > 1 {
			t.Errorf("a retry: %d round trips before its answer, want 1", n)
		}
	}
}
