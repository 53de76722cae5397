package lists

import (
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
)

// Values are a mutable list's values: each value and when it expires
// (Unix milliseconds; 0: never). Rules look values up in the snapshot's
// Set; an expired value leaves at the next sync (see Registry).
type Values = map[string]int64

// Snapshot is a mutable list at one version. It never changes once
// published: a change publishes a new one, so events read it without a
// lock.
type Snapshot struct {
	Values Values
	// Has reports whether a value is in the list: the snapshot's method,
	// kept as a func value so rules call it without making one per event.
	Has     func(string) bool
	Version int64
	// VersionText is Version in decimal: what a decision names.
	VersionText string
	// nextExpiry is the earliest expiry among Values; 0: none expires.
	nextExpiry int64

	sortOnce sync.Once
	sorted   []string // Values' keys in order, for paged listing
}

var empty = newSnapshot(Values{}, 0, 0)

// Empty is the snapshot of a list with no values, at version 0: what a
// list slot holds where no registry fills it (cost estimates, benchmarks).
func Empty() *Snapshot { return empty }

func newSnapshot(v Values, version, now int64) *Snapshot {
	s := &Snapshot{Values: v, Version: version, VersionText: strconv.FormatInt(version, 10)}
	for k, exp := range v {
		switch {
		case exp == 0:
		case exp <= now:
			delete(v, k) // expired before it was published
		case s.nextExpiry == 0 || exp < s.nextExpiry:
			s.nextExpiry = exp
		}
	}
	s.Has = NewSet(len(v), func(add func(string) bool) {
		for k := range v {
			add(k)
		}
	}).Has
	return s
}

// Len is how many values the list holds.
func (s *Snapshot) Len() int { return len(s.Values) }

// Entry is one value of a list and when it expires (Unix ms; 0: never).
type Entry struct {
	Value   string
	Expires int64
}

// Page returns up to limit values after the value after, in byte order,
// and whether more follow.
func (s *Snapshot) Page(after string, limit int) ([]Entry, bool) {
	s.sortOnce.Do(func() {
		s.sorted = slices.Sorted(maps.Keys(s.Values))
	})
	i := sort.SearchStrings(s.sorted, after)
	if i < len(s.sorted) && s.sorted[i] == after {
		i++
	}
	end := min(len(s.sorted), i+limit)
	out := make([]Entry, 0, end-i)
	for _, v := range s.sorted[i:end] {
		out = append(out, Entry{Value: v, Expires: s.Values[v]})
	}
	return out, end < len(s.sorted)
}

// Op is what a change does.
type Op string

// The changes a mutable list takes.
const (
	Add    Op = "add"
	Remove Op = "remove"
	// Clear removes every value; the change holds none.
	Clear Op = "clear"
)

// Change is one change to a mutable list: values added (with an expiry)
// or removed, by whom and when.
type Change struct {
	Op      Op
	Values  []string
	Expires int64 // Add: Unix ms; 0: never
	Version int64 // set when written
	Who     string
	At      int64 // Unix ms
}

// Mutable is one mutable list as this riskd sees it: its current
// snapshot.
type Mutable struct {
	Name string
	cur  atomic.Pointer[Snapshot]
	// mu serialises what publishes snapshots (writes, syncs); readers
	// never take it.
	mu sync.Mutex
	// Cursor is where a store's change log was last read (Redis: a
	// stream id); only the store's Sync reads and writes it.
	Cursor string
	// History names the store's history of the list the snapshot comes
	// from (Redis: a random id made when the list is first written or
	// re-seeded): versions count changes within one history only.
	History string
}

func newMutable(name string) *Mutable {
	m := &Mutable{Name: name}
	m.cur.Store(empty)
	return m
}

// Snapshot is the list's current values.
func (m *Mutable) Snapshot() *Snapshot { return m.cur.Load() }

// Replace publishes values at version as the list's snapshot as of now:
// a store's Sync that read the whole list. Called from Store.Sync.
func (m *Mutable) Replace(values Values, version, now int64) {
	m.cur.Store(newSnapshot(values, version, now))
}

// Apply publishes the snapshot after changes (in version order) as of
// now: the map is copied once per batch, so a list of n values costs
// O(n) per batch of changes, whatever the batch's size. Called from
// Store.Write and Store.Sync.
func (m *Mutable) Apply(changes []Change, now int64) {
	cur := m.cur.Load()
	v := maps.Clone(cur.Values)
	version := cur.Version
	for _, c := range changes {
		if c.Op == Clear {
			v = Values{}
		}
		for _, x := range c.Values {
			switch c.Op {
			case Add:
				v[x] = c.Expires
			case Remove:
				delete(v, x)
			}
		}
		version = max(version, c.Version)
	}
	m.cur.Store(newSnapshot(v, version, now))
}

// expire publishes a snapshot without the values expired by now, if any
// has. m.mu is held.
func (m *Mutable) expire(now int64) {
	cur := m.cur.Load()
	if cur.nextExpiry == 0 || cur.nextExpiry > now {
		return
	}
	m.cur.Store(newSnapshot(maps.Clone(cur.Values), cur.Version, now))
}
