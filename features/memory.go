package features

import (
	"context"
	"hash/maphash"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// sinceLastDepth is how many of a key's latest events since_last keeps: it
// needs only the previous one, the rest lets a retry or a slightly late
// event find its own predecessor.
const sinceLastDepth = 16

// minDedupeHorizon is the shortest time an event id is remembered for
// retries, whatever the windows.
const minDedupeHorizon = 24 * time.Hour

// sweepEvery is how many events land on a shard (by id) between sweeps of its
// idle keys; the sweep is amortised so no background goroutine is needed.
const sweepEvery = 1024

const numShards = 64

// Memory is the embedded store: exact history in process memory, bounded by
// each feature's horizon. It is safe for concurrent use.
type Memory struct {
	seed   maphash.Seed
	seq    atomic.Uint64
	newest atomic.Int64 // newest event time observed (ms): the clock for eviction
	dedupe atomic.Int64 // how long ids are remembered (ms)
	shards [numShards]shard
}

type seriesKey struct {
	feature string
	key     string
}

type shard struct {
	mu      sync.Mutex
	series  map[seriesKey]*series
	seen    map[string]position // event id -> its first delivery
	ops     int
	scratch map[string]struct{} // distinct counting, reused under mu
}

type position struct {
	ts  int64
	seq uint64
}

func (p position) before(q position) bool {
	return p.ts < q.ts || (p.ts == q.ts && p.seq < q.seq)
}

type entry struct {
	pos position
	num float64
	of  string
}

// series is the history of one feature for one key.
type series struct {
	horizon int64 // ms
	newest  int64
	entries []entry // sorted by pos; windowed kinds and since_last
	first   position
	seen    bool // first is set
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	m := &Memory{seed: maphash.MakeSeed()}
	m.dedupe.Store(minDedupeHorizon.Milliseconds())
	for i := range m.shards {
		m.shards[i].series = map[seriesKey]*series{}
		m.shards[i].seen = map[string]position{}
		m.shards[i].scratch = map[string]struct{}{}
	}
	return m
}

// Ready always succeeds: memory is never unreachable.
func (m *Memory) Ready(context.Context) error { return nil }

// Close releases nothing; it exists to satisfy Store.
func (m *Memory) Close() error { return nil }

// Observe implements Store.
func (m *Memory) Observe(_ context.Context, obs *Observation) error {
	for {
		n := m.newest.Load()
		if obs.TS <= n || m.newest.CompareAndSwap(n, obs.TS) {
			break
		}
	}
	for i := range obs.Items {
		if h := obs.Items[i].Feature.Horizon().Milliseconds(); obs.Items[i].Feature.Kind.Windowed() && h > m.dedupe.Load() {
			m.dedupe.Store(h) // racing writers both store a value larger than before
		}
	}
	pos, retry := m.position(obs)
	for i := range obs.Items {
		it := &obs.Items[i]
		sh := m.shard(it.Key)
		sh.mu.Lock()
		sk := seriesKey{feature: it.Feature.Name, key: it.Key}
		s := sh.series[sk]
		if it.Read {
			it.Value = s.value(it.Feature, pos, sh.scratch)
		}
		if it.Record && !retry {
			if s == nil {
				s = &series{}
				sh.series[seriesKey{feature: it.Feature.Name, key: strings.Clone(it.Key)}] = s
			}
			s.record(it, pos)
		}
		sh.mu.Unlock()
	}
	return nil
}

// position assigns the event its place in history, or finds the place of
// its first delivery.
func (m *Memory) position(obs *Observation) (position, bool) {
	sh := m.shard(obs.EventID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m.tick(sh) // ids spread events evenly over the shards
	if p, ok := sh.seen[obs.EventID]; ok {
		return p, true
	}
	p := position{ts: obs.TS, seq: m.seq.Add(1)}
	sh.seen[strings.Clone(obs.EventID)] = p
	return p, false
}

func (m *Memory) shard(key string) *shard {
	return &m.shards[maphash.String(m.seed, key)%numShards]
}

// tick sweeps the shard's idle keys and forgotten event ids now and then.
// Called with sh.mu held.
func (m *Memory) tick(sh *shard) {
	sh.ops++
	if sh.ops < sweepEvery {
		return
	}
	sh.ops = 0
	now := m.newest.Load()
	for k, s := range sh.series {
		if s.newest <= now-s.horizon {
			delete(sh.series, k)
		} else {
			s.trim(now)
		}
	}
	cutoff := now - m.dedupe.Load()
	for id, p := range sh.seen {
		if p.ts <= cutoff {
			delete(sh.seen, id)
		}
	}
}

func (s *series) record(it *Item, pos position) {
	f := it.Feature
	s.horizon = f.Horizon().Milliseconds()
	if pos.ts > s.newest {
		s.newest = pos.ts
	}
	switch f.Kind {
	case Seen, Age:
		if !s.seen || pos.before(s.first) {
			s.first, s.seen = pos, true
		}
		return
	}
	e := entry{pos: pos, num: it.Num}
	if f.Kind == Distinct {
		e.of = strings.Clone(it.Of)
	}
	i := len(s.entries)
	for i > 0 && pos.before(s.entries[i-1].pos) {
		i-- // late events are rare: a short walk back beats a binary search
	}
	s.entries = append(s.entries, entry{})
	copy(s.entries[i+1:], s.entries[i:])
	s.entries[i] = e
	if f.Kind == SinceLast && len(s.entries) > sinceLastDepth {
		s.entries = s.entries[len(s.entries)-sinceLastDepth:]
	}
	s.trim(s.newest)
}

// trim drops entries that no event at or after now can see.
func (s *series) trim(now int64) {
	cut := sort.Search(len(s.entries), func(i int) bool { return s.entries[i].pos.ts > now-s.horizon })
	if cut > 0 {
		// Reslicing leaves the dropped prefix in the backing array until
		// the next append outgrows it and copies only the live part.
		s.entries = s.entries[cut:]
	}
}

// value computes the feature for an event at pos from a series (nil: the
// key has no history).
func (s *series) value(f *Feature, pos position, scratch map[string]struct{}) Value {
	switch f.Kind {
	case Seen:
		return Value{Valid: true, Bool: s != nil && s.seen && s.first.before(pos)}
	case Age:
		if s == nil || !s.seen || !s.first.before(pos) {
			return Value{Valid: true}
		}
		return Value{Valid: true, Num: seconds(pos.ts - s.first.ts)}
	}
	var entries []entry
	if s != nil {
		entries = s.entries
	}
	hi := sort.Search(len(entries), func(i int) bool { return !entries[i].pos.before(pos) })
	if f.Kind == SinceLast {
		if hi == 0 {
			return Value{}
		}
		return Value{Valid: true, Num: seconds(pos.ts - entries[hi-1].pos.ts)}
	}
	from := pos.ts - f.Window.Milliseconds()
	lo := sort.Search(hi, func(i int) bool { return entries[i].pos.ts > from })
	in := entries[lo:hi]
	switch f.Kind {
	case Count:
		return Value{Valid: true, Num: float64(len(in))}
	case Sum, Avg:
		sum := 0.0
		for _, e := range in {
			sum += e.num
		}
		if f.Kind == Avg {
			if len(in) == 0 {
				return Value{}
			}
			return Value{Valid: true, Num: sum / float64(len(in))}
		}
		return Value{Valid: true, Num: sum}
	case Max:
		if len(in) == 0 {
			return Value{}
		}
		mx := math.Inf(-1)
		for _, e := range in {
			mx = max(mx, e.num)
		}
		return Value{Valid: true, Num: mx}
	case Distinct:
		clear(scratch)
		for _, e := range in {
			scratch[e.of] = struct{}{}
		}
		n := len(scratch)
		clear(scratch)
		return Value{Valid: true, Num: float64(n)}
	}
	return Value{}
}

func seconds(ms int64) float64 { return float64(ms) / 1000 }

// Stats counts what the store holds, for memory metrics and tests.
type Stats struct {
	Series  int // feature × key histories
	Entries int // recorded events across histories
	IDs     int // event ids remembered for retries
}

// Stats walks every shard; it is for metrics scrapes, not the hot path.
func (m *Memory) Stats() Stats {
	var st Stats
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		st.Series += len(sh.series)
		for _, s := range sh.series {
			st.Entries += len(s.entries)
			if s.seen {
				st.Entries++
			}
		}
		st.IDs += len(sh.seen)
		sh.mu.Unlock()
	}
	return st
}
