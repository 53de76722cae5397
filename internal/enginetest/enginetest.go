// Package enginetest holds what the tests and benchmarks of the engine
// and of its transports share: the policies they score with, scoring one
// event, and a stream of fresh events.
package enginetest

import (
	"bytes"
	"context"
	"testing"
	"testing/fstest"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
	"github.com/riskd/riskd/rules/example/exampletest"
)

// Example is the built-in example policy.
func Example(t testing.TB) *rules.Policy {
	t.Helper()
	p, err := rules.Load(example.FS, "rules/example")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ExampleWithChallengers is the example policy plus n shadow challengers
// of checkout, each a copy of its rules.
func ExampleWithChallengers(t testing.TB, n int) *rules.Policy {
	t.Helper()
	p, err := rules.Load(exampletest.WithChallengers(n), "example")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Challengers is a champion that steps up a card's third checkout of
// the hour, a shadow challenger that blocks it and also reads a feature
// the champion does not, and a split challenger live for share of the
// accounts.
func Challengers(t testing.TB, share string) *rules.Policy {
	t.Helper()
	fsys := fstest.MapFS{
		"features.yaml": {Data: []byte(`features:
  - {name: card_count_1h, kind: count, key: card_id, window: 1h}
  - {name: card_sum_1h, kind: sum, key: card_id, field: amount, window: 1h}
`)},
		"checkout.yaml": {Data: []byte(`name: checkout
version: "1"
event_types: [checkout]
thresholds: {step_up: 50, block: 90}
rules:
  - id: velocity
    when: features.card_count_1h >= 2
    score: 60
    reason: "card used {{features.card_count_1h}} times"
`)},
		"strict.yaml": {Data: []byte(`name: strict
version: "s1"
shadow_of: checkout
thresholds: {step_up: 50, block: 90}
rules:
  - id: velocity
    when: features.card_count_1h >= 2
    score: 95
  - id: spend
    when: features.card_sum_1h > 100
    score: 10
    reason: "spent {{features.card_sum_1h}}"
`)},
		"split.yaml": {Data: []byte(`name: split
version: "x1"
shadow_of: checkout
traffic: ` + share + `
split_key: account_id
thresholds: {step_up: 50, block: 90}
rules:
  - id: always
    when: "true"
    score: 1
`)},
	}
	p, err := rules.Load(fsys, "p")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Score scores body, explained, and fails t if e refuses it.
func Score(t testing.TB, e *engine.Engine, body string) engine.Decision {
	t.Helper()
	return ScoreWith(t, e, body, engine.ScoreOptions{Explain: true})
}

// ScoreWith scores body with opts, and fails t if e refuses it.
func ScoreWith(t testing.TB, e *engine.Engine, body string, opts engine.ScoreOptions) engine.Decision {
	t.Helper()
	var d engine.Decision
	if err := e.Score(context.Background(), []byte(body), opts, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// Feature is the value of d's feature name (explained); zero when absent.
func Feature(d engine.Decision, name string) features.Value {
	for _, f := range d.Features {
		if f.Name == name {
			return f.Value
		}
	}
	return features.Value{}
}

// Events rewrites one checkout body in place so every call of Next gives
// a new event (new id, later ts, rotating entities) without allocating:
// what benchmarks score.
type Events struct {
	body                   []byte
	id, ts, acc, card, dev int // offsets of fixed-width digit fields
	n                      int
}

// NewEvents starts the stream after event number from; benchmarks running
// in parallel start at different numbers so their ids differ.
func NewEvents(from int) *Events {
	const tmpl = `{"id":"e-0000000000","type":"checkout","ts":1780000000000,"account_id":"acc-000000","card_id":"card-000000","device_id":"dev-000000","ip":"10.1.2.3","amount":125.40,"currency":"EUR","ip_country":"FR","card_country":"FR"}`
	g := &Events{body: []byte(tmpl), n: from}
	g.id = bytes.Index(g.body, []byte(`e-0`)) + 2
	g.ts = bytes.Index(g.body, []byte(`1780000000000`))
	g.acc = bytes.Index(g.body, []byte(`acc-0`)) + 4
	g.card = bytes.Index(g.body, []byte(`card-0`)) + 5
	g.dev = bytes.Index(g.body, []byte(`dev-0`)) + 4
	return g
}

func putDigits(dst []byte, v int64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// Next returns the body of the next event: 20,000 accounts, 25,000 cards
// and 15,000 devices seen over and over, 50 ms apart, so velocity windows
// hold a realistic few events per entity. The body is valid until the
// next call.
func (g *Events) Next() []byte {
	g.n++
	n := int64(g.n)
	putDigits(g.body[g.id:g.id+10], n)
	putDigits(g.body[g.ts:g.ts+13], 1780000000000+n*50)
	putDigits(g.body[g.acc:g.acc+6], n%20000)
	putDigits(g.body[g.card:g.card+6], n%25000)
	putDigits(g.body[g.dev:g.dev+6], n%15000)
	return g.body
}
