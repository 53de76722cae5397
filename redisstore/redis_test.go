package redisstore

import (
	"context"
	"fmt"
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
	"github.com/riskd/riskd/memstore"
)

var prefixes atomic.Int64

func newRedis(t *testing.T, clock *storetest.Clock, addrs ...string) *Store {
	return newRedisOpts(t, clock, Options{Addrs: addrs})
}

// newRedisOpts is newRedis with more options: the test's prefix, window
// and lateness are added.
func newRedisOpts(t *testing.T, clock *storetest.Clock, opts Options) *Store {
	t.Helper()
	opts.Prefix = fmt.Sprintf("t%d:", prefixes.Add(1))
	opts.Options.IdempotencyWindow, opts.Options.Lateness = storetest.Window, storetest.Lateness
	if clock != nil {
		opts.Now = clock.Now
	}
	r, err := New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRedisMatchesOracle(t *testing.T) {
	srv := redistest.Start(t)
	newStore := func(hotFrom int) storetest.StoreMaker {
		return func(t *testing.T) (features.Store, *storetest.Clock) {
			c := &storetest.Clock{}
			return newRedisOpts(t, c, Options{Addrs: []string{srv.Addr()}, HotFrom: hotFrom}), c
		}
	}
	storetest.Conformance(t, newStore(0))
	// Logs here rarely hold enough records to be mirrored in process, as
	// busy keys' are: run again with every log that has any mirrored.
	t.Run("mirrored", func(t *testing.T) {
		storetest.Conformance(t, newStore(1))
	})
	checkTTLs(t, srv.Addr())
}

func TestRedisClusterMatchesOracle(t *testing.T) {
	c := redistest.StartCluster(t)
	storetest.Conformance(t, func(t *testing.T) (features.Store, *storetest.Clock) {
		clock := &storetest.Clock{}
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
	*Store
	clock *storetest.Clock
}

func (c clocked) Observe(ctx context.Context, obs *features.Observation) error {
	c.clock.Advance(obs.TS)
	return c.Store.Observe(ctx, obs)
}

func TestRedisKindsTable(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Kinds(t, func(t *testing.T) features.Store {
		clock := &storetest.Clock{}
		return clocked{newRedis(t, clock, srv.Addr()), clock}
	})
}

// TestRedisSameEventAtOnce: two instances scoring the same event at the
// same moment record it once and answer it the same.
func TestRedisSameEventAtOnce(t *testing.T) {
	srv := redistest.Start(t)
	a := newRedis(t, nil, srv.Addr())
	b, err := New(t.Context(), Options{Addrs: []string{srv.Addr()}, Prefix: a.prefix[:len(a.prefix)-len(layoutVersion)]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	f := storetest.NewFeature(features.Count, time.Hour)
	var wg sync.WaitGroup
	answers := make([][2]features.Value, 200)
	for i := range 200 {
		for j, s := range []features.Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i][j] = storetest.ObserveOne(t, s, f, storetest.Ev{ID: fmt.Sprint(i), TS: float64(i), Key: "shared"})
			}()
		}
	}
	wg.Wait()
	for i, ans := range answers {
		if ans[0] != ans[1] {
			t.Errorf("event %d answered %+v by one instance and %+v by the other", i, ans[0], ans[1])
		}
	}
	if got := storetest.ObserveOne(t, a, f, storetest.Ev{ID: "last", TS: 1000, Key: "shared"}); got.Num != 200 {
		t.Fatalf("count after 200 events each scored by two instances at once: %v, want 200", got.Num)
	}
}

// TestRedisKeysExpire: every key riskd writes has a time to live of its
// horizon, the lateness allowance and a day's margin.
func TestRedisKeysExpire(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, nil, srv.Addr())
	set := storetest.OracleSet()
	obs := storetest.NewObservation(set.Features, storetest.Event{ID: "1", Type: "b", TS: storetest.T0, Fields: map[string]string{"k": "a", "k2": "b", "of": "x"}})
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
		s.prefix + "id:1":                     storetest.Window,
		s.prefix + "{[k]=a}:w:*":              10*time.Minute + storetest.Lateness + features.TTLMargin,
		s.prefix + "{[k]=a}:w:b":              10*time.Minute + storetest.Lateness + features.TTLMargin,
		s.prefix + "{[k]=a}:s:*:400d":         features.DefaultRetention + storetest.Lateness + features.TTLMargin,
		s.prefix + "{[k]=a}:s:b:400d":         features.DefaultRetention + storetest.Lateness + features.TTLMargin,
		s.prefix + "{[k k2]=a\x1fb}:w:*":      10*time.Minute + storetest.Lateness + features.TTLMargin,
		s.prefix + "{[k k2]=a\x1fb}:s:*:400d": features.DefaultRetention + storetest.Lateness + features.TTLMargin,
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
// server is down and work again, without help, once it is back; an event
// given up on meanwhile is recorded then.
func TestRedisDownAndBack(t *testing.T) {
	srv := redistest.Start(t)
	// A record deadline longer than the restart takes: event 2, given
	// up on while the server is down, is recorded once it is back.
	s := newRedisOpts(t, nil, Options{Addrs: []string{srv.Addr()}, RecordTimeout: 30 * time.Second})
	f := storetest.NewFeature(features.Count, time.Hour)
	storetest.ObserveOne(t, s, f, storetest.Ev{ID: "1", TS: 0, Key: "a"})
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	obs := storetest.NewObservation([]*features.Feature{f}, storetest.Event{ID: "2", TS: storetest.T0 + 1000, Fields: map[string]string{"k": "a"}})
	if err := s.Observe(ctx, obs); err == nil {
		t.Fatal("Observe succeeded with the server down")
	}
	cancel()
	if obs.Items[0].Value.Valid {
		t.Error("a failed read left a value")
	}
	srv.Restart()
	// Event 2 is recorded, and its answer kept, once the server is back.
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer direct.Close()
	poll.Wait{For: 30 * time.Second}.Until(t, "event 2 is recorded once the server is back", func() bool {
		v, err := direct.Get(t.Context(), s.idKey("2")).Result()
		return err == nil && strings.HasPrefix(v, string(answerMark))
	})
	obs3 := storetest.NewObservation([]*features.Feature{f}, storetest.Event{ID: "3", TS: storetest.T0 + 2000, Fields: map[string]string{"k": "a"}})
	if err := s.Observe(t.Context(), obs3); err != nil {
		t.Fatal(err)
	}
	// The restarted server is empty: history starts over, with event 2.
	if obs3.Items[0].Value != (features.Value{Valid: true, Num: 1}) {
		t.Fatalf("after restart: %+v", obs3.Items[0].Value)
	}
}

// TestRedisMirrorSeesOtherInstances: a busy log mirrored by one instance
// still answers exactly when another instance records into it: a late
// record inside the mirrored range, and records after it.
func TestRedisMirrorSeesOtherInstances(t *testing.T) {
	srv := redistest.Start(t)
	count := &features.Feature{Name: "n", Kind: features.Count, Key: []features.Path{features.NewPath("k")}, Entity: "k", Window: time.Hour}
	sum := &features.Feature{Name: "s", Kind: features.Sum, Key: []features.Path{features.NewPath("k")}, Entity: "k", Window: time.Hour, Field: features.NewPath("amount")}
	set := features.NewSet(count, sum)
	clock := &storetest.Clock{} // event time, so no event is read as long past
	a := newRedisOpts(t, clock, Options{Addrs: []string{srv.Addr()}, HotFrom: 1})
	b, err := New(t.Context(), Options{Addrs: []string{srv.Addr()}, Prefix: a.prefix[:len(a.prefix)-len(layoutVersion)], Now: clock.Now, HotFrom: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	one := int64(1_000_000)
	score := func(s *Store, id string, ts int64) (features.Value, features.Value) {
		t.Helper()
		clock.Advance(storetest.T0 + ts*1000)
		obs := storetest.NewObservation(set.Features, storetest.Event{ID: id, Type: "a", TS: storetest.T0 + ts*1000, Fields: map[string]string{"k": "x"}, Amount: &one})
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
			r, err := New(t.Context(), Options{Addrs: addrs, Prefix: fmt.Sprintf("e%d:", prefixes.Add(1)),
				EpochEvery: 20 * time.Millisecond, OnHistoryLost: func(node string) { lost <- node }})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			// Let the watch see its markers a few times: nothing is lost.
			poll.Wait{For: 10 * time.Second}.Until(t, "the watch reads its markers three times", func() bool { return r.epochSeen() >= 3*len(addrs) })
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

// TestRedisMirrorNotFooledByEqualCounts: another instance adds a late
// record inside a mirror's range and a later event trims one: the count
// is unchanged, yet the mirror is stale. The answers must be the memory
// store's.
func TestRedisMirrorNotFooledByEqualCounts(t *testing.T) {
	srv := redistest.Start(t)
	sum := &features.Feature{Name: "s", Kind: features.Sum, Key: []features.Path{features.NewPath("k")}, Entity: "k", Window: time.Hour, Field: features.NewPath("amount")}
	set := features.NewSet(sum)
	clock := &storetest.Clock{} // event time, so no event is read as long past
	a := newRedisOpts(t, clock, Options{Addrs: []string{srv.Addr()}, HotFrom: 1})
	b, err := New(t.Context(), Options{Addrs: []string{srv.Addr()}, Prefix: a.prefix[:len(a.prefix)-len(layoutVersion)],
		Options: features.Options{IdempotencyWindow: storetest.Window, Lateness: storetest.Lateness}, Now: clock.Now, HotFrom: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	m := memstore.New(memstore.Options{Options: features.Options{IdempotencyWindow: storetest.Window, Lateness: storetest.Lateness}, EventTime: true})
	score := func(s features.Store, id string, minute float64, amount int64) features.Value {
		t.Helper()
		amount *= 1_000_000
		ts := storetest.T0 + int64(minute*60_000)
		clock.Advance(ts)
		obs := storetest.NewObservation(set.Features, storetest.Event{ID: id, Type: "a", TS: ts, Fields: map[string]string{"k": "x"}, Amount: &amount})
		if err := s.Observe(t.Context(), obs); err != nil {
			t.Fatal(err)
		}
		return obs.Items[0].Value
	}
	type step struct {
		redis  *Store
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
	f := &features.Feature{Name: "f", Kind: features.Age, Key: []features.Path{features.NewPath("k")}, Entity: "k", Retention: time.Hour}
	features.NewSet(f)
	stores := map[string]features.Store{"memory": memstore.New(memstore.Options{EventTime: true})}
	clock := &storetest.Clock{}
	stores["redis"] = clocked{newRedis(t, clock, srv.Addr()), clock}
	for name, s := range stores {
		for _, e := range []storetest.Ev{
			{ID: "a", TS: 0, Key: "k", Want: 0.0},
			{ID: "b", TS: 25*3600 + 61, Key: "k", Want: 0.0}, // idle past 1h + 10m + 24h
			{ID: "c", TS: 25*3600 + 62, Key: "k", Want: 1.0},
			{ID: "d", TS: 25*3600 + 30, Key: "k", Want: 0.0}, // late, 32 s before the run: extends it back
			{ID: "e", TS: 25*3600 + 92, Key: "k", Want: 62.0},
		} {
			if got := storetest.AsAny(storetest.ObserveOne(t, s, f, e), f.Kind); got != e.Want {
				t.Errorf("%s: event %s: age %v, want %v", name, e.ID, got, e.Want)
			}
		}
	}
}

func TestRedisKeepsDecisions(t *testing.T) {
	srv := redistest.Start(t)
	clock := &storetest.Clock{}
	storetest.KeptDecisions(t, newRedis(t, clock, srv.Addr()), clock)
}
