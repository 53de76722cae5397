package features

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

// ev is one event of a test sequence for a single feature. ts is in
// seconds from t0; key "" means the event lacks the key field.
type ev struct {
	id   string
	ts   float64
	key  string
	num  float64
	of   string
	skip bool // the value field is absent: read but not recorded
	want any  // nil, float64 or bool
}

const t0 = int64(1_780_000_000_000)

// feature returns a feature keyed by k, linked into a set of its own.
func feature(kind Kind, window time.Duration) *Feature {
	f := &Feature{Name: "f", Kind: kind, Key: []Path{NewPath("k")}, Window: window, Retention: DefaultRetention, Entity: "k",
		Field: NewPath("amount"), Of: NewPath("of")}
	if !kind.Windowed() {
		f.Window = 0
	}
	testSet(f)
	return f
}

// observeOne scores one event for feature f the way the engine does.
func observeOne(t testing.TB, s Store, f *Feature, e ev) Value {
	t.Helper()
	te := tevent{id: e.id, typ: "a", ts: t0 + int64(math.Round(e.ts*1000)), fields: map[string]string{}}
	if e.key == "" {
		return Value{} // absent key: the engine asks the store nothing
	}
	te.fields["k"] = e.key
	if !e.skip {
		te.fields["of"] = e.of
		n := int64(math.Round(e.num * 1e6))
		te.amount = &n
	}
	obs := observation([]*Feature{f}, te)
	if err := s.Observe(context.Background(), obs); err != nil {
		t.Fatalf("observe %s: %v", e.id, err)
	}
	return obs.Items[0].Value
}

func newTestMemory() *Memory {
	return NewMemory(MemoryOptions{EventTime: true})
}

func asAny(v Value, k Kind) any {
	switch {
	case !v.Valid:
		return nil
	case k.Bool():
		return v.Bool
	}
	return v.Num
}

// kindTests are window edges, ties, late events, retries and absent keys
// for every kind; every store runs them.
var kindTests = []struct {
	name   string
	kind   Kind
	window time.Duration
	events []ev
}{
	{"count counts history strictly before", Count, h, []ev{
		{id: "1", ts: 0, key: "a", want: 0.0},
		{id: "2", ts: 1, key: "a", want: 1.0},
		{id: "3", ts: 2, key: "b", want: 0.0},
		{id: "4", ts: 3, key: "a", want: 2.0},
	}},
	{"count window is left-open: exactly one window ago is out", Count, h, []ev{
		{id: "1", ts: 0, key: "a", want: 0.0},
		{id: "2", ts: 3599.999, key: "a", want: 1.0},
		{id: "3", ts: 3600, key: "a", want: 1.0},     // event 1 is exactly 1h old: out
		{id: "4", ts: 7199.999, key: "a", want: 1.0}, // 2 is exactly 1h old: out
		{id: "5", ts: 7200, key: "a", want: 1.0},     // 3 is exactly 1h old: out
	}},
	{"count same millisecond: earlier arrival counts", Count, h, []ev{
		{id: "1", ts: 10, key: "a", want: 0.0},
		{id: "2", ts: 10, key: "a", want: 1.0},
		{id: "3", ts: 10, key: "a", want: 2.0},
	}},
	{"count late event sees only older history", Count, h, []ev{
		{id: "1", ts: 100, key: "a", want: 0.0},
		{id: "2", ts: 200, key: "a", want: 1.0},
		{id: "3", ts: 150, key: "a", want: 1.0},
		{id: "4", ts: 300, key: "a", want: 3.0},
	}},
	{"count retry is not recorded twice and gets the same value", Count, h, []ev{
		{id: "1", ts: 0, key: "a", want: 0.0},
		{id: "2", ts: 1, key: "a", want: 1.0},
		{id: "2", ts: 1, key: "a", want: 1.0},
		{id: "3", ts: 2, key: "a", want: 2.0},
		{id: "2", ts: 1, key: "a", want: 1.0}, // after a later event too
		{id: "1", ts: 0, key: "a", want: 0.0},
	}},
	// The retries: r2 is retried after r3 moved the key on, and
	// r1 after its idempotency window, when it is a new event.
	{"count retry after later events gets its first answer", Count, h, []ev{
		{id: "r1", ts: 0, key: "a", want: 0.0},
		{id: "r2", ts: 1800, key: "a", want: 1.0},
		{id: "r3", ts: 7200, key: "a", want: 0.0},
		{id: "r2", ts: 1800, key: "a", want: 1.0},
	}},
	{"count id scored again after its window is a new event", Count, 48 * h, []ev{
		{id: "r1", ts: 0, key: "a", want: 0.0},
		{id: "r2", ts: 1800, key: "a", want: 1.0},
		{id: "r1", ts: 0, key: "a", want: 0.0},           // a retry
		{id: "r4", ts: 30 * 3600, key: "a", want: 2.0},   // 30 h later
		{id: "r1", ts: 0, key: "a", want: 1.0},           // past the window: new, after r1's first scoring
		{id: "r5", ts: 30*3600 + 1, key: "a", want: 4.0}, // r1 counts twice now
	}},
	{"count absent key is nil and not recorded", Count, h, []ev{
		{id: "1", ts: 0, key: "", want: nil},
		{id: "2", ts: 1, key: "a", want: 0.0},
	}},
	{"sum", Sum, h, []ev{
		{id: "1", ts: 0, key: "a", num: 10, want: 0.0},
		{id: "2", ts: 1, key: "a", num: 2.5, want: 10.0},
		{id: "3", ts: 2, key: "a", skip: true, want: 12.5}, // no amount: read, not recorded
		{id: "4", ts: 3600, key: "a", num: 1, want: 2.5},
	}},
	{"avg is nil without history", Avg, h, []ev{
		{id: "1", ts: 0, key: "a", num: 10, want: nil},
		{id: "2", ts: 1, key: "a", num: 20, want: 10.0},
		{id: "3", ts: 2, key: "a", num: 0, want: 15.0},
		{id: "4", ts: 3601, key: "a", num: 0, want: 0.0},
		{id: "5", ts: 9000, key: "a", num: 0, want: nil},
	}},
	{"max", Max, h, []ev{
		{id: "1", ts: 0, key: "a", num: -5, want: nil},
		{id: "2", ts: 1, key: "a", num: 7, want: -5.0},
		{id: "3", ts: 2, key: "a", num: 3, want: 7.0},
		{id: "4", ts: 3601, key: "a", num: 1, want: 3.0},
	}},
	{"distinct", Distinct, h, []ev{
		{id: "1", ts: 0, key: "d", of: "acc1", want: 0.0},
		{id: "2", ts: 1, key: "d", of: "acc1", want: 1.0},
		{id: "3", ts: 2, key: "d", of: "acc2", want: 1.0},
		{id: "4", ts: 3, key: "d", of: "acc3", want: 2.0},
		{id: "5", ts: 3600.5, key: "d", of: "acc1", want: 3.0}, // 1 is out
		{id: "6", ts: 3603.5, key: "d", skip: true, want: 1.0}, // only 5 is in
	}},
	{"seen retry after its window sees its first scoring", Seen, 0, []ev{
		{id: "r1", ts: 0, key: "a", want: false},
		{id: "r2", ts: 1800, key: "a", want: true},
		{id: "r3", ts: 7200, key: "a", want: true},
		{id: "r1", ts: 0, key: "a", want: false}, // a retry: its first answer
		{id: "r4", ts: 30 * 3600, key: "a", want: true},
		{id: "r1", ts: 0, key: "a", want: true}, // new again: its first scoring is history
	}},
	{"seen", Seen, 0, []ev{
		{id: "1", ts: 0, key: "a|d", want: false},
		{id: "2", ts: 1, key: "a|d", want: true},
		{id: "3", ts: 2, key: "a|e", want: false},
		{id: "1", ts: 0, key: "a|d", want: false}, // retry of the first sighting
		{id: "4", ts: 400 * 86400, key: "a|d", want: true},
	}},
	{"age is zero the first time", Age, 0, []ev{
		{id: "1", ts: 100, key: "a", want: 0.0},
		{id: "2", ts: 160.5, key: "a", want: 60.5},
		{id: "3", ts: 50, key: "a", want: 0.0}, // late: earlier than all history
		{id: "4", ts: 200, key: "a", want: 150.0},
	}},
	{"age restarts after a whole retention without the key", Age, 0, []ev{
		{id: "1", ts: 0, key: "a", want: 0.0},
		{id: "2", ts: 100, key: "a", want: 100.0},
		{id: "3", ts: 100 + 400*86400, key: "a", want: 0.0}, // idle a whole retention: a new run
		{id: "4", ts: 160 + 400*86400, key: "a", want: 60.0},
	}},
	{"since_last is nil the first time", SinceLast, 0, []ev{
		{id: "1", ts: 0, key: "c", want: nil},
		{id: "2", ts: 30, key: "c", want: 30.0},
		{id: "3", ts: 31, key: "c", want: 1.0},
		{id: "2", ts: 30, key: "c", want: 30.0}, // retry: its own predecessor
		{id: "4", ts: 20, key: "c", want: 20.0}, // late: predecessor is 1
		{id: "5", ts: 100, key: "d", want: nil},
	}},
}

const h = time.Hour

func TestMemoryKinds(t *testing.T) {
	for _, tt := range kindTests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMemory()
			f := feature(tt.kind, tt.window)
			for i, e := range tt.events {
				got := asAny(observeOne(t, m, f, e), f.Kind)
				if got != e.want {
					t.Errorf("event %d (id %s, ts %v): got %v, want %v", i, e.id, e.ts, got, e.want)
				}
			}
		})
	}
}

func TestMemoryEvictsHistoryOlderThanTheHorizon(t *testing.T) {
	m := newTestMemory()
	f := feature(Count, time.Minute)
	// 20,000 events one second apart over 2,000 keys: each key sees an
	// event every 2,000 s, far more than the minute it keeps.
	for i := 0; i < 20000; i++ {
		observeOne(t, m, f, ev{id: fmt.Sprint(i), ts: float64(i), key: fmt.Sprint("k", i%2000)})
	}
	st := m.Stats()
	if st.Entries > 2000 {
		t.Errorf("store holds %d entries, want at most one per key (2000)", st.Entries)
	}
	// Ids are kept for a day of event time; 20,000 s is less than a day.
	if st.IDs != 20000 {
		t.Errorf("store remembers %d ids, want 20000", st.IDs)
	}
	// A day and more later, idle keys and old ids go.
	for i := 0; i < 20000; i++ {
		observeOne(t, m, f, ev{id: fmt.Sprint("late", i), ts: 200000 + float64(i), key: "hot"})
	}
	st = m.Stats()
	if st.Series > 100 {
		t.Errorf("store keeps %d series after every key went idle, want the idle ones evicted", st.Series)
	}
	if st.IDs >= 20000+20000 {
		t.Errorf("store remembers %d ids, want old ones forgotten", st.IDs)
	}
}

func TestMemoryConcurrentScoringCountsEachEventOnce(t *testing.T) {
	m := newTestMemory()
	f := feature(Count, time.Hour)
	const workers, perWorker = 8, 500
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				// Every worker sends the same ids: each is a retry of the others.
				observeOne(t, m, f, ev{id: fmt.Sprint(i), ts: float64(i) / 1000, key: "shared"})
			}
		}()
	}
	wg.Wait()
	got := observeOne(t, m, f, ev{id: "final", ts: 10, key: "shared"})
	if got.Num != perWorker {
		t.Fatalf("count after %d workers sent the same %d events: %v, want %d", workers, perWorker, got.Num, perWorker)
	}
}

// TestMemoryStaysBoundedWithNewKeys: three keys never seen again per
// event (the 90 s windows over unique keys) leave no more keys
// alive than the horizon, lateness and margin hold, and with a cap no
// more than the cap, the least recently seen going first.
func TestMemoryStaysBoundedWithNewKeys(t *testing.T) {
	fs := []*Feature{
		{Name: "a", Kind: Count, Key: []Path{NewPath("a")}, Entity: "a", Window: 90 * time.Second},
		{Name: "b", Kind: Count, Key: []Path{NewPath("b")}, Entity: "b", Window: 90 * time.Second},
		{Name: "c", Kind: Count, Key: []Path{NewPath("c")}, Entity: "c", Window: 90 * time.Second},
	}
	testSet(fs...)
	for _, tt := range []struct {
		name     string
		cap      int
		wantMost int
	}{
		// Kept: 90 s + 10 min lateness + a day's margin, three keys a
		// second, and at most a third more expired but not yet examined.
		{"expiry", 0, 4 * (90 + 600 + 86400 + 60)},
		{"cap", 5000, 5000 + numShards*examinePerNew},
	} {
		t.Run(tt.name, func(t *testing.T) {
			evictions := 0
			m := NewMemory(MemoryOptions{EventTime: true, MaxEntities: tt.cap, OnEvict: func(n int) { evictions += n }})
			for i := range 150_000 { // an event a second: 41 hours
				obs := observation(fs, tevent{id: fmt.Sprint(i), typ: "a", ts: t0 + int64(i)*1000,
					fields: map[string]string{"a": fmt.Sprint("a", i), "b": fmt.Sprint("b", i), "c": fmt.Sprint("c", i)}})
				if err := m.Observe(context.Background(), obs); err != nil {
					t.Fatal(err)
				}
			}
			st := m.Stats()
			if st.Entities > tt.wantMost || int64(st.Entities) != m.count.Load() {
				t.Errorf("%d keys alive (counted %d), want at most %d", st.Entities, m.count.Load(), tt.wantMost)
			}
			if tt.cap > 0 && (evictions == 0 || int64(evictions) != m.Evicted()) {
				t.Errorf("cap evicted %d (told %d)", m.Evicted(), evictions)
			}
		})
	}
}
