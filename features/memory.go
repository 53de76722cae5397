package features

import (
	"context"
	"hash/maphash"
	"math"
	"math/bits"
	"sort"
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

// sweepEvery is the fewest events that land on a shard (by id) between
// sweeps of its idle entities; the sweep is amortised so no background
// goroutine is needed.
const sweepEvery = 1024

const numShards = 64

// Memory is the embedded store: exact history in process memory, bounded by
// each feature's horizon. It is safe for concurrent use.
//
// Entities and event ids are found by a 128-bit hash of their text, not the
// text itself: the maps then hold fixed-size keys that compare without
// chasing a pointer (one cache miss per lookup instead of two on a large
// working set) and nothing is copied to keep them. Two keys would have to
// collide on 128 bits (about one chance in 2^64 with 2^32 keys alive) to
// share a history.
type Memory struct {
	seed   maphash.Seed
	seed2  maphash.Seed
	seq    atomic.Uint64
	newest atomic.Int64 // newest event time observed (ms): the clock for eviction
	dedupe atomic.Int64 // how long ids are remembered (ms)
	shards [numShards]shard
}

// hash128 identifies an entity (which fields make its key, and their
// values) or an event id.
type hash128 [2]uint64

type shard struct {
	mu       sync.Mutex
	entities map[hash128]*entity
	seen     map[hash128]position // event id -> its first delivery
	ids      []idAge              // seen's ids in arrival order, for eviction
	ops      int
	scratch  map[uint64]struct{} // distinct counting, reused under mu
}

type idAge struct {
	id hash128
	ts int64
}

type position struct {
	ts  int64
	seq uint64
}

func (p position) before(q position) bool {
	return p.ts < q.ts || (p.ts == q.ts && p.seq < q.seq)
}

// entity holds the history of every feature keyed the same way for one key
// value: one map lookup serves all of them.
type entity struct {
	series []series // a handful per entity: found by name
}

type entry struct {
	pos position
	num float64
	of  uint64 // distinct: a 64-bit hash of the value (collisions need ~2^32 values in one window)
}

// series is the history of one feature for one entity.
type series struct {
	feature string
	horizon int64 // ms
	// buf[off:] are the live entries, sorted by pos (windowed kinds and
	// since_last). Trimming advances off; an append that finds buf full
	// first slides the live part down, so a steady window reuses its array
	// instead of reallocating.
	buf    []entry
	off    int
	first  position
	seen   bool // first is set
	newest int64
	// distinct: how many times each value occurs in live()[lo:], the
	// window of the last in-order read (from = its start). Events arrive
	// mostly in order, so the next read slides the window instead of
	// hashing every value again. nil when out of date.
	counts map[uint64]int32
	lo     int
	from   int64
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	m := &Memory{seed: maphash.MakeSeed(), seed2: maphash.MakeSeed()}
	m.dedupe.Store(minDedupeHorizon.Milliseconds())
	for i := range m.shards {
		m.shards[i].entities = map[hash128]*entity{}
		m.shards[i].seen = map[hash128]position{}
		m.shards[i].scratch = map[uint64]struct{}{}
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
		f := obs.Items[i].Feature
		if h := f.Horizon().Milliseconds(); f.Kind.Windowed() && h > m.dedupe.Load() {
			m.dedupe.Store(h) // racing writers both store a value larger than before
		}
	}
	pos, retry := m.position(obs)
	// Items of one entity are handled under one lock and one lookup. done
	// marks handled items; events have far fewer than 64 features in
	// practice, and items past 64 are simply looked up on their own.
	var done uint64
	for i := range obs.Items {
		if i < 64 && done&(1<<i) != 0 {
			continue
		}
		it := &obs.Items[i]
		id := m.hash(it.Feature.Entity, it.Key)
		sh := &m.shards[id[0]%numShards]
		sh.mu.Lock()
		e := sh.entities[id]
		for j := i; j < len(obs.Items); j++ {
			jt := &obs.Items[j]
			if j != i && (j >= 64 || done&(1<<j) != 0 || jt.Feature.Entity != it.Feature.Entity || jt.Key != it.Key) {
				continue
			}
			if j < 64 {
				done |= 1 << j
			}
			var s *series
			if e != nil {
				s = e.find(jt.Feature.Name)
			}
			if jt.Read {
				jt.Value = s.value(jt.Feature, pos, sh.scratch)
			}
			if jt.Record && !retry {
				if e == nil {
					e = &entity{}
					sh.entities[id] = e
				}
				if s == nil {
					e.series = append(e.series, series{feature: jt.Feature.Name})
					s = &e.series[len(e.series)-1]
				}
				s.record(jt, pos, m.seed)
			}
		}
		sh.mu.Unlock()
	}
	return nil
}

func (e *entity) find(feature string) *series {
	for i := range e.series {
		if e.series[i].feature == feature {
			return &e.series[i]
		}
	}
	return nil
}

// position assigns the event its place in history, or finds the place of
// its first delivery.
func (m *Memory) position(obs *Observation) (position, bool) {
	id := m.hash("", obs.EventID)
	sh := &m.shards[id[0]%numShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m.tick(sh) // ids spread events evenly over the shards
	if p, ok := sh.seen[id]; ok {
		return p, true
	}
	p := position{ts: obs.TS, seq: m.seq.Add(1)}
	sh.seen[id] = p
	sh.ids = append(sh.ids, idAge{id: id, ts: obs.TS})
	return p, false
}

// hash identifies the entity of key (or, with entity "", an event id):
// two independent 64-bit hashes of key, each mixed with the same seed's
// hash of entity, so one key value under two entities differs too.
func (m *Memory) hash(entity, key string) hash128 {
	h := hash128{maphash.String(m.seed, key), maphash.String(m.seed2, key)}
	if entity != "" {
		h[0] ^= bits.RotateLeft64(maphash.String(m.seed, entity), 31)
		h[1] ^= bits.RotateLeft64(maphash.String(m.seed2, entity), 31)
	}
	return h
}

// tick forgets old event ids and now and then sweeps the shard's idle
// entities. Called with sh.mu held.
func (m *Memory) tick(sh *shard) {
	now := m.newest.Load()
	// Ids leave in arrival order; a late event's id may wait behind a newer
	// one, which only keeps it a little longer.
	cutoff := now - m.dedupe.Load()
	n := 0
	for n < len(sh.ids) && sh.ids[n].ts <= cutoff {
		delete(sh.seen, sh.ids[n].id)
		n++
	}
	if n > 0 {
		clear(sh.ids[:n])
		sh.ids = sh.ids[n:]
	}
	// A sweep visits every entity of the shard, so it runs once per as
	// many events as there are entities: constant work per event.
	sh.ops++
	if sh.ops < max(sweepEvery, len(sh.entities)) {
		return
	}
	sh.ops = 0
	for k, e := range sh.entities {
		live := e.series[:0]
		for _, s := range e.series {
			// A history whose newest event is past its horizon can
			// answer nothing any more.
			if s.newest > now-s.horizon {
				live = append(live, s)
			}
		}
		clear(e.series[len(live):]) // drop references to evicted histories
		e.series = live
		if len(e.series) == 0 {
			delete(sh.entities, k)
		}
	}
}

func (s *series) record(it *Item, pos position, seed maphash.Seed) {
	f := it.Feature
	s.horizon = f.Horizon().Milliseconds()
	s.newest = max(s.newest, pos.ts)
	switch f.Kind {
	case Seen, Age:
		if !s.seen || pos.before(s.first) {
			s.first, s.seen = pos, true
		}
		return
	}
	e := entry{pos: pos, num: it.Num}
	if f.Kind == Distinct {
		e.of = maphash.String(seed, it.Of)
	}
	if len(s.buf) == cap(s.buf) && s.off > 0 {
		n := copy(s.buf, s.buf[s.off:])
		clear(s.buf[n:])
		s.buf, s.off = s.buf[:n], 0
	}
	s.buf = append(s.buf, entry{})
	live := s.buf[s.off:]
	i := len(live) - 1
	for i > 0 && pos.before(live[i-1].pos) {
		i-- // late events are rare: a short walk back beats a binary search
	}
	copy(live[i+1:], live[i:len(live)-1])
	live[i] = e
	if s.counts != nil {
		if i == len(live)-1 && e.pos.ts > s.from {
			s.counts[e.of]++
		} else {
			s.counts = nil // a late event: rebuild on the next read
		}
	}
	if f.Kind == SinceLast && len(live) > sinceLastDepth {
		s.off += len(live) - sinceLastDepth
	}
	s.trim(s.newest)
}

// trim drops entries that no event at or after now can see.
func (s *series) trim(now int64) {
	live := s.live()
	cut := sort.Search(len(live), func(i int) bool { return live[i].pos.ts > now-s.horizon })
	if cut > 0 {
		if s.counts != nil {
			for i := s.lo; i < cut; i++ {
				s.uncount(live[i].of)
			}
			s.lo = max(0, s.lo-cut)
		}
		s.off += cut
	}
}

// value computes the feature for an event at pos from a series (nil: the
// key has no history).
func (s *series) value(f *Feature, pos position, scratch map[uint64]struct{}) Value {
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
		entries = s.live()
	}
	hi := len(entries)
	if hi > 0 && !entries[hi-1].pos.before(pos) { // in-order events skip the search
		hi = sort.Search(len(entries), func(i int) bool { return !entries[i].pos.before(pos) })
	}
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
		if hi == len(entries) && s != nil {
			return Value{Valid: true, Num: float64(s.slide(from, lo))}
		}
		for _, e := range in {
			scratch[e.of] = struct{}{}
		}
		n := len(scratch)
		clear(scratch)
		return Value{Valid: true, Num: float64(n)}
	}
	return Value{}
}

// slide moves the distinct window to start at live()[lo] (the first
// entry after from) and returns how many values it holds.
func (s *series) slide(from int64, lo int) int {
	if s.counts == nil || from < s.from {
		live := s.live()
		s.counts = make(map[uint64]int32, len(live)-lo)
		for _, e := range live[lo:] {
			s.counts[e.of]++
		}
	} else {
		live := s.live()
		for i := s.lo; i < lo; i++ {
			s.uncount(live[i].of)
		}
	}
	s.lo, s.from = lo, from
	return len(s.counts)
}

func (s *series) live() []entry { return s.buf[s.off:] }

func (s *series) uncount(of uint64) {
	if n := s.counts[of] - 1; n > 0 {
		s.counts[of] = n
	} else {
		delete(s.counts, of)
	}
}

func seconds(ms int64) float64 { return float64(ms) / 1000 }

// Stats counts what the store holds, for memory metrics and tests.
type Stats struct {
	Entities int // keys with history
	Series   int // feature × key histories
	Entries  int // recorded events across histories
	IDs      int // event ids remembered for retries
}

// Stats walks every shard; it is for metrics scrapes, not the hot path.
func (m *Memory) Stats() Stats {
	var st Stats
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		st.Entities += len(sh.entities)
		for _, e := range sh.entities {
			st.Series += len(e.series)
			for _, s := range e.series {
				st.Entries += len(s.live())
				if s.seen {
					st.Entries++
				}
			}
		}
		st.IDs += len(sh.seen)
		sh.mu.Unlock()
	}
	return st
}
