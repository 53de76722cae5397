package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/internal/metrictest"
	"github.com/riskd/riskd/internal/poll"
	"github.com/riskd/riskd/internal/redistest"
	"github.com/riskd/riskd/lists"
)

// clock is a settable clock for list expiries.
type clock struct{ ms atomic.Int64 }

func (c *clock) now() time.Time { return time.UnixMilli(c.ms.Load()) }

// makers return registries sharing one store: two instances of riskd.
type maker func(t *testing.T, c *clock) (a, b *lists.Registry)

func makers(t *testing.T) map[string]maker {
	srv := redistest.Start(t)
	cluster := redistest.StartCluster(t)
	onRedis := func(addrs ...string) maker {
		return func(t *testing.T, c *clock) (*lists.Registry, *lists.Registry) {
			prefix := fmt.Sprintf("t%d:", prefixes.Add(1))
			open := func() *lists.Registry {
				r, err := NewLists(ListOptions{Addrs: addrs, Prefix: prefix, Options: lists.Options{Now: c.now}})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close() })
				return r
			}
			return open(), open()
		}
	}
	return map[string]maker{
		"memory": func(t *testing.T, c *clock) (*lists.Registry, *lists.Registry) {
			r := lists.NewMemory(lists.Options{Now: c.now})
			return r, r
		},
		"redis":         onRedis(srv.Addr()),
		"redis-cluster": onRedis(cluster.Addrs()...),
	}
}

func listHas(t *testing.T, r *lists.Registry, list, v string) bool {
	t.Helper()
	return r.List(list).Snapshot().Has(v)
}

func syncList(t *testing.T, r *lists.Registry, list string) {
	t.Helper()
	if err := r.Sync(t.Context(), list); err != nil {
		t.Fatal(err)
	}
}

// TestRegistryChanges: additions, removals and expiries, made on one
// instance, are what every instance reads once it syncs, with the same
// versions.
func TestRegistryChanges(t *testing.T) {
	for name, mk := range makers(t) {
		t.Run(name, func(t *testing.T) {
			c := &clock{}
			c.ms.Store(1_780_000_000_000)
			a, b := mk(t, c)
			for _, r := range []*lists.Registry{a, b} {
				if err := r.Fetch(t.Context(), []string{"blocked"}); err != nil {
					t.Fatal(err)
				}
				r.Declare([]string{"blocked"})
			}
			steps := []struct {
				do      func() (*lists.Change, error)
				advance time.Duration
				in, out []string
				version int64
			}{
				{do: func() (*lists.Change, error) { return a.Add(t.Context(), "blocked", []string{"c1", "c2"}, 0, "ops") },
					in: []string{"c1", "c2"}, out: []string{"c3"}, version: 1},
				{do: func() (*lists.Change, error) {
					return a.Add(t.Context(), "blocked", []string{"c3"}, time.Hour, "case-tool")
				},
					in: []string{"c1", "c2", "c3"}, version: 2},
				{do: func() (*lists.Change, error) { return a.Remove(t.Context(), "blocked", []string{"c1", "nope"}, "ops") },
					in: []string{"c2", "c3"}, out: []string{"c1"}, version: 3},
				{advance: time.Hour, in: []string{"c2"}, out: []string{"c3"}, version: 3},
				{do: func() (*lists.Change, error) {
					return a.Add(t.Context(), "blocked", []string{"c2"}, time.Minute, "ops")
				},
					in: []string{"c2"}, version: 4},
				{advance: time.Minute, out: []string{"c2"}, version: 4},
				{do: func() (*lists.Change, error) {
					return a.Add(t.Context(), "blocked", []string{"c4", "c5", "c6"}, 0, "ops")
				},
					in: []string{"c4", "c5", "c6"}, version: 5},
				{do: func() (*lists.Change, error) { return a.Clear(t.Context(), "blocked", "ops") },
					out: []string{"c4", "c5", "c6"}, version: 6},
				{do: func() (*lists.Change, error) { return a.Add(t.Context(), "blocked", []string{"c7"}, 0, "ops") },
					in: []string{"c7"}, out: []string{"c4"}, version: 7},
			}
			// Removing what the list does not hold changes nothing, not
			// even the version.
			defer func() {
				_, err := b.Remove(t.Context(), "blocked", []string{"c1", "c4"}, "ops")
				if !errors.Is(err, lists.ErrNotInList) {
					t.Errorf("removing values the list does not hold: %v", err)
				}
				for who, r := range map[string]*lists.Registry{"a": a, "b": b} {
					syncList(t, r, "blocked")
					if v := r.List("blocked").Snapshot().Version; v != 7 {
						t.Errorf("%s at version %d after a removal of nothing, want 7", who, v)
					}
				}
			}()
			for i, st := range steps {
				if st.do != nil {
					ch, err := st.do()
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					if ch.Version != st.version {
						t.Errorf("step %d: version %d, want %d", i, ch.Version, st.version)
					}
				}
				c.ms.Add(st.advance.Milliseconds())
				for who, r := range map[string]*lists.Registry{"a": a, "b": b} {
					syncList(t, r, "blocked")
					for _, v := range st.in {
						if !listHas(t, r, "blocked", v) {
							t.Errorf("step %d: %s does not have %s", i, who, v)
						}
					}
					for _, v := range st.out {
						if listHas(t, r, "blocked", v) {
							t.Errorf("step %d: %s has %s", i, who, v)
						}
					}
					if s := r.List("blocked").Snapshot(); s.Version != st.version || s.Len() != len(st.in) {
						t.Errorf("step %d: %s at version %d with %d values, want %d with %d", i, who, s.Version, s.Len(), st.version, len(st.in))
					}
				}
			}
		})
	}
}

// TestRegistryCatchesUp: an instance behind by more changes than the log
// keeps, or on a Redis that lost its data, reads the whole list again.
func TestRegistryCatchesUp(t *testing.T) {
	srv := redistest.Start(t)
	c := &clock{}
	c.ms.Store(1_780_000_000_000)
	open := func() *lists.Registry {
		r, err := NewLists(ListOptions{Addrs: []string{srv.Addr()}, Prefix: "catch:", Options: lists.Options{Now: c.now}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		if err := r.Fetch(t.Context(), []string{"blocked"}); err != nil {
			t.Fatal(err)
		}
		r.Declare([]string{"blocked"})
		return r
	}
	a, b := open(), open()
	for i := range 3 * logLength {
		if _, err := a.Add(t.Context(), "blocked", []string{fmt.Sprint("v", i)}, 0, "t"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Remove(t.Context(), "blocked", []string{"v0"}, "t"); err != nil {
		t.Fatal(err)
	}
	syncList(t, b, "blocked")
	if s := b.List("blocked").Snapshot(); s.Version != 3*logLength+1 || s.Len() != 3*logLength-1 || s.Has("v0") || !s.Has("v1") {
		t.Fatalf("behind the log: version %d, %d values", s.Version, s.Len())
	}
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	if err := rc.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	// The first instance to sync writes its snapshot back; the other
	// reads it, and a change made after goes on from there.
	syncList(t, b, "blocked")
	syncList(t, a, "blocked")
	for who, r := range map[string]*lists.Registry{"a": a, "b": b} {
		if s := r.List("blocked").Snapshot(); s.Version != 3*logLength+1 || s.Len() != 3*logLength-1 || !s.Has("v1") {
			t.Fatalf("after a flush, %s at version %d with %d values; want the list as it was", who, s.Version, s.Len())
		}
	}
	if n, err := rc.ZCard(t.Context(), "catch:list:{blocked}:values").Result(); err != nil || n != 3*logLength-1 {
		t.Fatalf("Redis holds %d values (%v) after the re-seed, want %d", n, err, 3*logLength-1)
	}
	if _, err := a.Add(t.Context(), "blocked", []string{"after"}, 0, "t"); err != nil {
		t.Fatal(err)
	}
	syncList(t, b, "blocked")
	if s := b.List("blocked").Snapshot(); s.Version != 3*logLength+2 || !s.Has("after") || !s.Has("v1") {
		t.Fatalf("a change after the re-seed: b at version %d", s.Version)
	}
}

// TestRegistryReseedsAfterFlush: a list Redis lost is written back from
// an instance's snapshot before a change would start it over, logged at
// error level and counted; and instances holding one version of two
// histories (Redis lost the list, then a fresh instance wrote to it) do
// not stay apart: the history tells them.
func TestRegistryReseedsAfterFlush(t *testing.T) {
	srv := redistest.Start(t)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	c := &clock{}
	c.ms.Store(1_780_000_000_000)
	reg := prometheus.NewRegistry()
	logged := lockedWriter{b: &bytes.Buffer{}, mu: &sync.Mutex{}}
	logText := func() string {
		logged.mu.Lock()
		defer logged.mu.Unlock()
		return logged.b.String()
	}
	open := func(r prometheus.Registerer) *lists.Registry {
		l, err := NewLists(ListOptions{Addrs: []string{srv.Addr()}, Prefix: "flush:", Options: lists.Options{Now: c.now, Registerer: r, Logger: slog.New(slog.NewTextHandler(logged, nil))}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		if err := l.Fetch(t.Context(), []string{"blocked"}); err != nil {
			t.Fatal(err)
		}
		l.Declare([]string{"blocked"})
		return l
	}
	a, b := open(reg), open(nil)
	if _, err := a.Add(t.Context(), "blocked", []string{"card-1"}, 0, "t"); err != nil {
		t.Fatal(err)
	}
	syncList(t, b, "blocked")
	if err := rc.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	// A change on the instance holding the list re-seeds it first.
	if _, err := a.Add(t.Context(), "blocked", []string{"card-2"}, 0, "t"); err != nil {
		t.Fatal(err)
	}
	syncList(t, b, "blocked")
	if s := b.List("blocked").Snapshot(); !s.Has("card-1") || !s.Has("card-2") || s.Version != 2 {
		t.Errorf("after a flush and a change: version %d, card-1 %v, card-2 %v", s.Version, s.Has("card-1"), s.Has("card-2"))
	}
	if v := metrictest.Value(t, reg, "riskd_list_reseeded_total", map[string]string{"list": "blocked"}); v != 1 {
		t.Errorf("re-seeds counted: %v, want 1", v)
	}
	if !strings.Contains(logText(), "level=ERROR msg=\"mutable list lost from its store") {
		t.Errorf("no error logged:\n%s", logText())
	}

	// Lost again, and this time a fresh instance (no snapshot) writes
	// first: version 1 of a new history, which the others take whole.
	if err := rc.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	fresh := open(nil)
	if _, err := fresh.Add(t.Context(), "blocked", []string{"card-3"}, 0, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Add(t.Context(), "blocked", []string{"card-4"}, 0, "t"); err != nil {
		t.Fatal(err)
	}
	for who, r := range map[string]*lists.Registry{"a": a, "b": b, "fresh": fresh} {
		syncList(t, r, "blocked")
		if s := r.List("blocked").Snapshot(); s.Version != 2 || s.Has("card-1") || !s.Has("card-3") || !s.Has("card-4") {
			t.Errorf("%s at version %d: card-1 %v, card-3 %v; want the fresh history's list", who, s.Version, s.Has("card-1"), s.Has("card-3"))
		}
	}
}

// TestRegistryConcurrentWriters: instances changing one list at once get
// distinct versions and every change is kept.
func TestRegistryConcurrentWriters(t *testing.T) {
	srv := redistest.Start(t)
	var regs []*lists.Registry
	for range 4 {
		r, err := NewLists(ListOptions{Addrs: []string{srv.Addr()}, Prefix: "conc:"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		if err := r.Fetch(t.Context(), []string{"blocked"}); err != nil {
			t.Fatal(err)
		}
		r.Declare([]string{"blocked"})
		regs = append(regs, r)
	}
	var mu sync.Mutex
	versions := map[int64]bool{}
	var wg sync.WaitGroup
	for i, r := range regs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				ch, err := r.Add(context.Background(), "blocked", []string{fmt.Sprint(i, "-", j)}, 0, "t")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if versions[ch.Version] {
					t.Errorf("version %d given twice", ch.Version)
				}
				versions[ch.Version] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	syncList(t, regs[0], "blocked")
	if s := regs[0].List("blocked").Snapshot(); s.Len() != 80 || s.Version != 80 {
		t.Errorf("%d values at version %d, want 80 at 80", s.Len(), s.Version)
	}
}

// TestRegistryRunSyncs: Run brings another instance's change in without
// being asked, and every change is logged with who made it.
func TestRegistryRunSyncs(t *testing.T) {
	srv := redistest.Start(t)
	var logs bytes.Buffer
	var logMu sync.Mutex
	open := func(log *slog.Logger) *lists.Registry {
		r, err := NewLists(ListOptions{Addrs: []string{srv.Addr()}, Prefix: "run:", Options: lists.Options{SyncEvery: 10 * time.Millisecond, Logger: log}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		if err := r.Fetch(t.Context(), []string{"blocked"}); err != nil {
			t.Fatal(err)
		}
		r.Declare([]string{"blocked"})
		return r
	}
	a := open(slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil)))
	b := open(nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if _, err := a.Add(t.Context(), "blocked", []string{"card-9"}, 0, "case-tool"); err != nil {
		t.Fatal(err)
	}
	poll.Wait{For: 10 * time.Second}.Until(t, "the other instance sees the change", func() bool { return b.List("blocked").Snapshot().Has("card-9") })
	logMu.Lock()
	defer logMu.Unlock()
	if !bytes.Contains(logs.Bytes(), []byte("by=case-tool")) || !bytes.Contains(logs.Bytes(), []byte("list=blocked op=add")) {
		t.Errorf("change not logged with its author:\n%s", logs.String())
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestRegistryLogBoundedByBytes: changes of many values are logged
// without them, so adding the same 20,000 values again and again does not
// grow the log by their size each time; an instance that was not there
// reads the whole list for them.
func TestRegistryLogBoundedByBytes(t *testing.T) {
	srv := redistest.Start(t)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	c := &clock{}
	c.ms.Store(1_780_000_000_000)
	open := func() *lists.Registry {
		l, err := NewLists(ListOptions{Addrs: []string{srv.Addr()}, Prefix: "bytes:", Options: lists.Options{Now: c.now}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		if err := l.Fetch(t.Context(), []string{"blocked"}); err != nil {
			t.Fatal(err)
		}
		l.Declare([]string{"blocked"})
		return l
	}
	a, b := open(), open()
	values := make([]string, 20_000)
	for i := range values {
		values[i] = fmt.Sprintf("card-%08d", i)
	}
	for range 5 {
		if _, err := a.Add(t.Context(), "blocked", values, 0, "t"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Add(t.Context(), "blocked", []string{"one-more"}, 0, "t"); err != nil {
		t.Fatal(err)
	}
	entries, err := rc.XRange(t.Context(), "bytes:list:{blocked}:log", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	logged := 0
	for _, e := range entries {
		s, _ := e.Values["vals"].(string)
		logged += len(s)
	}
	if len(entries) != 6 || logged > maxLogValueBytes {
		t.Errorf("the log holds %d entries with %d bytes of values, want 6 with at most %d", len(entries), logged, maxLogValueBytes)
	}
	syncList(t, b, "blocked")
	if s := b.List("blocked").Snapshot(); s.Len() != 20_001 || s.Version != 6 || !s.Has("card-00019999") || !s.Has("one-more") {
		t.Errorf("b at version %d with %d values", s.Version, s.Len())
	}
}
