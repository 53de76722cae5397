package replay

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

// TestKnownFraudCases pins the edges: the delay, the batch boundary, the
// first fraud that counts, and events that name no entity.
func TestKnownFraudCases(t *testing.T) {
	const d0 = 1533081600000 // 2018-08-01T00:00:00Z, a UTC midnight
	const dayMS = int64(24 * 3600 * 1000)
	type ev struct {
		ts    int64
		body  string // fields besides id, type and ts
		label int8
		known bool // want: fraud known before it
	}
	for _, tc := range []struct {
		name   string
		k      KnownFraud
		events []ev
	}{
		{"daily batch: a fraud is known from the midnight after its label arrives", KnownFraud{Delay: 7 * day, Batch: day}, []ev{
			{d0 + 10*3600_000, `"c":"a"`, 1, false},
			{d0 + 7*dayMS + 11*3600_000, `"c":"a"`, 0, false}, // label arrived an hour ago, not taken in yet
			{d0 + 8*dayMS - 1, `"c":"a"`, 0, false},
			{d0 + 8*dayMS, `"c":"a"`, 0, true},
			{d0 + 9*dayMS, `"c":"b"`, 0, false}, // another customer
		}},
		{"a label arriving on a midnight is taken in at the next one", KnownFraud{Delay: 7 * day, Batch: day}, []ev{
			{d0, `"c":"a"`, 1, false},
			{d0 + 7*dayMS, `"c":"a"`, 0, false},
			{d0 + 8*dayMS - 1, `"c":"a"`, 0, false},
			{d0 + 8*dayMS, `"c":"a"`, 0, true},
		}},
		{"no batch: known the moment after the label arrives", KnownFraud{Delay: 3 * time.Hour}, []ev{
			{d0, `"c":"a"`, 1, false},
			{d0 + 3*3600_000, `"c":"a"`, 0, false},
			{d0 + 3*3600_000 + 1, `"c":"a"`, 0, true},
			{d0 + 3*3600_000 + 1, `"c":"a"`, 1, true}, // a later fraud of a known customer is left out too
		}},
		{"frauds before From are never known", KnownFraud{Delay: time.Hour, From: d0 + dayMS}, []ev{
			{d0, `"c":"a"`, 1, false},
			{d0 + 2*dayMS, `"c":"a"`, 0, false},
			{d0 + 2*dayMS, `"c":"a"`, 1, false},
			{d0 + 3*dayMS, `"c":"a"`, 0, true},
		}},
		{"no entity, null, an empty string or an object: nothing known, nothing learnt", KnownFraud{Delay: time.Hour}, []ev{
			{d0, ``, 1, false},
			{d0, `"c":null`, 1, false},
			{d0, `"c":""`, 1, false},
			{d0, `"c":{"x":1}`, 1, false},
			{d0 + dayMS, ``, 0, false},
			{d0 + dayMS, `"c":""`, 0, false},
		}},
		{"a number names an entity apart from the same digits in a string", KnownFraud{Delay: time.Hour}, []ev{
			{d0, `"c":7`, 1, false},
			{d0 + dayMS, `"c":"7"`, 0, false},
			{d0 + dayMS, `"c":7`, 0, true},
			{d0 + dayMS, `"c":true`, 1, false},
			{d0 + 2*dayMS, `"c":true`, 0, true},
		}},
		{"unlabelled events teach nothing", KnownFraud{Delay: time.Hour}, []ev{
			{d0, `"c":"a"`, -1, false},
			{d0 + dayMS, `"c":"a"`, 0, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.k.Field = "c"
			k := newKnownFraud(tc.k)
			for i, e := range tc.events {
				body := fmt.Sprintf(`{"id":"e%d","type":"checkout","ts":%d`, i, e.ts)
				if e.body != "" {
					body += "," + e.body
				}
				body += "}"
				if got := k.see(&Event{TS: e.ts, Label: e.label, Body: []byte(body)}); got != e.known {
					t.Errorf("event %d %s: known %v, want %v", i, body, got, e.known)
				}
			}
		})
	}
}

// TestKnownFraudMatchesTheProtocol replays generated card history and
// checks the counted events against the handbook's definition computed
// the slow way: an event is left out when its customer had a fraud, at or
// after From, on a day at least delay+1 days before the event's day (with
// daily batches), or whose label arrived strictly before the event
// (without).
func TestKnownFraudMatchesTheProtocol(t *testing.T) {
	p := policy(t, `name: checkout
event_types: [checkout]
thresholds: {step_up: 50, block: 90}
rules:
  - {id: velocity, when: features.card_count_1h >= 2, score: 95}
`)
	const start = 1530403200000 // 2018-07-01T00:00:00Z
	const dayMS = int64(24 * 3600 * 1000)
	rng := rand.New(rand.NewPCG(19, 8))
	type gen struct {
		ts    int64
		cust  int
		fraud bool
	}
	var gens []gen
	var in strings.Builder
	for i := 0; i < 4000; i++ {
		g := gen{ts: start + rng.Int64N(40*dayMS), cust: rng.IntN(60), fraud: rng.IntN(25) == 0}
		if rng.IntN(10) == 0 {
			g.ts -= g.ts % dayMS // on a midnight: the batch edge
		}
		gens = append(gens, g)
		fraud := 0
		if g.fraud {
			fraud = 1
		}
		fmt.Fprintf(&in, `{"id":"tx-%d","type":"checkout","ts":%d,"customer_id":"c-%d","card_id":"k-%d","fraud":%d}`+"\n", i, g.ts, g.cust, g.cust, fraud)
	}
	events, bad, err := Read(strings.NewReader(in.String()), "fraud")
	if err != nil || len(bad) > 0 {
		t.Fatal(err, bad)
	}
	frauds := map[int][]int64{} // by customer, their times
	for _, g := range gens {
		if g.fraud {
			frauds[g.cust] = append(frauds[g.cust], g.ts)
		}
	}
	from, to := start+25*dayMS, start+32*dayMS
	for _, k := range []KnownFraud{
		{Field: "customer_id", Delay: 7 * day, Batch: day, From: start + 18*dayMS},
		{Field: "customer_id", Delay: 7 * day, Batch: day},
		{Field: "customer_id", Delay: 2 * day},
		{Field: "customer_id", Delay: 0, From: start + 20*dayMS},
	} {
		t.Run(fmt.Sprintf("delay %v batch %v from %d", k.Delay, k.Batch, k.From), func(t *testing.T) {
			var wantN, wantFraud, wantLeft int
			for _, e := range gens {
				if e.ts < from || e.ts >= to {
					continue
				}
				known := false
				for _, f := range frauds[e.cust] {
					if f < k.From {
						continue
					}
					arrived := f + k.Delay.Milliseconds()
					if k.Batch > 0 && arrived/dayMS < e.ts/dayMS || k.Batch == 0 && arrived < e.ts {
						known = true
					}
				}
				if known {
					wantLeft++
					continue
				}
				wantN++
				if e.fraud {
					wantFraud++
				}
			}
			if wantLeft == 0 || wantFraud == 0 {
				t.Fatalf("generated history tests nothing: %d left out, %d frauds", wantLeft, wantFraud)
			}
			res, err := Run(context.Background(), p, nil, events, Options{From: from, To: to, KnownFraud: k})
			if err != nil {
				t.Fatal(err)
			}
			l := res.Live.Labels
			if l.Fraud+l.Genuine != wantN || l.Fraud != wantFraud || res.KnownFraud.LeftOut != wantLeft {
				t.Errorf("counted %d events, %d frauds, %d left out; want %d, %d, %d", l.Fraud+l.Genuine, l.Fraud, res.KnownFraud.LeftOut, wantN, wantFraud, wantLeft)
			}
		})
	}
}
