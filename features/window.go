package features

import "sort"

// This file is the aggregation core both stores (packages memstore and
// redisstore) share: exact window arithmetic over one feature's records
// of one key. The memory store keeps histories between events; the Redis
// store builds one from the records it reads (or mirrors a busy key's in
// one) and asks it the same questions.

// Position orders events: by time, then by arrival at the store.
type Position struct {
	TS  int64  // event time, Unix milliseconds
	Seq uint64 // arrival at the store: orders events of one millisecond
}

func (p Position) Before(q Position) bool {
	return p.TS < q.TS || (p.TS == q.TS && p.Seq < q.Seq)
}

// Point is one recorded event of a feature.
type Point struct {
	Pos Position
	Num int64  // sum, avg, max: micro-units
	Of  uint64 // distinct: a 64-bit hash of the value (collisions need ~2^32 values in one window)
}

// SightingsKept is how many of a key's latest events seen, age and
// since_last keep: an event needs only its predecessor; the rest let a
// late event find its own.
const SightingsKept = 16

// History is one feature's record of one key: entries sorted by position
// and, for windowed kinds, an aggregate of the current window kept up to
// date as events arrive in order, so a busy key costs the same per event
// as a quiet one.
type History struct {
	// buf[off:] are the live entries. Trimming advances off; an insert
	// that finds buf full slides the live part down first, so a steady
	// window reuses its array.
	buf []Point
	off int
	// base counts the entries ever trimmed: buf[off+i] is entry number
	// base+i, the numbering run uses.
	base int
	// first is where the key's current run of sightings started (seen,
	// age): a gap of a whole retention between two events starts a new one.
	first    Position
	hasFirst bool
	// run is set once the history is busy enough (see WindowValue): most
	// keys never are, and a smaller history keeps a key's state on fewer
	// cache lines.
	run *running
}

// running aggregates entries [lo, hi) (absolute numbers) of a windowed
// history: the window of the last in-order read, from its start (from)
// to the newest entry.
type running struct {
	ok     bool
	lo, hi int
	from   int64
	n      int64
	sum    sum128
	counts map[uint64]int32 // distinct
	maxq   []int            // max: entry numbers with decreasing values
}

// Live are the entries kept, in position order.
func (h *History) Live() []Point { return h.buf[h.off:] }

// Insert places e in position order and keeps the running aggregate.
func (h *History) Insert(k Kind, e Point) {
	if h.buf == nil {
		h.buf = make([]Point, 0, 4) // most keys see a few events: skip the smallest sizes
	}
	if len(h.buf) == cap(h.buf) && h.off > 0 {
		n := copy(h.buf, h.buf[h.off:])
		clear(h.buf[n:])
		h.buf, h.off = h.buf[:n], 0
	}
	h.buf = append(h.buf, Point{})
	live := h.Live()
	i := len(live) - 1
	for i > 0 && e.Pos.Before(live[i-1].Pos) {
		i-- // late events are rare: a short walk back beats a binary search
	}
	copy(live[i+1:], live[i:len(live)-1])
	live[i] = e
	if h.run == nil || !h.run.ok {
		return
	}
	at := h.base + i
	switch {
	case i == len(live)-1:
		// In order: the next read adds it.
	case k == Max:
		h.run.ok = false // the queue's numbering shifted: rebuild on the next read
	case e.Pos.TS <= h.run.from:
		// Before the window: it lands at or before lo.
		h.run.lo++
		h.run.hi++
	case at < h.run.hi:
		h.run.hi++
		h.run.add(k, h, e, at)
	}
}

// TrimTo drops entries at or before ts: no read can see them any more.
func (h *History) TrimTo(k Kind, ts int64) {
	live := h.Live()
	cut := sort.Search(len(live), func(i int) bool { return live[i].Pos.TS > ts })
	h.drop(k, cut)
}

// KeepLatest drops all but the latest n entries.
func (h *History) KeepLatest(k Kind, n int) {
	if cut := len(h.Live()) - n; cut > 0 {
		h.drop(k, cut)
	}
}

func (h *History) drop(k Kind, cut int) {
	if cut <= 0 {
		return
	}
	if h.run != nil && h.run.ok && h.run.lo < h.base+cut {
		h.run.slide(k, h, h.base+cut)
	}
	clear(h.buf[h.off : h.off+cut])
	h.off += cut
	h.base += cut
}

// WindowValue computes a windowed feature for an event at p over entries
// with from < ts and position before p. A read in order over more than
// runningFrom entries keeps a running aggregate instead of scanning: below
// that a scan is as cheap (Options.RunningFrom).
func (h *History) WindowValue(k Kind, p Position, from int64, runningFrom int) Value {
	live := h.Live()
	lo, hi := windowOf(live, p, from)
	if hi == len(live) && hi-lo > runningFrom {
		// In order, and enough entries to be worth a running aggregate.
		if h.run == nil {
			h.run = &running{}
		}
		return h.run.read(k, h, h.base+lo, from)
	}
	return Aggregate(k, live[lo:hi])
}

// Window computes a windowed kind for an event at p over points sorted
// by position (a store's records read for one event): those before p
// with from < ts, as a History's WindowValue counts them.
func Window(k Kind, points []Point, p Position, from int64) Value {
	lo, hi := windowOf(points, p, from)
	return Aggregate(k, points[lo:hi])
}

// windowOf bounds the points, sorted by position, in the window of an
// event at p that starts after from: [lo, hi).
func windowOf(points []Point, p Position, from int64) (lo, hi int) {
	hi = len(points)
	if hi > 0 && !points[hi-1].Pos.Before(p) {
		hi = sort.Search(len(points), func(i int) bool { return !points[i].Pos.Before(p) })
	}
	lo = sort.Search(hi, func(i int) bool { return points[i].Pos.TS > from })
	return lo, hi
}

// Aggregate computes a windowed kind over in, the entries of its window.
func Aggregate(k Kind, in []Point) Value {
	switch k {
	case Count:
		return Value{Valid: true, Num: float64(len(in))}
	case Sum, Avg:
		var s sum128
		for _, e := range in {
			s.add(e.Num)
		}
		if k == Sum {
			return Value{Valid: true, Num: s.float()}
		}
		if len(in) == 0 {
			return Value{}
		}
		return Value{Valid: true, Num: s.avg(int64(len(in)))}
	case Max:
		if len(in) == 0 {
			return Value{}
		}
		mx := in[0].Num
		for _, e := range in[1:] {
			mx = max(mx, e.Num)
		}
		return Value{Valid: true, Num: float64(mx) / microPerUnit}
	case Distinct:
		if len(in) <= 64 {
			// Small windows: comparing pairs beats allocating a set.
			n := 0
		next:
			for i, e := range in {
				for _, f := range in[:i] {
					if f.Of == e.Of {
						continue next
					}
				}
				n++
			}
			return Value{Valid: true, Num: float64(n)}
		}
		seen := make(map[uint64]struct{}, len(in))
		for _, e := range in {
			seen[e.Of] = struct{}{}
		}
		return Value{Valid: true, Num: float64(len(seen))}
	}
	return Value{}
}

// read returns the aggregate of entries [lo, end) after sliding there;
// from is the window start those entries follow.
func (r *running) read(k Kind, h *History, lo int, from int64) Value {
	end := h.base + len(h.Live())
	if !r.ok || lo < r.lo || from < r.from {
		// First use, after a late event, or a window that moved back:
		// start over from lo.
		*r = running{ok: true, lo: lo, hi: lo, counts: r.counts, maxq: r.maxq[:0]}
		clear(r.counts)
	}
	r.slide(k, h, lo)
	live := h.Live()
	for ; r.hi < end; r.hi++ {
		r.add(k, h, live[r.hi-h.base], r.hi)
	}
	r.from = from
	switch k {
	case Count:
		return Value{Valid: true, Num: float64(r.n)}
	case Sum:
		return Value{Valid: true, Num: r.sum.float()}
	case Avg:
		if r.n == 0 {
			return Value{}
		}
		return Value{Valid: true, Num: r.sum.avg(r.n)}
	case Max:
		if len(r.maxq) == 0 {
			return Value{}
		}
		return Value{Valid: true, Num: float64(live[r.maxq[0]-h.base].Num) / microPerUnit}
	case Distinct:
		return Value{Valid: true, Num: float64(len(r.counts))}
	}
	return Value{}
}

func (r *running) add(k Kind, h *History, e Point, at int) {
	r.n++
	switch k {
	case Sum, Avg:
		r.sum.add(e.Num)
	case Distinct:
		if r.counts == nil {
			r.counts = map[uint64]int32{}
		}
		r.counts[e.Of]++
	case Max:
		// Entries are added in order: dropping the smaller ones behind
		// keeps the queue's values decreasing, its head the maximum.
		live := h.Live()
		for len(r.maxq) > 0 && live[r.maxq[len(r.maxq)-1]-h.base].Num <= e.Num {
			r.maxq = r.maxq[:len(r.maxq)-1]
		}
		r.maxq = append(r.maxq, at)
	}
}

// slide removes entries before lo (absolute) from the aggregate.
func (r *running) slide(k Kind, h *History, lo int) {
	live := h.Live()
	for ; r.lo < lo && r.lo < r.hi; r.lo++ {
		e := live[r.lo-h.base]
		r.n--
		switch k {
		case Sum, Avg:
			r.sum.sub(e.Num)
		case Distinct:
			if n := r.counts[e.Of] - 1; n > 0 {
				r.counts[e.Of] = n
			} else {
				delete(r.counts, e.Of)
			}
		}
	}
	if r.lo < lo {
		r.lo, r.hi = lo, lo // nothing aggregated yet reaches lo
	}
	if k == Max {
		n := 0
		for n < len(r.maxq) && r.maxq[n] < r.lo {
			n++
		}
		r.maxq = append(r.maxq[:0], r.maxq[n:]...)
	}
}

// Sighting computes seen, age or since_last for an event at p from the
// key's latest sightings and the start of its run.
func (h *History) Sighting(k Kind, p Position, retention int64) Value {
	pred, ok := h.Predecessor(p)
	return SightingValue(k, p, pred, ok, h.first, h.hasFirst, retention)
}

// Predecessor is the latest kept sighting before p.
func (h *History) Predecessor(p Position) (Position, bool) { return LatestBefore(h.Live(), p) }

// LatestBefore is the position of the latest of points, sorted by
// position, before p: an event's previous sighting.
func LatestBefore(points []Point, p Position) (Position, bool) {
	for i := len(points) - 1; i >= 0; i-- {
		if points[i].Pos.Before(p) {
			return points[i].Pos, true
		}
	}
	return Position{}, false
}

// SightingValue is the windowless arithmetic: the key was seen if its
// previous event is within the retention (or, for an event older than
// every sighting kept, if its run started before it); age counts from the
// run's start; since_last from the previous event.
func SightingValue(k Kind, p, pred Position, hasPred bool, first Position, hasFirst bool, retention int64) Value {
	within := hasPred && p.TS-pred.TS < retention
	seen := within || (!hasPred && hasFirst && first.Before(p))
	switch k {
	case Seen:
		return Value{Valid: true, Bool: seen}
	case Age:
		if !seen || !hasFirst || !first.Before(p) {
			return Value{Valid: true}
		}
		return Value{Valid: true, Num: seconds(p.TS - first.TS)}
	case SinceLast:
		if !within {
			return Value{}
		}
		return Value{Valid: true, Num: seconds(p.TS - pred.TS)}
	}
	return Value{}
}

// StartsRun reports whether an event at p becomes the start of the key's
// current run of sightings: the key has none; p comes shortly before the
// start (less than a retention: it extends the run back — an event from
// an older run leaves it alone); or p follows its previous event by a
// whole retention or more.
func StartsRun(p, pred Position, hasPred bool, first Position, hasFirst bool, retention int64) bool {
	switch {
	case !hasFirst:
		return true
	case p.Before(first):
		return first.TS-p.TS < retention
	}
	return hasPred && p.TS-pred.TS >= retention
}

// See records a sighting at p.
func (h *History) See(p Position, retention int64) {
	pred, ok := h.Predecessor(p)
	if StartsRun(p, pred, ok, h.first, h.hasFirst, retention) {
		h.first, h.hasFirst = p, true
	}
	h.Insert(Seen, Point{Pos: p})
	h.KeepLatest(Seen, SightingsKept)
}

func seconds(ms int64) float64 { return float64(ms) / 1000 }
