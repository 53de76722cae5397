package cases

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// Options configure a store. The zero value of each field is safe.
type Options struct {
	// Retention keeps an open case this long after it was opened and a
	// resolved one this long after its resolution. Default
	// DefaultRetention.
	Retention time.Duration
	// Now is the clock of openings, claims and resolutions. Default
	// time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Memory keeps cases in this process: they are lost on restart and not
// shared with other instances (riskd warns when it serves with one).
type Memory struct {
	opts  Options
	mu    sync.Mutex
	cases map[string]*memCase
	// byAge and byScore hold the open cases in the queue's two orders,
	// kept sorted as cases open and close: a page scans from the front
	// and stops when full.
	byAge, byScore []*memCase
	opens          int
	// byKey holds each entity key's latest case ids, oldest first (at
	// most MaxRelated); an id whose case is gone is skipped when read.
	byKey map[string][]string
}

type memCase struct {
	c     *Case // without claim or resolution
	rules []string
	claim Claim
	res   *Resolution
}

func ageOrder(a, b *memCase) int {
	return cmp.Or(a.c.OpenedAt.Compare(b.c.OpenedAt), cmp.Compare(a.c.ID, b.c.ID))
}

func scoreOrder(a, b *memCase) int { return cmp.Or(cmp.Compare(b.c.Score, a.c.Score), ageOrder(a, b)) }

func insert(s []*memCase, mc *memCase, order func(a, b *memCase) int) []*memCase {
	i, _ := slices.BinarySearchFunc(s, mc, order)
	return slices.Insert(s, i, mc)
}

func drop(s []*memCase, mc *memCase, order func(a, b *memCase) int) []*memCase {
	if i, ok := slices.BinarySearchFunc(s, mc, order); ok {
		return slices.Delete(s, i, i+1)
	}
	return s
}

// NewMemory returns an empty in-memory store.
func NewMemory(opts Options) *Memory {
	opts.defaults()
	return &Memory{opts: opts, cases: map[string]*memCase{}}
}

// sweep forgets open cases past their retention (the oldest open first)
// and, every so many openings, resolved ones; m.mu is held.
func (m *Memory) sweep(now time.Time, resolved bool) {
	for len(m.byAge) > 0 && m.expired(m.byAge[0], now) {
		mc := m.byAge[0]
		m.byAge = m.byAge[1:]
		m.byScore = drop(m.byScore, mc, scoreOrder)
		m.unkey(mc.c)
		delete(m.cases, mc.c.ID)
	}
	if resolved {
		for id, mc := range m.cases {
			if mc.res != nil && m.expired(mc, now) {
				m.unkey(mc.c)
				delete(m.cases, id)
			}
		}
	}
}

// unkey takes case c out of byKey, so keys of cases gone go too.
func (m *Memory) unkey(c *Case) {
	for _, k := range c.Keys {
		ids := slices.DeleteFunc(m.byKey[k], func(id string) bool { return id == c.ID })
		if len(ids) == 0 {
			delete(m.byKey, k)
		} else {
			m.byKey[k] = ids
		}
	}
}

// expired reports whether m is past its retention at now.
func (m *Memory) expired(mc *memCase, now time.Time) bool {
	since := mc.c.OpenedAt
	if mc.res != nil {
		since = mc.res.At
	}
	return !now.Before(since.Add(m.opts.Retention))
}

// Open implements Store.
func (m *Memory) Open(_ context.Context, c *Case) (bool, error) {
	if err := c.check(); err != nil {
		return false, err
	}
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opens++
	m.sweep(now, m.opens%1024 == 0)
	if mc, ok := m.cases[c.ID]; ok {
		if !m.expired(mc, now) {
			return false, nil
		}
		m.unkey(mc.c)
		delete(m.cases, c.ID) // resolved, not swept yet
	}
	cp := *c
	cp.Claim, cp.Resolution = nil, nil
	mc := &memCase{c: &cp}
	for _, r := range c.Reasons {
		mc.rules = append(mc.rules, r.Rule)
	}
	m.cases[c.ID] = mc
	if m.byKey == nil {
		m.byKey = map[string][]string{}
	}
	for _, k := range c.Keys {
		ids := append(m.byKey[k], c.ID)
		m.byKey[k] = ids[max(0, len(ids)-MaxRelated):]
	}
	m.byAge = insert(m.byAge, mc, ageOrder)
	m.byScore = insert(m.byScore, mc, scoreOrder)
	return true, nil
}

// get returns the live case id at now; m.mu is held.
func (m *Memory) get(id string, now time.Time) (*memCase, error) {
	mc, ok := m.cases[id]
	if !ok || m.expired(mc, now) {
		return nil, ErrNotFound
	}
	return mc, nil
}

func (m *Memory) view(mc *memCase, now time.Time) *Case {
	c := *mc.c
	if mc.res != nil {
		r := *mc.res
		c.Resolution = &r
	} else if mc.claim.Until.After(now) {
		cl := mc.claim
		c.Claim = &cl
	}
	return &c
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, id string) (*Case, error) {
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	mc, err := m.get(id, now)
	if err != nil {
		return nil, err
	}
	return m.view(mc, now), nil
}

// Claim implements Store.
func (m *Memory) Claim(_ context.Context, id, analyst string, ttl time.Duration) (Claim, error) {
	if err := checkClaim(analyst, ttl); err != nil {
		return Claim{}, err
	}
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	mc, err := m.get(id, now)
	switch {
	case err != nil:
		return Claim{}, err
	case mc.res != nil:
		return Claim{}, ErrResolved
	case mc.claim.Analyst != analyst && mc.claim.Until.After(now):
		return Claim{}, &ClaimedError{Claim: mc.claim}
	}
	mc.claim = Claim{Analyst: analyst, Until: now.Add(ttl).UTC().Truncate(time.Millisecond)}
	return mc.claim, nil
}

// Release implements Store.
func (m *Memory) Release(_ context.Context, id, analyst string) error {
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	mc, err := m.get(id, now)
	if err != nil {
		return err
	}
	if mc.claim.Analyst == analyst {
		mc.claim = Claim{}
	}
	return nil
}

// Resolve implements Store.
func (m *Memory) Resolve(_ context.Context, id, analyst string, o Outcome, note string) (*Case, error) {
	if err := checkResolve(analyst, o, note); err != nil {
		return nil, err
	}
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	mc, err := m.get(id, now)
	switch {
	case err != nil:
		return nil, err
	case mc.res != nil:
		return nil, ErrResolved
	case mc.claim.Analyst != analyst && mc.claim.Until.After(now):
		return nil, &ClaimedError{Claim: mc.claim}
	case mc.claim.Analyst != analyst || !mc.claim.Until.After(now):
		return nil, ErrNotClaimed
	}
	mc.res = &Resolution{Outcome: o, Note: note, Analyst: analyst, At: now.UTC().Truncate(time.Millisecond)}
	mc.claim = Claim{}
	m.byAge = drop(m.byAge, mc, ageOrder)
	m.byScore = drop(m.byScore, mc, scoreOrder)
	return m.view(mc, now), nil
}

// Queue implements Store. It scans the order from the front, so a page
// costs what its offset and the cases its filters skip cost
// (BenchmarkQueue).
func (m *Memory) Queue(_ context.Context, q Query) (Page, error) {
	q.defaults()
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now, false)
	order := m.byAge
	if q.Order == ByScore {
		order = m.byScore
	}
	var p Page
	skip := q.Offset
	for _, mc := range order {
		if !q.matches(mc.c.Ruleset, mc.c.Decision, mc.rules) {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		if len(p.Cases) == q.Limit {
			p.More = true
			break
		}
		p.Cases = append(p.Cases, m.view(mc, now).Summary())
	}
	return p, nil
}

// Stats implements Store.
func (m *Memory) Stats(context.Context) (Stats, error) {
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now, false)
	s := Stats{Open: len(m.byAge)}
	if len(m.byAge) > 0 {
		s.OldestOpen = m.byAge[0].c.OpenedAt
	}
	return s, nil
}

// Close implements Store.
func (m *Memory) Close() error { return nil }

// Related implements Store.
func (m *Memory) Related(ctx context.Context, keys []string, self string, limit int) ([]Summary, error) {
	var ids []string
	m.mu.Lock()
	for _, k := range keys {
		ids = append(ids, m.byKey[k]...)
	}
	m.mu.Unlock()
	return related(ctx, m, ids, self, limit)
}
