// Package memstore is the embedded feature store: exact history in
// process memory, for a single riskd, replays and rule tests.
package memstore

import (
	"context"
	"hash/maphash"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/features"
)

// examinePerNew is how many entities of its shard are examined for each
// entity created, and one of an event's id shard's twin is examined
// every examineEvery events. Examining more than are created keeps up with any key mix, and no
// background goroutine is needed: with e examined per c created, the
// expired keys still held are at most c/(e-c) of the live ones (a third
// here) — the hand comes round before more accumulate.
const (
	examinePerNew = 4
	examineEvery  = 8
)

const numShards = 64

// Options configure the embedded store.
type Options struct {
	features.Options
	// EventTime makes the store's clock the newest event time it has
	// seen, for replays of history and rule tests, which have no wall
	// clock. Default: the wall clock.
	EventTime bool
	// MaxEntities caps the keys held (each key value of each entity: a
	// card, an account, an account+device pair). Past it the least
	// recently seen are evicted, their history lost: features of those
	// keys start over. Zero: no cap.
	MaxEntities int
	// MaxAnswers caps the event ids whose first answer is kept for
	// retries (about 1,070 bytes each with the example policy, map,
	// the decision kept (KeepDecision) and
	// arena included). Past it the oldest answers go before their
	// idempotency window ends: a retry of one is scored as a new event.
	// Zero: no cap (answers go at the end of the window).
	MaxAnswers int
	// OnEvict, if set, is told how many keys the cap evicted. It is
	// called often and with a store lock held: it must be quick, must
	// not call the store, and rate-limits its own logs.
	OnEvict func(n int)
	// Registerer receives the store's metrics, riskd_memory_store_keys
	// and riskd_memory_store_evicted_keys_total; nil registers nothing.
	Registerer prometheus.Registerer
}

// Store is the embedded store: exact history in process memory. It is
// safe for concurrent use.
//
// Entities and event ids are found by a 128-bit hash of their text, not
// the text itself: the maps then hold fixed-size keys that compare without
// chasing a pointer, and nothing is copied to keep them. Two keys would
// have to collide on 128 bits (about one chance in 2^64 with 2^32 keys
// alive) to share a history.
type Store struct {
	opts     Options
	window   int64 // idempotency window, ms
	lateness int64 // ms
	seed     maphash.Seed
	seed2    maphash.Seed
	seq      atomic.Uint64
	clock    atomic.Int64 // EventTime: the newest event time seen
	count    atomic.Int64 // entities held
	evicted  atomic.Int64
	ids      [numShards]idShard
	entities [numShards]entityShard
}

// hash128 identifies an entity (which fields make its key, and their
// values) or an event id.
type hash128 [2]uint64

type idShard struct {
	mu      sync.Mutex
	events  int
	answers map[hash128]answer
	order   []idAge // answers in the order given, for forgetting them
	// arena is where answers are cut from, a chunk at a time: one
	// allocation per few hundred events instead of one per event. A chunk
	// is freed by the garbage collector once its answers are forgotten.
	arena []byte
}

const arenaChunk = 64 << 10

// keep copies an answer into the shard's arena.
func (sh *idShard) keep(obs *features.Observation) []byte {
	n := features.AnswerSize(obs)
	if cap(sh.arena)-len(sh.arena) < n {
		sh.arena = make([]byte, 0, max(arenaChunk, n))
	}
	start := len(sh.arena)
	sh.arena = features.AppendAnswer(sh.arena, obs)
	return sh.arena[start:len(sh.arena):len(sh.arena)]
}

type answer struct {
	at   int64 // store clock when given, ms
	vals []byte
	dec  []byte // what the first answer decided (KeepDecision), in the arena
}

type idAge struct {
	id hash128
	at int64
}

type entityShard struct {
	mu       sync.Mutex
	entities map[hash128]*entity
	// ring holds the shard's entities for examination (a CLOCK hand: an
	// entity seen since its last examination goes round again; one not
	// seen is evicted when the store is over its cap).
	ring []*entity
	hand int
}

// entity holds every log of one key value: one map lookup serves all of
// them.
type entity struct {
	logs []logState
	used bool // seen since the clock hand last passed
	id   hash128
}

// logState is one log of one key: its features' histories, in the order
// of log.Features, and its newest event, from which the sweep measures
// idleness.
type logState struct {
	log    *features.EventLog
	newest int64
	// written is the store's clock when the log was last recorded into:
	// a log kept past its horizon, the lateness allowance and features.TTLMargin
	// after it is expired, as a Redis key's TTL runs from its last write.
	written int64
	hists   []features.History
}

// New returns an empty in-memory store.
func New(opts Options) *Store {
	opts.SetDefaults()
	m := &Store{opts: opts, seed: maphash.MakeSeed(), seed2: maphash.MakeSeed(),
		window: opts.IdempotencyWindow.Milliseconds(), lateness: opts.Lateness.Milliseconds()}
	for i := range m.ids {
		m.ids[i].answers = map[hash128]answer{}
		m.entities[i].entities = map[hash128]*entity{}
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "riskd_memory_store_keys", Help: "Keys (entity values) the memory store holds."},
				func() float64 { return float64(m.Keys()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "riskd_memory_store_evicted_keys_total", Help: "Keys the memory store evicted at its -memory-max-keys cap, their history lost."},
				func() float64 { return float64(m.Evicted()) }),
		)
	}
	return m
}

// Ready always succeeds: memory is never unreachable.
func (m *Store) Ready(context.Context) error { return nil }

// Close releases nothing; it exists to satisfy features.Store.
func (m *Store) Close() error { return nil }

func (m *Store) now(ts int64) int64 {
	if !m.opts.EventTime {
		return time.Now().UnixMilli()
	}
	for {
		c := m.clock.Load()
		if ts <= c || m.clock.CompareAndSwap(c, ts) {
			return max(c, ts)
		}
	}
}

// Observe implements Store.
func (m *Store) Observe(_ context.Context, obs *features.Observation) error {
	now := m.now(obs.TS)
	id := m.hash("", obs.EventID)
	ish := &m.ids[id[0]%numShards]
	// The id's shard stays locked until the answer is kept, so a second
	// delivery of the same id waits for the first and gets its answer.
	ish.mu.Lock()
	defer ish.mu.Unlock()
	m.forget(ish, now)
	// Ids spread events evenly over the shards: now and then an event
	// examines its twin entity shard, so idle shards empty too.
	if ish.events++; ish.events%examineEvery == 0 {
		m.examineLocked(&m.entities[id[0]%numShards], 1, now)
	}
	if a, ok := ish.answers[id]; ok && now-a.at < m.window {
		obs.Retry = true
		var buf [64]bool
		missing := buf[:0]
		if len(obs.Items) > len(buf) {
			missing = make([]bool, 0, len(obs.Items))
		}
		missing = missing[:len(obs.Items)]
		if err := features.ApplyAnswer(a.vals, obs, missing); err != nil {
			return err
		}
		// Features the first answer did not read (a newer policy's) are
		// read as of now, without recording anything.
		m.observe(obs, features.Position{TS: obs.TS, Seq: m.seq.Load() + 1}, missing, false, now)
		return nil
	}
	m.observe(obs, features.Position{TS: obs.TS, Seq: m.seq.Add(1)}, nil, true, now)
	// Every answer kept is queued for forgetting, even one replacing an
	// expired answer not yet forgotten: forget only drops an answer its
	// queue entry matches, so none is held past its time.
	if m.opts.MaxAnswers > 0 {
		// The cap is shared evenly by the shards, as ids are.
		for perShard := max(1, m.opts.MaxAnswers/numShards); len(ish.answers) >= perShard && len(ish.order) > 0; {
			m.forgetOldest(ish)
		}
	}
	ish.order = append(ish.order, idAge{id: id, at: now})
	ish.answers[id] = answer{at: now, vals: ish.keep(obs)}
	return nil
}

// KeepDecision implements Store: dec is copied into the arena beside the
// id's answer. An id without an answer (forgotten meanwhile) keeps
// nothing.
func (m *Store) KeepDecision(id string, dec []byte) {
	h := m.hash("", id)
	ish := &m.ids[h[0]%numShards]
	ish.mu.Lock()
	defer ish.mu.Unlock()
	a, ok := ish.answers[h]
	if !ok {
		return
	}
	dec = dec[:min(len(dec), features.MaxDecisionBytes)]
	if cap(ish.arena)-len(ish.arena) < len(dec) {
		ish.arena = make([]byte, 0, arenaChunk)
	}
	start := len(ish.arena)
	ish.arena = append(ish.arena, dec...)
	a.dec = ish.arena[start:len(ish.arena):len(ish.arena)]
	ish.answers[h] = a
}

// Decision implements Store.
func (m *Store) Decision(_ context.Context, id string) ([]byte, error) {
	now := m.now(0)
	h := m.hash("", id)
	ish := &m.ids[h[0]%numShards]
	ish.mu.Lock()
	defer ish.mu.Unlock()
	if a, ok := ish.answers[h]; ok && now-a.at < m.window && a.dec != nil {
		return slices.Clone(a.dec), nil
	}
	return nil, nil
}

// forgetOldest drops the shard's oldest answer (MaxAnswers). Called with
// ish.mu held.
func (m *Store) forgetOldest(ish *idShard) {
	if a, ok := ish.answers[ish.order[0].id]; ok && a.at == ish.order[0].at {
		delete(ish.answers, ish.order[0].id)
	}
	ish.order[0] = idAge{}
	ish.order = ish.order[1:]
}

// observe reads the items (those marked in only, when only is not nil)
// at p and, with record, records the event. The entries of one entity
// are handled under one lock and one lookup.
func (m *Store) observe(obs *features.Observation, p features.Position, only []bool, record bool, now int64) {
	// done marks handled entries; events have far fewer than 64 logs in
	// practice, and entries past 64 are simply looked up on their own.
	var done uint64
	evicted := 0
	for ei := range obs.Entries {
		if ei < 64 && done&(1<<ei) != 0 {
			continue
		}
		en := &obs.Entries[ei]
		id := m.hash(en.EventLog.Entity, en.Key)
		sh := &m.entities[id[0]%numShards]
		sh.mu.Lock()
		e := sh.entities[id]
		if e != nil {
			e.used = true
		}
		created := false
		for ej := ei; ej < len(obs.Entries); ej++ {
			ej := ej
			other := &obs.Entries[ej]
			if ej != ei && (ej >= 64 || done&(1<<ej) != 0 || other.EventLog.Entity != en.EventLog.Entity || other.Key != en.Key) {
				continue
			}
			if ej < 64 {
				done |= 1 << ej
			}
			var ls *logState
			if e != nil {
				ls = e.state(other.EventLog)
			}
			for i := range obs.Items {
				it := &obs.Items[i]
				if it.Entry != ej || (only != nil && !only[i]) {
					continue
				}
				var h *features.History
				if ls != nil && !ls.log.Expired(ls.written, now, m.lateness) {
					h = &ls.hists[it.Feature.InLog]
				}
				it.Value = value(it.Feature, h, p, m.opts.RunningFrom)
			}
			if record && other.Record {
				if e == nil {
					e = &entity{logs: make([]logState, 0, 4), used: true, id: id}
					sh.entities[id] = e
					sh.ring = append(sh.ring, e)
					m.count.Add(1)
					created = true
				}
				switch {
				case ls == nil:
					e.logs = append(e.logs, logState{log: other.EventLog, newest: p.TS, hists: make([]features.History, len(other.EventLog.Features))})
					ls = &e.logs[len(e.logs)-1]
				case ls.log.Expired(ls.written, now, m.lateness):
					// Past keeping, not yet dropped: start it over, as
					// it would be had it been (or had its Redis key
					// expired).
					clear(ls.hists)
					ls.newest = p.TS
				}
				m.record(ls, obs, ej, p)
				ls.written = max(ls.written, now)
			}
		}
		if created {
			// Pay for the new key by examining others: the shard then
			// keeps up whatever the mix of new and returning keys.
			evicted += m.examine(sh, examinePerNew, now)
		}
		sh.mu.Unlock()
	}
	if evicted > 0 && m.opts.OnEvict != nil {
		m.opts.OnEvict(evicted)
	}
}

func value(f *features.Feature, h *features.History, p features.Position, runningFrom int) features.Value {
	if !f.Kind.Windowed() {
		if h == nil {
			return features.SightingValue(f.Kind, p, features.Position{}, false, features.Position{}, false, f.Retention.Milliseconds())
		}
		return h.Sighting(f.Kind, p, f.Retention.Milliseconds())
	}
	if h == nil {
		return features.Aggregate(f.Kind, nil)
	}
	return h.WindowValue(f.Kind, p, f.WindowFrom(p.TS), runningFrom)
}

// record adds the event to every feature of entry ei's log.
func (m *Store) record(ls *logState, obs *features.Observation, ei int, p features.Position) {
	l := ls.log
	ls.newest = max(ls.newest, p.TS)
	for i, f := range l.Features {
		h := &ls.hists[i]
		if !f.Kind.Windowed() {
			h.See(p, f.Retention.Milliseconds())
			continue
		}
		// What no event within the lateness allowance of this one can
		// see goes now; Redis trims the same at the same event.
		h.TrimTo(f.Kind, l.TrimTo(p.TS, m.lateness))
		en := features.Point{Pos: p}
		switch f.Kind {
		case features.Sum, features.Avg, features.Max:
			n, ok := obs.Num(ei, f.Slot)
			if !ok {
				continue // the event lacks the field: not recorded for this feature
			}
			en.Num = n
		case features.Distinct:
			v, ok := obs.Of(ei, f.Slot)
			if !ok {
				continue
			}
			en.Of = maphash.String(m.seed, v)
		}
		h.Insert(f.Kind, en)
	}
}

// state finds the state of log l. A reloaded policy's log is found by
// name, and its features take over the histories of the features they
// equal (same name, same question); the others start empty.
func (e *entity) state(l *features.EventLog) *logState {
	for i := range e.logs {
		ls := &e.logs[i]
		if ls.log == l {
			return ls
		}
		if ls.log.Name == l.Name {
			hists := make([]features.History, len(l.Features))
			for j, f := range l.Features {
				for k, g := range ls.log.Features {
					if g.Name == f.Name && sameHistory(g, f) {
						hists[j] = ls.hists[k]
					}
				}
			}
			ls.log, ls.hists = l, hists
			return ls
		}
	}
	return nil
}

// sameHistory reports whether a and b record the same thing, so one's
// History serves the other.
func sameHistory(a, b *features.Feature) bool {
	return a.Kind == b.Kind && a.Field.Name == b.Field.Name && a.Of.Name == b.Of.Name && a.Retention == b.Retention
}

// hash identifies the entity of key (or, with entity "", an event id):
// two independent 64-bit hashes of key, each mixed with the same seed's
// hash of entity, so one key value under two entities differs too.
func (m *Store) hash(entity, key string) hash128 {
	h := hash128{maphash.String(m.seed, key), maphash.String(m.seed2, key)}
	if entity != "" {
		h[0] ^= bits.RotateLeft64(maphash.String(m.seed, entity), 31)
		h[1] ^= bits.RotateLeft64(maphash.String(m.seed2, entity), 31)
	}
	return h
}

// forget drops answers past the idempotency window. Called with ish.mu
// held. Observe checks an answer's age itself, so when this runs changes
// nothing but memory.
func (m *Store) forget(ish *idShard, now int64) {
	n := 0
	for n < len(ish.order) && ish.order[n].at <= now-m.window {
		if a, ok := ish.answers[ish.order[n].id]; ok && a.at == ish.order[n].at {
			delete(ish.answers, ish.order[n].id)
		}
		n++
	}
	if n > 0 {
		clear(ish.order[:n])
		ish.order = ish.order[n:]
	}
}

func (m *Store) examineLocked(sh *entityShard, n int, now int64) {
	sh.mu.Lock()
	evicted := m.examine(sh, n, now)
	sh.mu.Unlock()
	if evicted > 0 && m.opts.OnEvict != nil {
		m.opts.OnEvict(evicted)
	}
}

// examine moves the shard's clock hand over n entities: it drops their
// expired logs, and the entity once it has none; over the cap, it evicts
// an entity not seen since the hand last passed it. Called with sh.mu
// held; returns how many the cap evicted.
func (m *Store) examine(sh *entityShard, n int, now int64) int {
	over := m.opts.MaxEntities > 0 && m.count.Load() > int64(m.opts.MaxEntities)
	evicted := 0
	for ; n > 0 && len(sh.ring) > 0; n-- {
		if sh.hand >= len(sh.ring) {
			sh.hand = 0
		}
		// Entities leave the map only here, so every one in the ring is
		// in the map: no lookup needed.
		e := sh.ring[sh.hand]
		logs := e.logs[:0]
		for _, ls := range e.logs {
			if !ls.log.Expired(ls.written, now, m.lateness) {
				logs = append(logs, ls)
			}
		}
		clear(e.logs[len(logs):])
		e.logs = logs
		switch {
		case len(e.logs) == 0:
		case over && !e.used:
			evicted++
			m.evicted.Add(1)
		default:
			e.used = false
			sh.hand++
			continue
		}
		delete(sh.entities, e.id)
		m.count.Add(-1)
		// Gone: out of the ring too; its last entry takes the place, so
		// the ring stays dense.
		last := len(sh.ring) - 1
		sh.ring[sh.hand] = sh.ring[last]
		sh.ring[last] = nil
		sh.ring = sh.ring[:last]
	}
	return evicted
}

// Evicted is how many keys the MaxEntities cap has evicted.
func (m *Store) Evicted() int64 { return m.evicted.Load() }

// Keys is how many keys the store holds.
func (m *Store) Keys() int64 { return m.count.Load() }

// Stats counts what the store holds, for memory metrics and tests.
type Stats struct {
	Entities int // keys with features.History
	Series   int // feature × key histories
	Entries  int // recorded events kept across histories
	IDs      int // answers kept for retries
}

// Stats walks every shard; it is for metrics scrapes, not the hot path.
func (m *Store) Stats() Stats {
	var st Stats
	for i := range m.entities {
		sh := &m.entities[i]
		sh.mu.Lock()
		st.Entities += len(sh.entities)
		for _, e := range sh.entities {
			for _, ls := range e.logs {
				st.Series += len(ls.hists)
				for _, h := range ls.hists {
					st.Entries += len(h.Live())
				}
			}
		}
		sh.mu.Unlock()
	}
	for i := range m.ids {
		sh := &m.ids[i]
		sh.mu.Lock()
		st.IDs += len(sh.answers)
		sh.mu.Unlock()
	}
	return st
}
