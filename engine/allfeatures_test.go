package engine_test

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/rules"
)

// TestAllFeatures: with AllFeatures the explanation lists every feature of
// the policy, the ruleset's own first, with the values the store answers;
// without it, only those the ruleset reads.
func TestAllFeatures(t *testing.T) {
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte(`features:
  - {name: card_count_1h, kind: count, key: card_id, window: 1h}
  - {name: card_amount_max_1h, kind: max, key: card_id, field: amount, window: 1h}
  - {name: card_device_seen, kind: seen, key: [card_id, device_id]}
  - {name: account_count_1h, kind: count, key: account_id, window: 1h}
`)},
		"checkout.yaml": {Data: []byte("name: checkout\nevent_types: [checkout]\nthresholds: {step_up: 50, block: 90}\nrules:\n  - {id: velocity, when: features.card_count_1h >= 2, score: 60}\n")},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(p, engine.Options{})
	var d engine.Decision
	for i, amount := range []int{30, 70, 50} {
		body := fmt.Sprintf(`{"id":"e%d","type":"checkout","ts":%d,"card_id":"c1","device_id":"d1","amount":%d}`, i, 1780000000000+i*1000, amount)
		if err := e.Score(context.Background(), []byte(body), engine.ScoreOptions{Explain: true, AllFeatures: true}, &d); err != nil {
			t.Fatal(err)
		}
	}
	// account_id is absent: its feature is nil.
	want := `[{card_count_1h {true 2 false} false} {card_amount_max_1h {true 70 false} false} {card_device_seen {true 0 true} true} {account_count_1h {false 0 false} false}]`
	if got := fmt.Sprint(d.Features); got != want {
		t.Errorf("all features %s, want %s", got, want)
	}
	if d.Outcome != rules.StepUp {
		t.Errorf("decision %v, want step_up: reading more features changes nothing else", d.Outcome)
	}
	if err := e.Score(context.Background(), []byte(`{"id":"e4","type":"checkout","ts":1780000004000,"card_id":"c1","amount":1}`), engine.ScoreOptions{Explain: true}, &d); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(d.Features); got != `[{card_count_1h {true 3 false} false}]` {
		t.Errorf("features without AllFeatures %s, want the ruleset's one", got)
	}
}
