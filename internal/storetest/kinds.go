package storetest

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/riskd/riskd/features"
)

// Ev is one event of a test sequence for a single feature. ts is in
// seconds from t0; key "" means the event lacks the key field.
type Ev struct {
	ID   string
	TS   float64
	Key  string
	Num  float64
	Of   string
	Skip bool // the value field is absent: read but not recorded
	Want any  // nil, float64 or bool
}

// T0 is the time test events are placed from.
const T0 = int64(1_780_000_000_000)

// NewFeature returns a feature keyed by k, linked into a set of its own.
func NewFeature(kind features.Kind, window time.Duration) *features.Feature {
	f := &features.Feature{Name: "f", Kind: kind, Key: []features.Path{features.NewPath("k")}, Window: window, Retention: features.DefaultRetention, Entity: "k",
		Field: features.NewPath("amount"), Of: features.NewPath("of")}
	if !kind.Windowed() {
		f.Window = 0
	}
	features.NewSet(f)
	return f
}

// ObserveOne scores one event for feature f the way the engine does.
func ObserveOne(t testing.TB, s features.Store, f *features.Feature, e Ev) features.Value {
	t.Helper()
	te := Event{ID: e.ID, Type: "a", TS: T0 + int64(math.Round(e.TS*1000)), Fields: map[string]string{}}
	if e.Key == "" {
		return features.Value{} // absent key: the engine asks the store nothing
	}
	te.Fields["k"] = e.Key
	if !e.Skip {
		te.Fields["of"] = e.Of
		n := int64(math.Round(e.Num * 1e6))
		te.Amount = &n
	}
	obs := NewObservation([]*features.Feature{f}, te)
	if err := s.Observe(context.Background(), obs); err != nil {
		t.Fatalf("observe %s: %v", e.ID, err)
	}
	return obs.Items[0].Value
}

// AsAny is v as the kind tables write it: nil, a float64 or a bool.
func AsAny(v features.Value, k features.Kind) any {
	switch {
	case !v.Valid:
		return nil
	case k.Bool():
		return v.Bool
	}
	return v.Num
}

// kindTests are window edges, ties, late events, retries and absent keys
// for every kind; every store runs them (Kinds).
var kindTests = []struct {
	name   string
	kind   features.Kind
	window time.Duration
	events []Ev
}{
	{"count counts history strictly before", features.Count, h, []Ev{
		{ID: "1", TS: 0, Key: "a", Want: 0.0},
		{ID: "2", TS: 1, Key: "a", Want: 1.0},
		{ID: "3", TS: 2, Key: "b", Want: 0.0},
		{ID: "4", TS: 3, Key: "a", Want: 2.0},
	}},
	{"count window is left-open: exactly one window ago is out", features.Count, h, []Ev{
		{ID: "1", TS: 0, Key: "a", Want: 0.0},
		{ID: "2", TS: 3599.999, Key: "a", Want: 1.0},
		{ID: "3", TS: 3600, Key: "a", Want: 1.0},     // event 1 is exactly 1h old: out
		{ID: "4", TS: 7199.999, Key: "a", Want: 1.0}, // 2 is exactly 1h old: out
		{ID: "5", TS: 7200, Key: "a", Want: 1.0},     // 3 is exactly 1h old: out
	}},
	{"count same millisecond: earlier arrival counts", features.Count, h, []Ev{
		{ID: "1", TS: 10, Key: "a", Want: 0.0},
		{ID: "2", TS: 10, Key: "a", Want: 1.0},
		{ID: "3", TS: 10, Key: "a", Want: 2.0},
	}},
	{"count late event sees only older history", features.Count, h, []Ev{
		{ID: "1", TS: 100, Key: "a", Want: 0.0},
		{ID: "2", TS: 200, Key: "a", Want: 1.0},
		{ID: "3", TS: 150, Key: "a", Want: 1.0},
		{ID: "4", TS: 300, Key: "a", Want: 3.0},
	}},
	{"count retry is not recorded twice and gets the same value", features.Count, h, []Ev{
		{ID: "1", TS: 0, Key: "a", Want: 0.0},
		{ID: "2", TS: 1, Key: "a", Want: 1.0},
		{ID: "2", TS: 1, Key: "a", Want: 1.0},
		{ID: "3", TS: 2, Key: "a", Want: 2.0},
		{ID: "2", TS: 1, Key: "a", Want: 1.0}, // after a later event too
		{ID: "1", TS: 0, Key: "a", Want: 0.0},
	}},
	// The retries: r2 is retried after r3 moved the key on, and
	// r1 after its idempotency window, when it is a new event.
	{"count retry after later events gets its first answer", features.Count, h, []Ev{
		{ID: "r1", TS: 0, Key: "a", Want: 0.0},
		{ID: "r2", TS: 1800, Key: "a", Want: 1.0},
		{ID: "r3", TS: 7200, Key: "a", Want: 0.0},
		{ID: "r2", TS: 1800, Key: "a", Want: 1.0},
	}},
	{"count id scored again after its window is a new event", features.Count, 48 * h, []Ev{
		{ID: "r1", TS: 0, Key: "a", Want: 0.0},
		{ID: "r2", TS: 1800, Key: "a", Want: 1.0},
		{ID: "r1", TS: 0, Key: "a", Want: 0.0},           // a retry
		{ID: "r4", TS: 30 * 3600, Key: "a", Want: 2.0},   // 30 h later
		{ID: "r1", TS: 0, Key: "a", Want: 1.0},           // past the window: new, after r1's first scoring
		{ID: "r5", TS: 30*3600 + 1, Key: "a", Want: 4.0}, // r1 counts twice now
	}},
	// A log past keeping (its horizon, the lateness allowance and
	// TTLMargin after its last write, on the store's clock) reads as
	// gone; an old event recorded into it starts it over, so what it held
	// before stays gone even though the log was written since.
	{"count log past keeping starts over when an old event records into it", features.Count, h, []Ev{
		{ID: "1", TS: 0, Key: "a", Want: 0.0},
		{ID: "2", TS: 60, Key: "a", Want: 1.0},
		{ID: "3", TS: 30 * 3600, Key: "b", Want: 0.0}, // the clock moves on: a's log is past keeping
		{ID: "4", TS: 1, Key: "a", Want: 0.0},         // as if gone; recorded into
		{ID: "5", TS: 61, Key: "a", Want: 1.0},        // 4 only: 1 and 2 went with the old log
	}},
	{"count absent key is nil and not recorded", features.Count, h, []Ev{
		{ID: "1", TS: 0, Key: "", Want: nil},
		{ID: "2", TS: 1, Key: "a", Want: 0.0},
	}},
	{"sum", features.Sum, h, []Ev{
		{ID: "1", TS: 0, Key: "a", Num: 10, Want: 0.0},
		{ID: "2", TS: 1, Key: "a", Num: 2.5, Want: 10.0},
		{ID: "3", TS: 2, Key: "a", Skip: true, Want: 12.5}, // no amount: read, not recorded
		{ID: "4", TS: 3600, Key: "a", Num: 1, Want: 2.5},
	}},
	{"avg is nil without history", features.Avg, h, []Ev{
		{ID: "1", TS: 0, Key: "a", Num: 10, Want: nil},
		{ID: "2", TS: 1, Key: "a", Num: 20, Want: 10.0},
		{ID: "3", TS: 2, Key: "a", Num: 0, Want: 15.0},
		{ID: "4", TS: 3601, Key: "a", Num: 0, Want: 0.0},
		{ID: "5", TS: 9000, Key: "a", Num: 0, Want: nil},
	}},
	{"max", features.Max, h, []Ev{
		{ID: "1", TS: 0, Key: "a", Num: -5, Want: nil},
		{ID: "2", TS: 1, Key: "a", Num: 7, Want: -5.0},
		{ID: "3", TS: 2, Key: "a", Num: 3, Want: 7.0},
		{ID: "4", TS: 3601, Key: "a", Num: 1, Want: 3.0},
	}},
	{"distinct", features.Distinct, h, []Ev{
		{ID: "1", TS: 0, Key: "d", Of: "acc1", Want: 0.0},
		{ID: "2", TS: 1, Key: "d", Of: "acc1", Want: 1.0},
		{ID: "3", TS: 2, Key: "d", Of: "acc2", Want: 1.0},
		{ID: "4", TS: 3, Key: "d", Of: "acc3", Want: 2.0},
		{ID: "5", TS: 3600.5, Key: "d", Of: "acc1", Want: 3.0}, // 1 is out
		{ID: "6", TS: 3603.5, Key: "d", Skip: true, Want: 1.0}, // only 5 is in
	}},
	{"seen retry after its window sees its first scoring", features.Seen, 0, []Ev{
		{ID: "r1", TS: 0, Key: "a", Want: false},
		{ID: "r2", TS: 1800, Key: "a", Want: true},
		{ID: "r3", TS: 7200, Key: "a", Want: true},
		{ID: "r1", TS: 0, Key: "a", Want: false}, // a retry: its first answer
		{ID: "r4", TS: 30 * 3600, Key: "a", Want: true},
		{ID: "r1", TS: 0, Key: "a", Want: true}, // new again: its first scoring is history
	}},
	{"seen", features.Seen, 0, []Ev{
		{ID: "1", TS: 0, Key: "a|d", Want: false},
		{ID: "2", TS: 1, Key: "a|d", Want: true},
		{ID: "3", TS: 2, Key: "a|e", Want: false},
		{ID: "1", TS: 0, Key: "a|d", Want: false}, // retry of the first sighting
		{ID: "4", TS: 400 * 86400, Key: "a|d", Want: true},
	}},
	{"age is zero the first time", features.Age, 0, []Ev{
		{ID: "1", TS: 100, Key: "a", Want: 0.0},
		{ID: "2", TS: 160.5, Key: "a", Want: 60.5},
		{ID: "3", TS: 50, Key: "a", Want: 0.0}, // late: earlier than all history
		{ID: "4", TS: 200, Key: "a", Want: 150.0},
	}},
	{"age restarts after a whole retention without the key", features.Age, 0, []Ev{
		{ID: "1", TS: 0, Key: "a", Want: 0.0},
		{ID: "2", TS: 100, Key: "a", Want: 100.0},
		{ID: "3", TS: 100 + 400*86400, Key: "a", Want: 0.0}, // idle a whole retention: a new run
		{ID: "4", TS: 160 + 400*86400, Key: "a", Want: 60.0},
	}},
	{"since_last is nil the first time", features.SinceLast, 0, []Ev{
		{ID: "1", TS: 0, Key: "c", Want: nil},
		{ID: "2", TS: 30, Key: "c", Want: 30.0},
		{ID: "3", TS: 31, Key: "c", Want: 1.0},
		{ID: "2", TS: 30, Key: "c", Want: 30.0}, // retry: its own predecessor
		{ID: "4", TS: 20, Key: "c", Want: 20.0}, // late: predecessor is 1
		{ID: "5", TS: 100, Key: "d", Want: nil},
	}},
}

const h = time.Hour

// Kinds runs the kind table on stores newStore returns, a fresh one per
// case, whose clock is the newest event time they were given.
func Kinds(t *testing.T, newStore func(t *testing.T) features.Store) {
	for _, tt := range kindTests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			f := NewFeature(tt.kind, tt.window)
			for i, e := range tt.events {
				if got := AsAny(ObserveOne(t, s, f, e), f.Kind); got != e.Want {
					t.Errorf("event %d (id %s, ts %v): got %v, want %v", i, e.ID, e.TS, got, e.Want)
				}
			}
		})
	}
}
