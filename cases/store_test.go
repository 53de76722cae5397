package cases_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riskd/riskd/cases"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/redistest"
)

// clock is a settable clock shared by a store and its test.
type clock struct{ ms atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ms.Store(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC).UnixMilli())
	return c
}

func (c *clock) Now() time.Time               { return time.UnixMilli(c.ms.Load()).UTC() }
func (c *clock) Advance(d time.Duration)      { c.ms.Add(d.Milliseconds()) }
func (c *clock) opts() cases.Options          { return cases.Options{Now: c.Now, Retention: 48 * time.Hour} }
func (c *clock) at(d time.Duration) time.Time { return c.Now().Add(d) }

// stores are the three implementations, each new and empty.
var stores = []struct {
	name string
	new  func(t testing.TB, opts cases.Options) cases.Store
}{
	{"memory", func(t testing.TB, opts cases.Options) cases.Store { return cases.NewMemory(opts) }},
	{"bolt", func(t testing.TB, opts cases.Options) cases.Store {
		s, err := cases.OpenBolt(filepath.Join(t.TempDir(), "cases.db"), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"redis", func(t testing.TB, opts cases.Options) cases.Store {
		srv := redistest.Start(t)
		s, err := cases.NewRedis(cases.RedisOptions{Options: opts, Addrs: []string{srv.Addr()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

func sample(id string, opened time.Time) *cases.Case {
	return &cases.Case{
		ID: id, EventID: "e-" + id, Type: "checkout",
		Event:    json.RawMessage(`{"id":"e-` + id + `","type":"checkout","card_id":"card-7","amount":950}`),
		Decision: "review", Score: 70, Ruleset: "checkout", Version: "2026-12-01.1",
		Reasons: []cases.Reason{
			{Rule: "velocity", Score: 40, Reason: "card used 6 times in the last hour"},
			{Rule: "blocked_bin", Score: 30, Reason: "bin on a list", Action: "review", Lists: map[string]string{"bins": "v3"}},
		},
		Features: []cases.Feature{{Name: "card_count_1h", Value: 6.0}, {Name: "device_seen", Value: false}, {Name: "email_age_s", Value: nil}},
		Models:   []cases.Model{{Name: "fraud", Score: 0.82}},
		OpenedAt: opened.UTC().Truncate(time.Millisecond),
	}
}

// TestStores is the conformance suite: every store keeps, claims,
// resolves, lists and forgets cases alike.
func TestStores(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Run("open and get", func(t *testing.T) { testOpenGet(t, st.new) })
			t.Run("claim and resolve", func(t *testing.T) { testClaimResolve(t, st.new) })
			t.Run("queue", func(t *testing.T) { testQueue(t, st.new) })
			t.Run("retention", func(t *testing.T) { testRetention(t, st.new) })
			t.Run("one claim wins", func(t *testing.T) { testClaimRace(t, st.new) })
			t.Run("related", func(t *testing.T) { testRelated(t, st.new) })
		})
	}
}

type newStore = func(t testing.TB, opts cases.Options) cases.Store

func testOpenGet(t *testing.T, newStore newStore) {
	clk := newClock()
	s := newStore(t, clk.opts())
	ctx := context.Background()
	want := sample("c_1", clk.Now())
	if ok, err := s.Open(ctx, want); !ok || err != nil {
		t.Fatalf("Open: %v, %v", ok, err)
	}
	again := sample("c_1", clk.at(time.Minute))
	again.Score = 1
	if ok, err := s.Open(ctx, again); ok || err != nil {
		t.Fatalf("second Open of one id: %v, %v; want false: a retry opens its case once", ok, err)
	}
	got, err := s.Get(ctx, "c_1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("Get:\n%s\nwant\n%s", g, w)
	}
	if _, err := s.Get(ctx, "c_nope"); !errors.Is(err, cases.ErrNotFound) {
		t.Errorf("Get of an unknown case: %v", err)
	}
	if _, err := s.Open(ctx, &cases.Case{ID: "x"}); err == nil {
		t.Error("a case without an event id or opening time was opened")
	}
}

func testClaimResolve(t *testing.T, newStore newStore) {
	clk := newClock()
	s := newStore(t, clk.opts())
	ctx := context.Background()
	s.Open(ctx, sample("c_1", clk.Now()))
	if _, err := s.Resolve(ctx, "c_1", "ann", cases.Fraud, ""); !errors.Is(err, cases.ErrNotClaimed) {
		t.Fatalf("resolve unclaimed: %v", err)
	}
	cl, err := s.Claim(ctx, "c_1", "ann", 10*time.Minute)
	if err != nil || cl.Analyst != "ann" || !cl.Until.Equal(clk.at(10*time.Minute)) {
		t.Fatalf("ann claims: %+v, %v", cl, err)
	}
	var ce *cases.ClaimedError
	if _, err := s.Claim(ctx, "c_1", "bob", 10*time.Minute); !errors.As(err, &ce) || ce.Claim.Analyst != "ann" || !errors.Is(err, cases.ErrClaimed) {
		t.Fatalf("bob claims ann's case: %v", err)
	}
	if _, err := s.Resolve(ctx, "c_1", "bob", cases.Fraud, ""); !errors.Is(err, cases.ErrClaimed) {
		t.Fatalf("bob resolves ann's case: %v", err)
	}
	clk.Advance(5 * time.Minute)
	if cl, err := s.Claim(ctx, "c_1", "ann", 10*time.Minute); err != nil || !cl.Until.Equal(clk.at(10*time.Minute)) {
		t.Fatalf("ann extends her claim: %+v, %v", cl, err)
	}
	if c, _ := s.Get(ctx, "c_1"); c.Claim == nil || c.Claim.Analyst != "ann" {
		t.Fatalf("Get shows claim %+v", c.Claim)
	}
	clk.Advance(10 * time.Minute) // ann's claim expires
	if c, _ := s.Get(ctx, "c_1"); c.Claim != nil {
		t.Fatalf("an expired claim shows: %+v", c.Claim)
	}
	if _, err := s.Resolve(ctx, "c_1", "ann", cases.Fraud, ""); !errors.Is(err, cases.ErrNotClaimed) {
		t.Fatalf("ann resolves after her claim expired: %v", err)
	}
	if _, err := s.Claim(ctx, "c_1", "bob", time.Minute); err != nil {
		t.Fatalf("bob claims an expired claim: %v", err)
	}
	if err := s.Release(ctx, "c_1", "ann"); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Get(ctx, "c_1"); c.Claim == nil || c.Claim.Analyst != "bob" {
		t.Fatalf("ann released bob's claim: %+v", c.Claim)
	}
	if err := s.Release(ctx, "c_1", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "c_1", "ann", time.Minute); err != nil {
		t.Fatalf("ann claims after bob released: %v", err)
	}
	for _, bad := range []struct {
		o    cases.Outcome
		note string
	}{{"maybe", ""}, {cases.Fraud, strings.Repeat("x", cases.MaxNoteBytes+1)}, {cases.Fraud, "\xff"}} {
		if _, err := s.Resolve(ctx, "c_1", "ann", bad.o, bad.note); err == nil {
			t.Errorf("resolve %q with a %d-byte note: no error", bad.o, len(bad.note))
		}
	}
	c, err := s.Resolve(ctx, "c_1", "ann", cases.Fraud, "card testing; customer confirmed")
	want := cases.Resolution{Outcome: cases.Fraud, Note: "card testing; customer confirmed", Analyst: "ann", At: clk.Now()}
	if err != nil || c.Resolution == nil || *c.Resolution != want || c.Claim != nil || c.EventID != "e-c_1" {
		t.Fatalf("resolve: %+v, %v", c, err)
	}
	if _, err := s.Resolve(ctx, "c_1", "ann", cases.NotFraud, ""); !errors.Is(err, cases.ErrResolved) {
		t.Errorf("second resolution: %v", err)
	}
	if _, err := s.Claim(ctx, "c_1", "bob", time.Minute); !errors.Is(err, cases.ErrResolved) {
		t.Errorf("claim of a resolved case: %v", err)
	}
	if ok, _ := s.Open(ctx, sample("c_1", clk.Now())); ok {
		t.Error("a retried event reopened its resolved case")
	}
	if got, _ := s.Get(ctx, "c_1"); got.Resolution == nil || *got.Resolution != want {
		t.Errorf("Get after resolution: %+v", got.Resolution)
	}
	for _, op := range []func() error{
		func() error { _, err := s.Claim(ctx, "c_none", "ann", time.Minute); return err },
		func() error { _, err := s.Resolve(ctx, "c_none", "ann", cases.Fraud, ""); return err },
	} {
		if err := op(); !errors.Is(err, cases.ErrNotFound) {
			t.Errorf("unknown case: %v", err)
		}
	}
}

// queueCases opens n cases over rulesets, rules, decisions and scores,
// one a second, and returns them in opening order.
func queueCases(t testing.TB, s cases.Store, clk *clock, n int) []*cases.Case {
	ctx := context.Background()
	var all []*cases.Case
	for i := 0; i < n; i++ {
		c := sample(fmt.Sprintf("c_%06d", i), clk.Now())
		c.Ruleset = []string{"checkout", "payout"}[i%2]
		c.Score = int64(i*37) % 100
		c.Decision = []string{"review", "review", "block"}[i%3]
		c.Reasons = []cases.Reason{{Rule: fmt.Sprintf("rule_%d", i%5), Score: c.Score}}
		if i%7 == 0 {
			c.Reasons = append(c.Reasons, cases.Reason{Rule: "velocity", Score: 0})
		}
		if ok, err := s.Open(ctx, c); !ok || err != nil {
			t.Fatalf("Open %s: %v %v", c.ID, ok, err)
		}
		all = append(all, c)
		clk.Advance(time.Second)
	}
	return all
}

func testQueue(t *testing.T, newStore newStore) {
	clk := newClock()
	s := newStore(t, clk.opts())
	ctx := context.Background()
	all := queueCases(t, s, clk, 60)
	s.Claim(ctx, all[3].ID, "ann", time.Hour)
	s.Claim(ctx, all[4].ID, "ann", time.Hour)
	s.Resolve(ctx, all[4].ID, "ann", cases.Approve, "")
	open := slices.DeleteFunc(slices.Clone(all), func(c *cases.Case) bool { return c.ID == all[4].ID })
	for _, q := range []cases.Query{
		{},
		{Order: cases.ByScore},
		{Ruleset: "payout", Limit: 7},
		{Rule: "velocity", Order: cases.ByScore},
		{Decision: "block", Ruleset: "checkout"},
		{Rule: "rule_3", Ruleset: "payout", Decision: "review", Order: cases.ByScore, Offset: 1, Limit: 2},
		{Limit: 10, Offset: 50},
		{Offset: 100},
		{Ruleset: "nothing"},
	} {
		t.Run(fmt.Sprintf("%+v", q), func(t *testing.T) {
			page, err := s.Queue(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			want := reference(open, q)
			var got []string
			for _, c := range page.Cases {
				got = append(got, c.ID)
			}
			if strings.Join(got, " ") != strings.Join(want.ids, " ") || page.More != want.more {
				t.Errorf("page %v more %v\nwant %v more %v", got, page.More, want.ids, want.more)
			}
			for _, c := range page.Cases {
				if (c.ID == all[3].ID) != (c.Claim != nil && c.Claim.Analyst == "ann") {
					t.Errorf("%s shows claim %+v", c.ID, c.Claim)
				}
			}
		})
	}
	page, _ := s.Queue(ctx, cases.Query{Limit: 1})
	first := open[0]
	want := cases.Summary{ID: first.ID, EventID: first.EventID, Type: "checkout", Decision: first.Decision, Score: first.Score, Ruleset: first.Ruleset,
		Rules: []string{"rule_0", "velocity"}, OpenedAt: first.OpenedAt}
	if len(page.Cases) != 1 || !reflect.DeepEqual(page.Cases[0], want) {
		t.Errorf("summary %+v, want %+v", page.Cases, want)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Open != 59 || !st.OldestOpen.Equal(all[0].OpenedAt) {
		t.Errorf("stats %+v, %v", st, err)
	}
}

type refPage struct {
	ids  []string
	more bool
}

// reference is the queue's definition, computed the slow way.
func reference(open []*cases.Case, q cases.Query) refPage {
	var m []*cases.Case
	for _, c := range open {
		fired := false
		for _, r := range c.Reasons {
			fired = fired || r.Rule == q.Rule
		}
		if (q.Ruleset == "" || c.Ruleset == q.Ruleset) && (q.Decision == "" || c.Decision == q.Decision) && (q.Rule == "" || fired) {
			m = append(m, c)
		}
	}
	if q.Order == cases.ByScore {
		slices.SortStableFunc(m, func(a, b *cases.Case) int { return int(b.Score - a.Score) })
	}
	limit := q.Limit
	if limit == 0 {
		limit = 50
	}
	var p refPage
	for i := q.Offset; i < len(m) && i < q.Offset+limit; i++ {
		p.ids = append(p.ids, m[i].ID)
	}
	p.more = len(m) > q.Offset+limit
	return p
}

func testRetention(t *testing.T, newStore newStore) {
	clk := newClock()
	s := newStore(t, clk.opts()) // 48h
	ctx := context.Background()
	s.Open(ctx, sample("c_old", clk.Now()))
	clk.Advance(24 * time.Hour)
	s.Open(ctx, sample("c_new", clk.Now()))
	s.Claim(ctx, "c_new", "ann", time.Minute)
	s.Resolve(ctx, "c_new", "ann", cases.NotFraud, "")
	clk.Advance(24 * time.Hour) // c_old is 48h old: gone; c_new resolved 24h ago: kept
	if _, err := s.Get(ctx, "c_old"); !errors.Is(err, cases.ErrNotFound) {
		t.Errorf("an open case past its retention: %v", err)
	}
	if c, err := s.Get(ctx, "c_new"); err != nil || c.Resolution == nil {
		t.Errorf("a resolved case within its retention: %v", err)
	}
	if p, _ := s.Queue(ctx, cases.Query{}); len(p.Cases) != 0 {
		t.Errorf("the queue lists %+v", p.Cases)
	}
	if st, _ := s.Stats(ctx); st.Open != 0 {
		t.Errorf("stats %+v", st)
	}
	clk.Advance(24 * time.Hour)
	if _, err := s.Get(ctx, "c_new"); !errors.Is(err, cases.ErrNotFound) {
		t.Errorf("a resolved case past its retention: %v", err)
	}
	if ok, err := s.Open(ctx, sample("c_old", clk.Now())); !ok || err != nil {
		t.Errorf("an id past its retention opens again: %v %v", ok, err)
	}
	if p, _ := s.Queue(ctx, cases.Query{}); len(p.Cases) != 1 || p.Cases[0].ID != "c_old" {
		t.Errorf("the queue lists %+v", p.Cases)
	}
}

// testClaimRace: analysts claiming one case at once, one wins.
func testClaimRace(t *testing.T, newStore newStore) {
	clk := newClock()
	s := newStore(t, clk.opts())
	ctx := context.Background()
	s.Open(ctx, sample("c_1", clk.Now()))
	var wg sync.WaitGroup
	var won atomic.Int32
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Claim(ctx, "c_1", fmt.Sprintf("analyst%d", i), time.Minute)
			switch {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, cases.ErrClaimed):
				t.Errorf("claim: %v", err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Errorf("%d analysts won the claim, want 1", won.Load())
	}
}

// testRelated: a case's entity keys find the other cases of the same
// card, newest first, resolved ones with their resolution, at most
// MaxRelated per key, none past retention.
func testRelated(t *testing.T, newStore newStore) {
	clk := newClock()
	s := newStore(t, clk.opts())
	ctx := context.Background()
	for i := range 25 {
		c := sample(fmt.Sprintf("c_%02d", i), clk.Now())
		c.Keys = []string{"card_id=card-7", fmt.Sprintf("account_id=a%d", i%2)}
		if _, err := s.Open(ctx, c); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
	}
	other := sample("c_other", clk.Now())
	other.Keys = []string{"card_id=card-9"}
	s.Open(ctx, other)
	s.Claim(ctx, "c_23", "ann", time.Minute)
	s.Resolve(ctx, "c_23", "ann", cases.Fraud, "")
	got, err := s.Related(ctx, []string{"card_id=card-7"}, "c_24", 50)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range got {
		ids = append(ids, c.ID)
	}
	want := []string{}
	for i := 23; i >= 25-cases.MaxRelated; i-- {
		want = append(want, fmt.Sprintf("c_%02d", i))
	}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("related to card-7: %v\nwant %v", ids, want)
	}
	if len(got) > 0 && (got[0].Resolution == nil || got[0].Resolution.Outcome != cases.Fraud || got[1].Resolution != nil) {
		t.Errorf("resolutions: %+v, %+v", got[0].Resolution, got[1].Resolution)
	}
	// Two keys: their cases together, each once, within the limit.
	if got, _ := s.Related(ctx, []string{"account_id=a0", "card_id=card-9"}, "c_24", 3); len(got) != 3 || got[0].ID != "c_other" || got[1].ID != "c_22" || got[2].ID != "c_20" {
		t.Errorf("related to a0 and card-9: %+v", got)
	}
	if got, _ := s.Related(ctx, []string{"card_id=card-9"}, "c_other", 20); len(got) != 0 {
		t.Errorf("related to a card of one case: %+v", got)
	}
	clk.Advance(72 * time.Hour)
	if got, _ := s.Related(ctx, []string{"card_id=card-7"}, "", 20); len(got) != 0 {
		t.Errorf("related past retention: %+v", got)
	}
}

func TestEntityKeys(t *testing.T) {
	fs := []*features.Feature{
		{Key: []features.Path{features.NewPath("card_id")}},
		{Key: []features.Path{features.NewPath("card_id")}},
		{Key: []features.Path{features.NewPath("account_id"), features.NewPath("device.id")}},
		{Key: []features.Path{features.NewPath("email")}},
		{Key: []features.Path{features.NewPath("terminal")}},
	}
	got := cases.EntityKeys(fs, []byte(`{"card_id":"card-7","account_id":"a1","device":{"id":"d9"},"terminal":12}`))
	if want := []string{"card_id=card-7", "account_id+device.id=a1|d9", "terminal=12"}; !reflect.DeepEqual(got, want) {
		t.Errorf("EntityKeys: %q, want %q", got, want)
	}
	if got := cases.EntityKeys(fs, []byte(`not json`)); got != nil {
		t.Errorf("EntityKeys of a body that is not JSON: %q", got)
	}
}
