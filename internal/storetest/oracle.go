// Package storetest holds what every feature store is tested with: an
// oracle that computes features the slow, obvious way, a conformance run
// of random streams against it, and a table of window edges per kind.
package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/riskd/riskd/features"
)

// oracle computes features the slow, obvious way from every record, with
// the trims the semantics define: the reference every store is held to.
// It decides on its own which events each feature records (its types and
// its where condition, from the test event) and which features share a
// History (same entity, kind of log, types, retention and condition), so
// the stores' own grouping into logs is checked, not assumed.
type oracle struct {
	window, lateness int64
	clock            int64
	seq              uint64
	features         []*features.Feature
	answers          map[string]oanswer
	logs             map[string][]orec // entity key + group -> records
	written          map[string]int64  // entity key + group -> clock when last recorded into
}

type oanswer struct {
	at   int64
	vals map[string]features.Value
}

// orec is a recorded event as the oracle keeps it: values as they came.
type orec struct {
	pos  features.Position
	nums map[string]int64
	ofs  map[string]string
}

func newOracle(fs []*features.Feature, window, lateness time.Duration) *oracle {
	return &oracle{window: window.Milliseconds(), lateness: lateness.Milliseconds(), features: fs,
		answers: map[string]oanswer{}, logs: map[string][]orec{}, written: map[string]int64{}}
}

// group names the history f reads and records, independently of
// Set.link: events of the same types meeting the same condition, kept
// for windows or for sightings with one retention.
func group(f *features.Feature) string {
	types := slices.Clone(f.EventTypes)
	slices.Sort(types)
	g := fmt.Sprint(f.Kind.Windowed(), types, "where:", f.Where)
	if !f.Kind.Windowed() {
		g += fmt.Sprint(" retention:", f.Retention)
	}
	return g
}

// horizon is how far back the features of f's group look.
func (o *oracle) horizon(f *features.Feature) int64 {
	var h time.Duration
	for _, g := range o.features {
		if g.Entity == f.Entity && group(g) == group(f) {
			h = max(h, g.Horizon())
		}
	}
	return h.Milliseconds()
}

func (o *oracle) observe(e Event) []features.Value {
	o.clock = max(o.clock, e.TS)
	var read []*features.Feature
	for _, f := range o.features {
		if _, ok := keyOf(f, e); ok {
			read = append(read, f)
		}
	}
	out := make([]features.Value, len(read))
	if a, ok := o.answers[e.ID]; ok && o.clock-a.at < o.window {
		for i, f := range read {
			v, ok := a.vals[f.Name]
			if !ok {
				v = o.value(f, e, features.Position{TS: e.TS, Seq: o.seq + 1})
			}
			out[i] = v
		}
		return out
	}
	o.seq++
	p := features.Position{TS: e.TS, Seq: o.seq}
	a := oanswer{at: o.clock, vals: map[string]features.Value{}}
	for i, f := range read {
		out[i] = o.value(f, e, p)
		a.vals[f.Name] = out[i]
	}
	o.answers[e.ID] = a
	done := map[string]bool{}
	for _, f := range read {
		key, _ := keyOf(f, e)
		k := f.Entity + "=" + key + "/" + group(f)
		if done[k] || !f.Records(e.Type) || !testWheres[f.Where](e) {
			continue
		}
		done[k] = true
		rec := orec{pos: p, nums: map[string]int64{}, ofs: map[string]string{}}
		if e.Amount != nil {
			rec.nums["amount"] = *e.Amount
		}
		if v, ok := e.Fields["of"]; ok {
			rec.ofs["of"] = v
		}
		recs := o.logs[k]
		horizon := o.horizon(f)
		if w, ok := o.written[k]; ok && w <= o.clock-horizon-o.lateness-features.TTLMargin.Milliseconds() {
			recs = nil // past keeping: the log starts over
		}
		if f.Kind.Windowed() {
			// Recording an event drops what no event within the
			// lateness allowance of it can see.
			cut := p.TS - horizon - o.lateness
			recs = slices.DeleteFunc(recs, func(r orec) bool { return r.pos.TS <= cut })
		}
		o.logs[k] = append(recs, rec)
		o.written[k] = o.clock
	}
	return out
}

// testWheres are the conditions the test features use, as predicates on
// test events: the stores never see a condition, only whether the engine
// records an event, which observation decides with these.
var testWheres = map[string]func(Event) bool{
	"":                    func(Event) bool { return true },
	"event.amount > 500":  func(e Event) bool { return e.Amount != nil && *e.Amount > 500_000_000 },
	"event.of in lists.o": func(e Event) bool { return slices.Contains([]string{"v1", "v2", "v3", "v4"}, e.Fields["of"]) },
}

func (o *oracle) value(f *features.Feature, e Event, p features.Position) features.Value {
	key, _ := keyOf(f, e)
	k := f.Entity + "=" + key + "/" + group(f)
	all := o.logs[k]
	if w, ok := o.written[k]; ok && w <= o.clock-o.horizon(f)-o.lateness-features.TTLMargin.Milliseconds() {
		all = nil // kept its horizon and a day past its last write, then gone
	}
	if !f.Kind.Windowed() {
		return o.Sighting(f, all, p)
	}
	var in []orec
	for _, r := range all {
		if r.pos.Before(p) && r.pos.TS > p.TS-f.Window.Milliseconds() {
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
	case features.Count:
		return features.Value{Valid: true, Num: float64(len(in))}
	case features.Sum:
		var s int64
		for _, n := range nums {
			s += n
		}
		return features.Value{Valid: true, Num: float64(s) / 1e6}
	case features.Avg:
		if len(nums) == 0 {
			return features.Value{}
		}
		var s int64
		for _, n := range nums {
			s += n
		}
		return features.Value{Valid: true, Num: float64(s) / float64(len(nums)) / 1e6}
	case features.Max:
		if len(nums) == 0 {
			return features.Value{}
		}
		return features.Value{Valid: true, Num: float64(slices.Max(nums)) / 1e6}
	case features.Distinct:
		set := map[string]bool{}
		for _, r := range in {
			if v, ok := r.ofs[f.Of.Name]; ok {
				set[v] = true
			}
		}
		return features.Value{Valid: true, Num: float64(len(set))}
	}
	panic("unknown kind")
}

// sighting: the stores keep a key's latest features.SightingsKept events and the
// start of its run; with no gap of a whole retention in these tests, the
// run starts at the key's first event.
func (o *oracle) Sighting(f *features.Feature, all []orec, p features.Position) features.Value {
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, func(a, b orec) int {
		if a.pos.Before(b.pos) {
			return -1
		}
		return 1
	})
	var first features.Position
	hasFirst := len(sorted) > 0
	if hasFirst {
		first = sorted[0].pos
	}
	kept := sorted[max(0, len(sorted)-features.SightingsKept):]
	var pred features.Position
	hasPred := false
	for _, r := range kept {
		if r.pos.Before(p) {
			pred, hasPred = r.pos, true
		}
	}
	ret := f.Retention.Milliseconds()
	within := hasPred && p.TS-pred.TS < ret
	seen := within || (!hasPred && hasFirst && first.Before(p))
	switch f.Kind {
	case features.Seen:
		return features.Value{Valid: true, Bool: seen}
	case features.Age:
		if !seen || !first.Before(p) {
			return features.Value{Valid: true}
		}
		return features.Value{Valid: true, Num: float64(p.TS-first.TS) / 1000}
	case features.SinceLast:
		if !within {
			return features.Value{}
		}
		return features.Value{Valid: true, Num: float64(p.TS-pred.TS) / 1000}
	}
	panic("unknown kind")
}

// OracleSet covers every kind, two windows for the windowed ones, logs of
// different event types on one entity, and a composite key.
func OracleSet() *features.Set {
	var fs []*features.Feature
	add := func(name string, k features.Kind, w time.Duration, types []string, key ...string) {
		f := &features.Feature{Name: name, Kind: k, Window: w, EventTypes: types, Field: features.NewPath("amount"), Of: features.NewPath("of")}
		for _, p := range key {
			f.Key = append(f.Key, features.NewPath(p))
		}
		f.Entity = fmt.Sprint(key)
		if !k.Windowed() {
			f.Retention = features.DefaultRetention
		}
		fs = append(fs, f)
	}
	for _, k := range []features.Kind{features.Count, features.Sum, features.Avg, features.Max, features.Distinct} {
		add(k.String()+"_1m", k, time.Minute, nil, "k")
		add(k.String()+"_10m", k, 10*time.Minute, nil, "k")
	}
	for _, k := range []features.Kind{features.Age, features.SinceLast, features.Seen} {
		add(k.String(), k, 0, nil, "k")
	}
	add("b_count_10m", features.Count, 10*time.Minute, []string{"b"}, "k")
	add("b_sum_1m", features.Sum, time.Minute, []string{"b"}, "k")
	add("b_since_last", features.SinceLast, 0, []string{"b"}, "k")
	add("b_seen", features.Seen, 0, []string{"b"}, "k")
	add("pair_count_10m", features.Count, 10*time.Minute, nil, "k", "k2")
	add("pair_seen", features.Seen, 0, nil, "k", "k2")
	// Filtered features: the same entity and types as unfiltered ones
	// above, so a store (or link) that let them share a history fails.
	where := func(w string) { fs[len(fs)-1].Where = w }
	add("big_count_10m", features.Count, 10*time.Minute, nil, "k")
	where("event.amount > 500")
	add("big_sum_1m", features.Sum, time.Minute, nil, "k")
	where("event.amount > 500")
	add("big_max_10m", features.Max, 10*time.Minute, nil, "k")
	where("event.amount > 500")
	add("b_short_distinct_10m", features.Distinct, 10*time.Minute, []string{"b"}, "k")
	where("event.of in lists.o")
	add("b_short_count_1m", features.Count, time.Minute, []string{"b"}, "k")
	where("event.of in lists.o")
	add("big_seen", features.Seen, 0, nil, "k")
	where("event.amount > 500")
	add("big_since_last", features.SinceLast, 0, nil, "k")
	where("event.amount > 500")
	add("pair_big_age", features.Age, 0, nil, "k", "k2")
	where("event.amount > 500")
	return features.NewSet(fs...)
}

// Event is a test event: nil fields are absent.
type Event struct {
	ID, Type string
	TS       int64
	Fields   map[string]string // k, k2, of
	Amount   *int64            // micro-units
}

// keyOf is the key of f for e, as the engine builds it; false when e
// lacks one of its fields.
func keyOf(f *features.Feature, e Event) (string, bool) {
	key := ""
	for i, p := range f.Key {
		v, ok := e.Fields[p.Name]
		if !ok {
			return "", false
		}
		if i > 0 {
			key += features.KeySep
		}
		key += v
	}
	return key, true
}

// NewObservation builds what the engine would ask of the store for e: every
// feature read, each log of its key recorded when the type matches and
// the log's condition holds.
func NewObservation(fs []*features.Feature, e Event) *features.Observation {
	obs := &features.Observation{}
	obs.Reset(e.ID, e.TS)
	entries := map[*features.EventLog]int{}
	for _, f := range fs {
		key, ok := keyOf(f, e)
		if !ok {
			continue
		}
		ei, ok := entries[f.EventLog]
		if !ok {
			ei = obs.AddEntry(f.EventLog, key, f.Records(e.Type) && testWheres[f.EventLog.Where](e))
			entries[f.EventLog] = ei
			for slot, p := range f.EventLog.Nums {
				if p.Name == "amount" && e.Amount != nil {
					obs.SetNum(ei, slot, *e.Amount)
				}
			}
			for slot, p := range f.EventLog.Ofs {
				if v, ok := e.Fields[p.Name]; ok {
					obs.SetOf(ei, slot, v)
				}
			}
		}
		obs.AddItem(f, ei)
	}
	return obs
}

// Clock is the event-time clock the Redis store is given in tests,
// so the idempotency window runs on the events' time as the memory
// store's does in EventTime mode.
type Clock struct{ MS int64 }

// Now is the clock's time, for a store's Now option.
func (c *Clock) Now() time.Time { return time.UnixMilli(c.MS) }

// StoreMaker returns a fresh store and the clock it reads (nil: the
// store keeps its own event-time clock).
type StoreMaker func(t *testing.T) (features.Store, *Clock)

// Window and Lateness are the idempotency window and lateness allowance
// the oracle is run with: stores under test are given the same.
const (
	Window   = 24 * time.Hour
	Lateness = time.Minute
)

// Conformance drives a store and the oracle with random streams — mostly
// in order, some late, some later than the lateness allowance, retries
// right after and long after (past the idempotency window), same
// millisecond ties, absent keys and fields, two event types — and
// requires identical features. Every store runs it.
func Conformance(t *testing.T, newStore StoreMaker) { ConformanceSeeds(t, 12, newStore) }

// ConformanceSeeds is Conformance over seeds random streams.
func ConformanceSeeds(t *testing.T, seeds uint64, newStore StoreMaker) {
	for seed := uint64(1); seed <= seeds; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			set := OracleSet()
			s, clock := newStore(t)
			o := newOracle(set.Features, Window, Lateness)
			var sent []Event
			now := T0
			for n := 0; n < 500; n++ {
				var e Event
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
				obs := NewObservation(set.Features, e)
				want := o.observe(e)
				if clock != nil {
					clock.MS = o.clock
				}
				if err := s.Observe(t.Context(), obs); err != nil {
					t.Fatal(err)
				}
				for i, it := range obs.Items {
					if it.Value != want[i] {
						t.Fatalf("event %d (%s type %s at %+d ms, key %q) %s: store %+v, oracle %+v",
							n, e.ID, e.Type, e.TS-T0, obs.Entries[it.Entry].Key, it.Feature.Name, it.Value, want[i])
					}
				}
			}
		})
	}
}

func randomEvent(rng *rand.Rand, id string, ts int64) Event {
	e := Event{ID: id, Type: []string{"a", "b"}[rng.IntN(2)], TS: ts, Fields: map[string]string{}}
	if rng.IntN(20) > 0 {
		e.Fields["k"] = fmt.Sprint("k", rng.IntN(3))
	}
	if rng.IntN(2) > 0 {
		e.Fields["k2"] = fmt.Sprint("x", rng.IntN(2))
	}
	if rng.IntN(10) > 0 {
		e.Fields["of"] = fmt.Sprint("v", rng.IntN(12))
	}
	if rng.IntN(10) > 0 {
		a := rng.Int64N(2_000_000_000) - 300_000_000 // -300 to 1700 units, to the micro-unit
		e.Amount = &a
	}
	return e
}
