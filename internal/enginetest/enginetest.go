// Package enginetest holds what the tests of the engine and of its
// transports share: the policies they score with, and scoring one event.
package enginetest

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
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
