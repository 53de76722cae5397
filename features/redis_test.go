package features

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/internal/redistest"
)

var prefixes atomic.Int64

func newRedis(t *testing.T, addrs ...string) *Redis {
	t.Helper()
	r, err := NewRedis(t.Context(), RedisOptions{Addrs: addrs, Prefix: fmt.Sprintf("t%d:", prefixes.Add(1))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRedisMatchesOracle(t *testing.T) {
	srv := redistest.Start(t)
	conformance(t, func(t *testing.T) Store { return newRedis(t, srv.Addr()) })
}

func TestRedisClusterMatchesOracle(t *testing.T) {
	c := redistest.StartCluster(t)
	conformance(t, func(t *testing.T) Store { return newRedis(t, c.Addrs()...) })
}

func TestRedisKindsTable(t *testing.T) {
	srv := redistest.Start(t)
	for _, tt := range kindTests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRedis(t, srv.Addr())
			f := feature(tt.kind, tt.window)
			for i, e := range tt.events {
				if got := asAny(observeOne(t, s, f, e), f.Kind); got != e.want {
					t.Errorf("event %d (id %s, ts %v): got %v, want %v", i, e.id, e.ts, got, e.want)
				}
			}
		})
	}
}

// TestRedisSameEventAtOnce: two instances scoring the same event at the
// same moment count it once.
func TestRedisSameEventAtOnce(t *testing.T) {
	srv := redistest.Start(t)
	a := newRedis(t, srv.Addr())
	b := &Redis{client: redis.NewClient(&redis.Options{Addr: srv.Addr()}), prefix: a.prefix}
	t.Cleanup(func() { b.Close() })
	f := feature(Count, time.Hour)
	var wg sync.WaitGroup
	for i := range 200 {
		for _, s := range []Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				observeOne(t, s, f, ev{id: fmt.Sprint(i), ts: float64(i), key: "shared"})
			}()
		}
	}
	wg.Wait()
	if got := observeOne(t, a, f, ev{id: "last", ts: 1000, key: "shared"}); got.Num != 200 {
		t.Fatalf("count after 200 events each scored by two instances at once: %v, want 200", got.Num)
	}
}

// TestRedisKeysExpire: every key riskd writes has a time to live.
func TestRedisKeysExpire(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, srv.Addr())
	for i, f := range oracleFeatures() {
		observeOne(t, s, f, ev{id: fmt.Sprint(i), ts: float64(i), key: "a", of: "x"})
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	keys, err := c.Keys(t.Context(), s.prefix+"*").Result()
	if err != nil || len(keys) != 3 {
		t.Fatalf("keys %v (%v), want the entity's log, data and sum", keys, err)
	}
	for _, k := range keys {
		ttl, err := c.TTL(t.Context(), k).Result()
		if err != nil || ttl <= 0 {
			t.Errorf("key %q has TTL %v (%v), want a positive TTL", k, ttl, err)
		}
		// The longest horizon here is the default retention, 400 days.
		if want := DefaultRetention + ttlMargin; ttl > want || ttl < want-time.Minute {
			t.Errorf("key %q TTL %v, want about %v", k, ttl, want)
		}
	}
}

// TestRedisDownAndBack: calls fail fast within their deadline while the
// server is down and work again, without help, once it is back.
func TestRedisDownAndBack(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, srv.Addr())
	f := feature(Count, time.Hour)
	observeOne(t, s, f, ev{id: "1", ts: 0, key: "a"})
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	obs := &Observation{EventID: "2", TS: t0 + 1000, Items: []Item{{Feature: f, Key: "a", Read: true, Record: true}}}
	if err := s.Observe(ctx, obs); err == nil {
		t.Fatal("Observe succeeded with the server down")
	}
	cancel()
	if obs.Items[0].Value.Valid {
		t.Error("a failed read left a value")
	}
	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		obs := &Observation{EventID: "3", TS: t0 + 2000, Items: []Item{{Feature: f, Key: "a", Read: true, Record: true}}}
		err := s.Observe(t.Context(), obs)
		if err == nil {
			// The restarted server is empty: history starts over.
			if obs.Items[0].Value != (Value{Valid: true, Num: 0}) {
				t.Fatalf("after restart: %+v", obs.Items[0].Value)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover within 10s of the server's return: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
