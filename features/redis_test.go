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

func newRedis(t *testing.T, clock *testClock, addrs ...string) *Redis {
	t.Helper()
	opts := RedisOptions{Addrs: addrs, Prefix: fmt.Sprintf("t%d:", prefixes.Add(1)),
		Options: Options{IdempotencyWindow: testWindow, Lateness: testLateness}}
	if clock != nil {
		opts.Now = clock.now
	}
	r, err := NewRedis(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRedisMatchesOracle(t *testing.T) {
	srv := redistest.Start(t)
	newStore := func(t *testing.T) (Store, *testClock) {
		c := &testClock{}
		return newRedis(t, c, srv.Addr()), c
	}
	conformance(t, newStore)
	// Logs here rarely hold enough records to be mirrored in process, as
	// busy keys' are: run again with every log that has any mirrored.
	t.Run("mirrored", func(t *testing.T) {
		defer func(n int) { hotFrom = n }(hotFrom)
		hotFrom = 1
		conformance(t, newStore)
	})
	checkTTLs(t, srv.Addr())
}

func TestRedisClusterMatchesOracle(t *testing.T) {
	c := redistest.StartCluster(t)
	conformance(t, func(t *testing.T) (Store, *testClock) {
		clock := &testClock{}
		return newRedis(t, clock, c.Addrs()...), clock
	})
	for _, addr := range c.Addrs() {
		checkTTLs(t, addr)
	}
}

// checkTTLs fails on any key of the server without a time to live.
func checkTTLs(t *testing.T, addr string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	iter := c.Scan(t.Context(), 0, "*", 1000).Iterator()
	n := 0
	for iter.Next(t.Context()) {
		n++
		ttl, err := c.PTTL(t.Context(), iter.Val()).Result()
		if err != nil || ttl <= 0 {
			t.Errorf("key %q has TTL %v (%v), want a positive TTL", iter.Val(), ttl, err)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Errorf("no keys on %s: nothing checked", addr)
	}
}

// clocked runs a Redis store on the newest event time it was given, as
// the memory store's EventTime mode does.
type clocked struct {
	*Redis
	clock *testClock
}

func (c clocked) Observe(ctx context.Context, obs *Observation) error {
	c.clock.ms = max(c.clock.ms, obs.TS)
	return c.Redis.Observe(ctx, obs)
}

func TestRedisKindsTable(t *testing.T) {
	srv := redistest.Start(t)
	for _, tt := range kindTests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &testClock{}
			s := clocked{newRedis(t, clock, srv.Addr()), clock}
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
// same moment record it once and answer it the same.
func TestRedisSameEventAtOnce(t *testing.T) {
	srv := redistest.Start(t)
	a := newRedis(t, nil, srv.Addr())
	b, err := NewRedis(t.Context(), RedisOptions{Addrs: []string{srv.Addr()}, Prefix: a.prefix[:len(a.prefix)-len(layoutVersion)]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	f := feature(Count, time.Hour)
	var wg sync.WaitGroup
	answers := make([][2]Value, 200)
	for i := range 200 {
		for j, s := range []Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i][j] = observeOne(t, s, f, ev{id: fmt.Sprint(i), ts: float64(i), key: "shared"})
			}()
		}
	}
	wg.Wait()
	for i, ans := range answers {
		if ans[0] != ans[1] {
			t.Errorf("event %d answered %+v by one instance and %+v by the other", i, ans[0], ans[1])
		}
	}
	if got := observeOne(t, a, f, ev{id: "last", ts: 1000, key: "shared"}); got.Num != 200 {
		t.Fatalf("count after 200 events each scored by two instances at once: %v, want 200", got.Num)
	}
}

// TestRedisKeysExpire: every key riskd writes has a time to live of its
// horizon, the lateness allowance and a day's margin.
func TestRedisKeysExpire(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, nil, srv.Addr())
	set := oracleSet()
	obs := observation(set.Features, tevent{id: "1", typ: "b", ts: t0, fields: map[string]string{"k": "a", "k2": "b", "of": "x"}})
	if err := s.Observe(t.Context(), obs); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	keys, err := c.Keys(t.Context(), s.prefix+"*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys %v (%v)", keys, err)
	}
	want := map[string]time.Duration{
		s.prefix + "id:1":                     testWindow,
		s.prefix + "{[k]=a}:w:*":              10*time.Minute + testLateness + ttlMargin,
		s.prefix + "{[k]=a}:w:b":              10*time.Minute + testLateness + ttlMargin,
		s.prefix + "{[k]=a}:s:*:400d":         DefaultRetention + testLateness + ttlMargin,
		s.prefix + "{[k]=a}:s:b:400d":         DefaultRetention + testLateness + ttlMargin,
		s.prefix + "{[k k2]=a\x1fb}:w:*":      10*time.Minute + testLateness + ttlMargin,
		s.prefix + "{[k k2]=a\x1fb}:s:*:400d": DefaultRetention + testLateness + ttlMargin,
	}
	for _, k := range keys {
		ttl, err := c.PTTL(t.Context(), k).Result()
		w, ok := want[k]
		switch {
		case !ok:
			t.Errorf("unexpected key %q", k)
		case err != nil || ttl > w || ttl < w-time.Minute:
			t.Errorf("key %q TTL %v (%v), want about %v", k, ttl, err, w)
		}
		delete(want, k)
	}
	for k := range want {
		t.Errorf("key %q missing", k)
	}
}

// TestRedisDownAndBack: calls fail fast within their deadline while the
// server is down and work again, without help, once it is back.
func TestRedisDownAndBack(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, nil, srv.Addr())
	f := feature(Count, time.Hour)
	observeOne(t, s, f, ev{id: "1", ts: 0, key: "a"})
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	obs := observation([]*Feature{f}, tevent{id: "2", ts: t0 + 1000, fields: map[string]string{"k": "a"}})
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
		obs := observation([]*Feature{f}, tevent{id: "3", ts: t0 + 2000, fields: map[string]string{"k": "a"}})
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

// TestRedisMirrorSeesOtherInstances: a busy log mirrored by one instance
// still answers exactly when another instance records into it: a late
// record inside the mirrored range, and records after it.
func TestRedisMirrorSeesOtherInstances(t *testing.T) {
	defer func(n int) { hotFrom = n }(hotFrom)
	hotFrom = 1
	srv := redistest.Start(t)
	count := &Feature{Name: "n", Kind: Count, Key: []Path{NewPath("k")}, Entity: "k", Window: time.Hour}
	sum := &Feature{Name: "s", Kind: Sum, Key: []Path{NewPath("k")}, Entity: "k", Window: time.Hour, Field: NewPath("amount")}
	set := testSet(count, sum)
	clock := &testClock{} // event time, so no event is read as long past
	a := newRedis(t, clock, srv.Addr())
	b, err := NewRedis(t.Context(), RedisOptions{Addrs: []string{srv.Addr()}, Prefix: a.prefix[:len(a.prefix)-len(layoutVersion)], Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	one := int64(1_000_000)
	score := func(s *Redis, id string, ts int64) (Value, Value) {
		t.Helper()
		clock.ms = max(clock.ms, t0+ts*1000)
		obs := observation(set.Features, tevent{id: id, typ: "a", ts: t0 + ts*1000, fields: map[string]string{"k": "x"}, amount: &one})
		if err := s.Observe(t.Context(), obs); err != nil {
			t.Fatal(err)
		}
		return obs.Items[0].Value, obs.Items[1].Value
	}
	for i := range 10 {
		score(a, fmt.Sprint("a", i), int64(i)*10) // a mirrors the log
	}
	score(b, "late", 35)   // inside a's mirrored range
	score(b, "after", 100) // after it
	n, s := score(a, "check", 101)
	if n.Num != 12 || s.Num != 12 {
		t.Fatalf("count %v, sum %v after 10 events of a and 2 of b, want 12 and 12", n, s)
	}
}

// TestRedisHistoryLostIsNoticed: a Redis restarted empty is reported,
// once per loss, and a Redis that kept its data is not.
func TestRedisHistoryLostIsNoticed(t *testing.T) {
	for _, cluster := range []bool{false, true} {
		t.Run(fmt.Sprint("cluster=", cluster), func(t *testing.T) {
			var addrs []string
			var restart func()
			if cluster {
				c := redistest.StartCluster(t)
				addrs = c.Addrs()
				restart = func() { c.FlushAll(t) }
			} else {
				srv := redistest.Start(t)
				addrs = []string{srv.Addr()}
				restart = func() { srv.Stop(); srv.Restart() }
			}
			lost := make(chan string, 16)
			r, err := NewRedis(t.Context(), RedisOptions{Addrs: addrs, Prefix: fmt.Sprintf("e%d:", prefixes.Add(1)),
				EpochEvery: 20 * time.Millisecond, OnHistoryLost: func(node string) { lost <- node }})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			// Let the watch see its markers a few times: nothing is lost.
			waitFor(t, func() bool { return r.epochSeen() >= 3*len(addrs) })
			select {
			case n := <-lost:
				t.Fatalf("history reported lost on %s before anything happened", n)
			default:
			}
			restart()
			select {
			case <-lost:
			case <-time.After(10 * time.Second):
				t.Fatal("a Redis restarted empty was not reported within 10s")
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRedisMirrorNotFooledByEqualCounts: another instance adds a late
// record inside a mirror's range and a later event trims one: the count
// is unchanged, yet the mirror is stale. The answers must be the memory
// store's.
func TestRedisMirrorNotFooledByEqualCounts(t *testing.T) {
	defer func(n int) { hotFrom = n }(hotFrom)
	hotFrom = 1
	srv := redistest.Start(t)
	sum := &Feature{Name: "s", Kind: Sum, Key: []Path{NewPath("k")}, Entity: "k", Window: time.Hour, Field: NewPath("amount")}
	set := testSet(sum)
	clock := &testClock{} // event time, so no event is read as long past
	a := newRedis(t, clock, srv.Addr())
	b, err := NewRedis(t.Context(), RedisOptions{Addrs: []string{srv.Addr()}, Prefix: a.prefix[:len(a.prefix)-len(layoutVersion)],
		Options: Options{IdempotencyWindow: testWindow, Lateness: testLateness}, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	m := NewMemory(MemoryOptions{Options: Options{IdempotencyWindow: testWindow, Lateness: testLateness}, EventTime: true})
	score := func(s Store, id string, minute float64, amount int64) Value {
		t.Helper()
		amount *= 1_000_000
		ts := t0 + int64(minute*60_000)
		clock.ms = max(clock.ms, ts)
		obs := observation(set.Features, tevent{id: id, typ: "a", ts: ts, fields: map[string]string{"k": "x"}, amount: &amount})
		if err := s.Observe(t.Context(), obs); err != nil {
			t.Fatal(err)
		}
		return obs.Items[0].Value
	}
	type step struct {
		redis  *Redis
		id     string
		minute float64
		amount int64
	}
	steps := []step{{a, "r", 5, 100}}
	for i := range 12 {
		steps = append(steps, step{a, fmt.Sprint("one", i), 6 + float64(i), 1})
	}
	// w moves the mirror's newest past minute 30, so x lands inside it.
	steps = append(steps, step{a, "w", 40, 1}, step{b, "x", 30, 1000}, step{b, "y", 66, 1}, step{a, "z", 61, 1})
	for _, s := range steps {
		want, got := score(m, s.id, s.minute, s.amount), score(s.redis, s.id, s.minute, s.amount)
		if got != want {
			t.Fatalf("event %s at minute %v: Redis %+v, memory %+v", s.id, s.minute, got, want)
		}
	}
}

// TestRunsAfterLongIdle: a key idle for longer than its retention, the
// lateness allowance and a day starts a new run on every store, whether
// or not its history was dropped yet (the memory store's examination or
// a Redis key's expiry have not run here).
func TestRunsAfterLongIdle(t *testing.T) {
	srv := redistest.Start(t)
	f := &Feature{Name: "f", Kind: Age, Key: []Path{NewPath("k")}, Entity: "k", Retention: time.Hour}
	testSet(f)
	stores := map[string]Store{"memory": NewMemory(MemoryOptions{EventTime: true})}
	clock := &testClock{}
	stores["redis"] = clocked{newRedis(t, clock, srv.Addr()), clock}
	for name, s := range stores {
		for _, e := range []ev{
			{id: "a", ts: 0, key: "k", want: 0.0},
			{id: "b", ts: 25*3600 + 61, key: "k", want: 0.0}, // idle past 1h + 10m + 24h
			{id: "c", ts: 25*3600 + 62, key: "k", want: 1.0},
			{id: "d", ts: 25*3600 + 30, key: "k", want: 0.0}, // late, 32 s before the run: extends it back
			{id: "e", ts: 25*3600 + 92, key: "k", want: 62.0},
		} {
			if got := asAny(observeOne(t, s, f, e), f.Kind); got != e.want {
				t.Errorf("%s: event %s: age %v, want %v", name, e.id, got, e.want)
			}
		}
	}
}
