package features

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// oracle computes features the slow, obvious way from a log of every
// recorded event: the reference the stores are held to.
type oracle struct {
	seq     uint64
	first   map[string]position // event id -> first delivery
	entries map[string][]oentry // feature+key -> recorded events
	newest  map[string]int64    // feature+key -> newest recorded ts
}

func newOracle() *oracle {
	return &oracle{first: map[string]position{}, entries: map[string][]oentry{}, newest: map[string]int64{}}
}

func (o *oracle) observe(obs *Observation) []Value {
	pos, retry := o.first[obs.EventID]
	if !retry {
		o.seq++
		pos = position{ts: obs.TS, seq: o.seq}
		o.first[obs.EventID] = pos
	}
	out := make([]Value, len(obs.Items))
	for i, it := range obs.Items {
		k := it.Feature.Name + "\x00" + it.Key
		if it.Read {
			out[i] = o.value(it.Feature, o.entries[k], o.newest[k], pos)
		}
		if it.Record && !retry {
			o.entries[k] = append(o.entries[k], oentry{pos: pos, num: it.Num, of: it.Of})
			o.newest[k] = max(o.newest[k], pos.ts)
		}
	}
	return out
}

// oentry is a recorded event as the oracle keeps it: values as they are.
type oentry struct {
	pos position
	num float64
	of  string
}

func (o *oracle) value(f *Feature, all []oentry, newest int64, pos position) Value {
	var before []oentry
	for _, e := range all {
		if e.pos.before(pos) {
			before = append(before, e)
		}
	}
	switch f.Kind {
	case Seen:
		return Value{Valid: true, Bool: len(before) > 0}
	case Age:
		if len(before) == 0 {
			return Value{Valid: true}
		}
		first := before[0].pos
		for _, e := range before {
			if e.pos.before(first) {
				first = e.pos
			}
		}
		return Value{Valid: true, Num: seconds(pos.ts - first.ts)}
	case SinceLast:
		// The store keeps the key's latest sinceLastDepth events.
		kept := latest(all, sinceLastDepth)
		var prev *oentry
		for i := range kept {
			if kept[i].pos.before(pos) && (prev == nil || prev.pos.before(kept[i].pos)) {
				prev = &kept[i]
			}
		}
		if prev == nil {
			return Value{}
		}
		return Value{Valid: true, Num: seconds(pos.ts - prev.pos.ts)}
	}
	w := f.Window.Milliseconds()
	var in []oentry
	for _, e := range before {
		if e.pos.ts > pos.ts-w && e.pos.ts > newest-w {
			in = append(in, e)
		}
	}
	switch f.Kind {
	case Count:
		return Value{Valid: true, Num: float64(len(in))}
	case Sum:
		sum := 0.0
		for _, e := range sorted(in) {
			sum += e.num
		}
		return Value{Valid: true, Num: sum}
	case Avg:
		if len(in) == 0 {
			return Value{}
		}
		sum := 0.0
		for _, e := range sorted(in) {
			sum += e.num
		}
		return Value{Valid: true, Num: sum / float64(len(in))}
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
		set := map[string]bool{}
		for _, e := range in {
			set[e.of] = true
		}
		return Value{Valid: true, Num: float64(len(set))}
	}
	panic("unknown kind")
}

// sorted orders entries by position, the order the store sums them in, so
// float sums agree to the last bit.
func sorted(es []oentry) []oentry {
	out := append([]oentry(nil), es...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].pos.before(out[j-1].pos); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func latest(es []oentry, n int) []oentry {
	s := sorted(es)
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// oracleFeatures covers every kind, with two windows for the windowed ones.
func oracleFeatures() []*Feature {
	var fs []*Feature
	for _, k := range []Kind{Count, Sum, Avg, Max, Distinct, Age, SinceLast, Seen} {
		windows := []time.Duration{0}
		if k.Windowed() {
			windows = []time.Duration{time.Minute, 10 * time.Minute}
		}
		for _, w := range windows {
			f := &Feature{Name: fmt.Sprintf("%s_%s", k, w), Kind: k, Key: []Path{NewPath("k")}, Entity: "k", Window: w}
			if !k.Windowed() {
				f.Retention = DefaultRetention
			}
			fs = append(fs, f)
		}
	}
	return fs
}

// TestMemoryMatchesOracle holds the memory store to the oracle.
func TestMemoryMatchesOracle(t *testing.T) {
	conformance(t, func(t *testing.T) Store { return NewMemory() })
}

// conformance drives a store and the oracle with random sequences — mostly
// in order, some late, some retries, some events read but not recorded,
// ties and exact window edges — and requires identical features. Every
// store runs it.
func conformance(t *testing.T, newStore func(t *testing.T) Store) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			fs := oracleFeatures()
			s, o := newStore(t), newOracle()
			var sent []*Observation
			now := t0
			// Few enough events that no memory shard reaches a sweep: the
			// oracle models trimming on record, not the amortised sweep.
			for n := 0; n < 600; n++ {
				var obs *Observation
				switch r := rng.IntN(100); {
				case r < 10 && len(sent) > 0: // a retry: the same event again
					obs = cloneObservation(sent[rng.IntN(len(sent))])
				case r < 20: // late by up to 30 s
					obs = randomObservation(rng, fs, fmt.Sprint("e", n), now-rng.Int64N(30)*1000)
				default:
					now += rng.Int64N(20) * 1000 // whole seconds: ties and exact window edges happen
					obs = randomObservation(rng, fs, fmt.Sprint("e", n), now)
				}
				sent = append(sent, cloneObservation(obs))
				want := o.observe(obs)
				if err := s.Observe(t.Context(), obs); err != nil {
					t.Fatal(err)
				}
				for i, it := range obs.Items {
					if it.Value != want[i] {
						t.Fatalf("event %d (%s at %+d ms) %s: store %+v, oracle %+v", n, obs.EventID, obs.TS-t0, it.Feature.Name, it.Value, want[i])
					}
				}
			}
		})
	}
}

func randomObservation(rng *rand.Rand, fs []*Feature, id string, ts int64) *Observation {
	obs := &Observation{EventID: id, TS: ts}
	key := fmt.Sprint("k", rng.IntN(3))
	for _, f := range fs {
		obs.Items = append(obs.Items, Item{Feature: f, Key: key, Read: true, Record: rng.IntN(10) > 0,
			Num: float64(rng.IntN(1000)) / 10, Of: fmt.Sprint("v", rng.IntN(12))})
	}
	return obs
}

func cloneObservation(o *Observation) *Observation {
	c := *o
	c.Items = append([]Item(nil), o.Items...)
	for i := range c.Items {
		c.Items[i].Value = Value{}
	}
	return &c
}
