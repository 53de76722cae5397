package redisstore

import (
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/internal/lagproxy"
	"github.com/riskd/riskd/internal/poll"
	"github.com/riskd/riskd/internal/redistest"
	"github.com/riskd/riskd/internal/storetest"
)

// TestOneRoundTripPerEvent counts the round trips an event makes before
// its answer, through a proxy: one for a new event on a standalone server
// (claim, reads and records together), whatever its logs; its answer is
// kept afterwards. A retry of an answered event is one too: it finds the
// answer where it would have claimed.
func TestOneRoundTripPerEvent(t *testing.T) {
	srv := redistest.Start(t)
	proxy := lagproxy.Start(t, srv.Addr(), 0)
	clock := &storetest.Clock{}
	s := newRedis(t, clock, proxy.Addr())
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer direct.Close()
	set := storetest.OracleSet() // every kind, several logs and entities
	one := int64(1_000_000)
	// kept waits until the event's answer is written (after Observe
	// returned), so its write does not fall into the next count.
	kept := func(id string) {
		poll.Until(t, "the answer of "+id+" is kept", func() bool {
			v, err := direct.Get(t.Context(), s.idKey(id)).Result()
			return err == nil && strings.HasPrefix(v, string(answerMark))
		})
	}
	score := func(id string, ts int64) int64 {
		t.Helper()
		clock.MS = max(clock.MS, ts)
		obs := storetest.NewObservation(set.Features, storetest.Event{ID: id, Type: "b", TS: ts,
			Fields: map[string]string{"k": "a", "k2": "b", "of": "x"}, Amount: &one})
		before, opened := proxy.Flights(), proxy.Opened()
		if err := s.Observe(t.Context(), obs); err != nil {
			t.Fatal(err)
		}
		n := proxy.Flights() - before
		kept(id)
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
