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
	opens int
}

type memCase struct {
	c     *Case // without claim or resolution
	rules []string
	claim Claim
	res   *Resolution
}

// NewMemory returns an empty in-memory store.
func NewMemory(opts Options) *Memory {
	opts.defaults()
	return &Memory{opts: opts, cases: map[string]*memCase{}}
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
	if mc, ok := m.cases[c.ID]; ok && !m.expired(mc, now) {
		return false, nil
	}
	cp := *c
	cp.Claim, cp.Resolution = nil, nil
	mc := &memCase{c: &cp}
	for _, r := range c.Reasons {
		mc.rules = append(mc.rules, r.Rule)
	}
	m.cases[c.ID] = mc
	// Expired cases go in a sweep every so many openings, so a queue
	// nobody reads does not grow without bound.
	if m.opens++; m.opens%1024 == 0 {
		for id, mc := range m.cases {
			if m.expired(mc, now) {
				delete(m.cases, id)
			}
		}
	}
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
	return m.view(mc, now), nil
}

// Queue implements Store. It scans every case: at 100,000 open cases a
// page costs a few milliseconds (BenchmarkQueue).
func (m *Memory) Queue(_ context.Context, q Query) (Page, error) {
	q.defaults()
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var match []*memCase
	for id, mc := range m.cases {
		if m.expired(mc, now) {
			delete(m.cases, id)
			continue
		}
		if mc.res == nil && q.matches(mc.c.Ruleset, mc.c.Decision, mc.rules) {
			match = append(match, mc)
		}
	}
	byAge := func(a, b *memCase) int {
		return cmp.Or(a.c.OpenedAt.Compare(b.c.OpenedAt), cmp.Compare(a.c.ID, b.c.ID))
	}
	order := byAge
	if q.Order == ByScore {
		order = func(a, b *memCase) int { return cmp.Or(cmp.Compare(b.c.Score, a.c.Score), byAge(a, b)) }
	}
	slices.SortFunc(match, order)
	var p Page
	if q.Offset >= len(match) {
		return p, nil
	}
	match = match[q.Offset:]
	if len(match) > q.Limit {
		match, p.More = match[:q.Limit], true
	}
	for _, mc := range match {
		p.Cases = append(p.Cases, m.view(mc, now).Summary())
	}
	return p, nil
}

// Stats implements Store.
func (m *Memory) Stats(context.Context) (Stats, error) {
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var s Stats
	for _, mc := range m.cases {
		if mc.res != nil || m.expired(mc, now) {
			continue
		}
		s.Open++
		if s.OldestOpen.IsZero() || mc.c.OpenedAt.Before(s.OldestOpen) {
			s.OldestOpen = mc.c.OpenedAt
		}
	}
	return s, nil
}

// Close implements Store.
func (m *Memory) Close() error { return nil }
