package features

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// oracle computes features the slow, obvious way from every record, with
// the trims the semantics define: the reference every store is held to.
// It decides on its own which events each feature records (its types and
// its where condition, from the test event) and which features share a
// history (same entity, kind of log, types, retention and condition), so
// the stores' own grouping into logs is checked, not assumed.
type oracle struct {
	window, lateness int64
	clock            int64
	seq              uint64
	features         []*Feature
	answers          map[string]oanswer
	logs             map[string][]orec // entity key + group -> records
	written          map[string]int64  // entity key + group -> clock when last recorded into
}

type oanswer struct {
	at   int64
	vals map[string]Value
}

// orec is a recorded event as the oracle keeps it: values as they came.
type orec struct {
	pos  position
	nums map[string]int64
	ofs  map[string]string
}

func newOracle(fs []*Feature, window, lateness time.Duration) *oracle {
	return &oracle{window: window.Milliseconds(), lateness: lateness.Milliseconds(), features: fs,
		answers: map[string]oanswer{}, logs: map[string][]orec{}, written: map[string]int64{}}
}

// group names the history f reads and records, independently of
// Set.link: events of the same types meeting the same condition, kept
// for windows or for sightings with one retention.
func group(f *Feature) string {
	types := slices.Clone(f.EventTypes)
	slices.Sort(types)
	g := fmt.Sprint(f.Kind.Windowed(), types, "where:", f.Where)
	if !f.Kind.Windowed() {
		g += fmt.Sprint(" retention:", f.Retention)
	}
	return g
}

// horizon is how far back the features of f's group look.
func (o *oracle) horizon(f *Feature) int64 {
	var h time.Duration
	for _, g := range o.features {
		if g.Entity == f.Entity && group(g) == group(f) {
			h = max(h, g.Horizon())
		}
	}
	return h.Milliseconds()
}

func (o *oracle) observe(e tevent) []Value {
	o.clock = max(o.clock, e.ts)
	var read []*Feature
	for _, f := range o.features {
		if _, ok := keyOf(f, e); ok {
			read = append(read, f)
		}
	}
	out := make([]Value, len(read))
	if a, ok := o.answers[e.id]; ok && o.clock-a.at < o.window {
		for i, f := range read {
			v, ok := a.vals[f.Name]
			if !ok {
				v = o.value(f, e, position{ts: e.ts, seq: o.seq + 1})
			}
			out[i] = v
		}
		return out
	}
	o.seq++
	p := position{ts: e.ts, seq: o.seq}
	a := oanswer{at: o.clock, vals: map[string]Value{}}
	for i, f := range read {
		out[i] = o.value(f, e, p)
		a.vals[f.Name] = out[i]
	}
	o.answers[e.id] = a
	done := map[string]bool{}
	for _, f := range read {
		key, _ := keyOf(f, e)
		k := f.Entity + "=" + key + "/" + group(f)
		if done[k] || !f.Records(e.typ) || !testWheres[f.Where](e) {
			continue
		}
		done[k] = true
		rec := orec{pos: p, nums: map[string]int64{}, ofs: map[string]string{}}
		if e.amount != nil {
			rec.nums["amount"] = *e.amount
		}
		if v, ok := e.fields["of"]; ok {
			rec.ofs["of"] = v
		}
		recs := o.logs[k]
		horizon := o.horizon(f)
		if w, ok := o.written[k]; ok && w <= o.clock-horizon-o.lateness-ttlMargin.Milliseconds() {
			recs = nil // past keeping: the log starts over
		}
		if f.Kind.Windowed() {
			// Recording an event drops what no event within the
			// lateness allowance of it can see.
			cut := p.ts - horizon - o.lateness
			recs = slices.DeleteFunc(recs, func(r orec) bool { return r.pos.ts <= cut })
		}
		o.logs[k] = append(recs, rec)
		o.written[k] = o.clock
	}
	return out
}

// testWheres are the conditions the test features use, as predicates on
// test events: the stores never see a condition, only whether the engine
// records an event, which observation decides with these.
var testWheres = map[string]func(tevent) bool{
	"":                    func(tevent) bool { return true },
	"event.amount > 500":  func(e tevent) bool { return e.amount != nil && *e.amount > 500_000_000 },
	"event.of in lists.o": func(e tevent) bool { return slices.Contains([]string{"v1", "v2", "v3", "v4"}, e.fields["of"]) },
}

func (o *oracle) value(f *Feature, e tevent, p position) Value {
	key, _ := keyOf(f, e)
	k := f.Entity + "=" + key + "/" + group(f)
	all := o.logs[k]
	if w, ok := o.written[k]; ok && w <= o.clock-o.horizon(f)-o.lateness-ttlMargin.Milliseconds() {
		all = nil // kept its horizon and a day past its last write, then gone
	}
	if !f.Kind.Windowed() {
		return o.sighting(f, all, p)
	}
	var in []orec
	for _, r := range all {
		if r.pos.before(p) && r.pos.ts > p.ts-f.Window.Milliseconds() {
			in = append(in, r)
		}
	}
	var nums []int64
	for _, r := range in {
		if n, ok := r.nums[f.Field.Name]; ok {
			nums = append(nums, n)
		}
	}
	switch f.Kind {
	case Count:
		return Value{Valid: true, Num: float64(len(in))}
	case Sum:
		var s int64
		for _, n := range nums {
			s += n
		}
		return Value{Valid: true, Num: float64(s) / 1e6}
	case Avg:
		if len(nums) == 0 {
			return Value{}
		}
		var s int64
		for _, n := range nums {
			s += n
		}
		return Value{Valid: true, Num: float64(s) / float64(len(nums)) / 1e6}
	case Max:
		if len(nums) == 0 {
			return Value{}
		}
		return Value{Valid: true, Num: float64(slices.Max(nums)) / 1e6}
	case Distinct:
		set := map[string]bool{}
		for _, r := range in {
			if v, ok := r.ofs[f.Of.Name]; ok {
				set[v] = true
			}
		}
		return Value{Valid: true, Num: float64(len(set))}
	}
	panic("unknown kind")
}

// sighting: the stores keep a key's latest sightingsKept events and the
// start of its run; with no gap of a whole retention in these tests, the
// run starts at the key's first event.
func (o *oracle) sighting(f *Feature, all []orec, p position) Value {
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, func(a, b orec) int {
		if a.pos.before(b.pos) {
			return -1
		}
		return 1
	})
	var first position
	hasFirst := len(sorted) > 0
	if hasFirst {
		first = sorted[0].pos
	}
	kept := sorted[max(0, len(sorted)-sightingsKept):]
	var pred position
	hasPred := false
	for _, r := range kept {
		if r.pos.before(p) {
			pred, hasPred = r.pos, true
		}
	}
	ret := f.Retention.Milliseconds()
	within := hasPred && p.ts-pred.ts < ret
	seen := within || (!hasPred && hasFirst && first.before(p))
	switch f.Kind {
	case Seen:
		return Value{Valid: true, Bool: seen}
	case Age:
		if !seen || !first.before(p) {
			return Value{Valid: true}
		}
		return Value{Valid: true, Num: float64(p.ts-first.ts) / 1000}
	case SinceLast:
		if !within {
			return Value{}
		}
		return Value{Valid: true, Num: float64(p.ts-pred.ts) / 1000}
	}
	panic("unknown kind")
}

// oracleSet covers every kind, two windows for the windowed ones, logs of
// different event types on one entity, and a composite key.
func oracleSet() *Set {
	var fs []*Feature
	add := func(name string, k Kind, w time.Duration, types []string, key ...string) {
		f := &Feature{Name: name, Kind: k, Window: w, EventTypes: types, Field: NewPath("amount"), Of: NewPath("of")}
		for _, p := range key {
			f.Key = append(f.Key, NewPath(p))
		}
		f.Entity = fmt.Sprint(key)
		if !k.Windowed() {
			f.Retention = DefaultRetention
		}
		fs = append(fs, f)
	}
	for _, k := range []Kind{Count, Sum, Avg, Max, Distinct} {
		add(k.String()+"_1m", k, time.Minute, nil, "k")
		add(k.String()+"_10m", k, 10*time.Minute, nil, "k")
	}
	for _, k := range []Kind{Age, SinceLast, Seen} {
		add(k.String(), k, 0, nil, "k")
	}
	add("b_count_10m", Count, 10*time.Minute, []string{"b"}, "k")
	add("b_sum_1m", Sum, time.Minute, []string{"b"}, "k")
	add("b_since_last", SinceLast, 0, []string{"b"}, "k")
	add("b_seen", Seen, 0, []string{"b"}, "k")
	add("pair_count_10m", Count, 10*time.Minute, nil, "k", "k2")
	add("pair_seen", Seen, 0, nil, "k", "k2")
	// Filtered features: the same entity and types as unfiltered ones
	// above, so a store (or link) that let them share a history fails.
	where := func(w string) { fs[len(fs)-1].Where = w }
	add("big_count_10m", Count, 10*time.Minute, nil, "k")
	where("event.amount > 500")
	add("big_sum_1m", Sum, time.Minute, nil, "k")
	where("event.amount > 500")
	add("big_max_10m", Max, 10*time.Minute, nil, "k")
	where("event.amount > 500")
	add("b_short_distinct_10m", Distinct, 10*time.Minute, []string{"b"}, "k")
	where("event.of in lists.o")
	add("b_short_count_1m", Count, time.Minute, []string{"b"}, "k")
	where("event.of in lists.o")
	add("big_seen", Seen, 0, nil, "k")
	where("event.amount > 500")
	add("big_since_last", SinceLast, 0, nil, "k")
	where("event.amount > 500")
	add("pair_big_age", Age, 0, nil, "k", "k2")
	where("event.amount > 500")
	return testSet(fs...)
}

// testSet links features into logs as Parse does.
func testSet(fs ...*Feature) *Set {
	s := &Set{Features: fs, byName: map[string]int{}}
	for i, f := range fs {
		s.byName[f.Name] = i
	}
	s.link()
	return s
}

// tevent is a test event: nil fields are absent.
type tevent struct {
	id, typ string
	ts      int64
	fields  map[string]string // k, k2, of
	amount  *int64            // micro-units
}

// keyOf is the key of f for e, as the engine builds it; false when e
// lacks one of its fields.
func keyOf(f *Feature, e tevent) (string, bool) {
	key := ""
	for i, p := range f.Key {
		v, ok := e.fields[p.Name]
		if !ok {
			return "", false
		}
		if i > 0 {
			key += KeySep
		}
		key += v
	}
	return key, true
}

// observation builds what the engine would ask of the store for e: every
// feature read, each log of its key recorded when the type matches and
// the log's condition holds.
func observation(fs []*Feature, e tevent) *Observation {
	obs := &Observation{}
	obs.Reset(e.id, e.ts)
	entries := map[*Log]int{}
	for _, f := range fs {
		key, ok := keyOf(f, e)
		if !ok {
			continue
		}
		ei, ok := entries[f.Log]
		if !ok {
			ei = obs.AddEntry(f.Log, key, f.Records(e.typ) && testWheres[f.Log.Where](e))
			entries[f.Log] = ei
			for slot, p := range f.Log.Nums {
				if p.Name == "amount" && e.amount != nil {
					obs.SetNum(ei, slot, *e.amount)
				}
			}
			for slot, p := range f.Log.Ofs {
				if v, ok := e.fields[p.Name]; ok {
					obs.SetOf(ei, slot, v)
				}
			}
		}
		obs.AddItem(f, ei)
	}
	return obs
}

// testClock is the event-time clock the Redis store is given in tests,
// so the idempotency window runs on the events' time as the memory
// store's does in EventTime mode.
type testClock struct{ ms int64 }

func (c *testClock) now() time.Time { return time.UnixMilli(c.ms) }

// storeMaker returns a fresh store and the clock it reads (nil: the
// store keeps its own event-time clock).
type storeMaker func(t *testing.T) (Store, *testClock)

const (
	testWindow   = 24 * time.Hour
	testLateness = time.Minute
)

func TestMemoryMatchesOracle(t *testing.T) {
	newMemory := func(t *testing.T) (Store, *testClock) {
		return NewMemory(MemoryOptions{Options: Options{IdempotencyWindow: testWindow, Lateness: testLateness}, EventTime: true}), nil
	}
	conformance(t, newMemory)
	// Windows here rarely hold enough events for the running aggregates
	// busy keys use: run again with them on every in-order read.
	t.Run("running", func(t *testing.T) {
		defer func(n int) { runningFrom = n }(runningFrom)
		runningFrom = 0
		conformance(t, newMemory)
	})
}

// conformance drives a store and the oracle with random streams — mostly
// in order, some late, some later than the lateness allowance, retries
// right after and long after (past the idempotency window), same
// millisecond ties, absent keys and fields, two event types — and
// requires identical features. Every store runs it.
func conformance(t *testing.T, newStore storeMaker) { conformanceSeeds(t, 12, newStore) }

func conformanceSeeds(t *testing.T, seeds uint64, newStore storeMaker) {
	for seed := uint64(1); seed <= seeds; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			set := oracleSet()
			s, clock := newStore(t)
			o := newOracle(set.Features, testWindow, testLateness)
			var sent []tevent
			now := t0
			for n := 0; n < 500; n++ {
				var e tevent
				switch r := rng.IntN(100); {
				case r < 10 && len(sent) > 0: // a retry: the same event again
					e = sent[rng.IntN(len(sent))]
				case r < 12 && len(sent) > 0: // a retry of a recent one
					e = sent[max(0, len(sent)-1-rng.IntN(3))]
				case r < 24:
					e = randomEvent(rng, fmt.Sprint("e", n), now-rng.Int64N(30)*1000) // late within the allowance
				case r < 28:
					e = randomEvent(rng, fmt.Sprint("e", n), now-rng.Int64N(600)*1000) // maybe beyond it
				case r < 30:
					now += (6 + rng.Int64N(24)) * time.Hour.Milliseconds() // idle hours: windows empty, answers age
					e = randomEvent(rng, fmt.Sprint("e", n), now)
				default:
					now += rng.Int64N(20) * 1000 // whole seconds: ties and exact window edges happen
					e = randomEvent(rng, fmt.Sprint("e", n), now)
				}
				sent = append(sent, e)
				obs := observation(set.Features, e)
				want := o.observe(e)
				if clock != nil {
					clock.ms = o.clock
				}
				if err := s.Observe(t.Context(), obs); err != nil {
					t.Fatal(err)
				}
				for i, it := range obs.Items {
					if it.Value != want[i] {
						t.Fatalf("event %d (%s type %s at %+d ms, key %q) %s: store %+v, oracle %+v",
							n, e.id, e.typ, e.ts-t0, obs.Entries[it.Entry].Key, it.Feature.Name, it.Value, want[i])
					}
				}
			}
		})
	}
}

func randomEvent(rng *rand.Rand, id string, ts int64) tevent {
	e := tevent{id: id, typ: []string{"a", "b"}[rng.IntN(2)], ts: ts, fields: map[string]string{}}
	if rng.IntN(20) > 0 {
		e.fields["k"] = fmt.Sprint("k", rng.IntN(3))
	}
	if rng.IntN(2) > 0 {
		e.fields["k2"] = fmt.Sprint("x", rng.IntN(2))
	}
	if rng.IntN(10) > 0 {
		e.fields["of"] = fmt.Sprint("v", rng.IntN(12))
	}
	if rng.IntN(10) > 0 {
		a := rng.Int64N(2_000_000_000) - 300_000_000 // -300 to 1700 units, to the micro-unit
		e.amount = &a
	}
	return e
}
