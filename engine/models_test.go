package engine_test

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/rules"
)

// TestModelScoresInRules: rules read model.<name> like a feature; the
// model is evaluated on the event's inputs in training order, missing
// ones as missing, and its graded score is exact.
func TestModelScoresInRules(t *testing.T) {
	model, err := os.ReadFile("../models/testdata/fraud.json")
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{
		"features.yaml": {Data: []byte(`features:
  - {name: card_txn_count_1h, kind: count, key: card_id, window: 1h}
  - {name: a, kind: count, key: a_id, window: 1h}
  - {name: b, kind: avg, key: a_id, field: amount, window: 1h}
  - {name: c, kind: seen, key: [a_id, card_id]}
`)},
		"models.yaml": {Data: []byte(`models:
  - name: fraud
    file: fraud.json
    format: xgboost-json
    inputs: [event.amount, features.card_txn_count_1h, features.a, features.b, features.c, event.d]
`)},
		"fraud.json": {Data: model},
		"checkout.yaml": {Data: []byte(`name: checkout
event_types: [checkout]
thresholds: {step_up: 50, block: 90}
rules:
  - id: model_says_fraud
    when: model.fraud > 0.5
    score: "round(60 * model.fraud)"
    reason: "the fraud model gives {{model.fraud}}"
`)},
	}
	p, err := rules.Load(fsys, "p")
	if err != nil {
		t.Fatal(err)
	}
	m := p.Models.Model("fraud")
	e := engine.New(p, engine.Options{})
	var d engine.Decision
	seen := map[bool]bool{}
	for i, ev := range []string{
		`{"id":"1","type":"checkout","ts":1780000000000,"card_id":"c","amount":950}`,
		`{"id":"2","type":"checkout","ts":1780000001000,"card_id":"c","a_id":"x","amount":950,"d":3}`,
		`{"id":"3","type":"checkout","ts":1780000002000,"card_id":"c","a_id":"x","amount":5}`,
	} {
		if err := e.Score(context.Background(), []byte(ev), engine.ScoreOptions{Explain: true}, &d); err != nil {
			t.Fatal(err)
		}
		want := [][]float64{
			{950, 0, math.NaN(), math.NaN(), math.NaN(), math.NaN()},
			{950, 1, 0, math.NaN(), 0, 3},
			{5, 2, 1, 950, 1, math.NaN()},
		}[i]
		prob := m.Predict(want)
		fired := prob > 0.5
		seen[fired] = true
		if got := len(d.Reasons) == 1; got != fired {
			t.Fatalf("event %d: model %.4f, reasons %+v", i+1, prob, d.Reasons)
		}
		if fired && (d.Reasons[0].Score != int64(math.Round(60*prob)) || !strings.HasPrefix(d.Reasons[0].Text, "the fraud model gives 0.")) {
			t.Errorf("event %d: model %.4f, reason %+v", i+1, prob, d.Reasons[0])
		}
	}

	if !seen[true] || !seen[false] {
		t.Errorf("the events do not both fire and not fire the rule: %v", seen)
	}

	// An unknown model is a load error with a suggestion.
	fsys["checkout.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(string(fsys["checkout.yaml"].Data), "when: model.fraud", "when: model.frad", 1))}
	if _, err := rules.Load(fsys, "p"); err == nil || !strings.Contains(err.Error(), `p/checkout.yaml:6:17: rule model_says_fraud: when: unknown model "frad" (did you mean model.fraud?)`) {
		t.Errorf("got %v", err)
	}
}

// TestModelFirstScore: a ruleset's base is round(scale × p), the first
// reason, and rules add to it or force an action; the explanation lists
// the model's inputs (derived ones computed, missing ones null) and its
// prediction.
func TestModelFirstScore(t *testing.T) {
	model, err := os.ReadFile("../models/testdata/small.json")
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{
		"features.yaml": {Data: []byte(`event_fields:
  - {name: amount, type: number, event_types: [checkout]}
features:
  - {name: avg, kind: avg, key: a_id, field: amount, window: 1h}
`)},
		"models.yaml": {Data: []byte(`models:
  - name: fraud
    file: small.json
    format: xgboost-json
    inputs:
      - event.amount
      - {name: ratio, expr: event.amount / features.avg}
`)},
		"small.json": {Data: model},
		"checkout.yaml": {Data: []byte(`name: checkout
event_types: [checkout]
base: {model: fraud, scale: 1000}
thresholds: {step_up: 600, block: 900}
rules:
  - {id: over_limit, when: event.amount > 220, action: block}
  - {id: spike, when: event.amount > 5 * features.avg, score: 100}
`)},
	}
	p, err := rules.Load(fsys, "p")
	if err != nil {
		t.Fatal(err)
	}
	m := p.Models.Model("fraud")
	e := engine.New(p, engine.Options{})
	nan := math.NaN()
	for i, tc := range []struct {
		event    string
		inputs   []float64
		rules    string
		decision string
		json     string // the explanation's models
	}{
		// No history: the ratio is missing (a nil average).
		{`{"id":"1","type":"checkout","ts":1780000000000,"a_id":"x","amount":5}`, []float64{5, nan}, "model.fraud", "pass",
			`"models":{"fraud":{"score":0.4532618522644043,"inputs":{"event.amount":5,"fraud.ratio":null}}}`},
		{`{"id":"2","type":"checkout","ts":1780000001000,"a_id":"x","amount":20}`, []float64{20, 4}, "model.fraud", "step_up", ""},
		{`{"id":"3","type":"checkout","ts":1780000002000,"a_id":"x","amount":300}`, []float64{300, 300 / 12.5}, "model.fraud over_limit spike", "block", ""},
	} {
		var d engine.Decision
		if err := e.Score(context.Background(), []byte(tc.event), engine.ScoreOptions{Explain: true}, &d); err != nil {
			t.Fatal(err)
		}
		base := int64(math.Round(1000 * m.Predict(tc.inputs)))
		var ids []string
		var sum int64
		for _, r := range d.Reasons {
			ids = append(ids, r.Rule)
			sum += r.Score
		}
		if strings.Join(ids, " ") != tc.rules || d.Reasons[0].Score != base || sum != d.Score || d.Outcome.String() != tc.decision {
			t.Errorf("event %d: %s %d %+v, want base %d", i+1, d.Outcome, d.Score, d.Reasons, base)
		}
		if want := "model fraud gives "; !strings.HasPrefix(d.Reasons[0].Text, want) || !strings.HasSuffix(d.Reasons[0].Text, " of 1000 points") {
			t.Errorf("event %d: base reason %q", i+1, d.Reasons[0].Text)
		}
		if len(d.Models) != 1 || len(d.Models[0].Inputs) != 2 {
			t.Fatalf("event %d: models %+v", i+1, d.Models)
		}
		for j, x := range d.Models[0].Inputs {
			if x != tc.inputs[j] && !(math.IsNaN(x) && math.IsNaN(tc.inputs[j])) {
				t.Errorf("event %d: input %d is %v, want %v", i+1, j, x, tc.inputs[j])
			}
		}
		if js := string(d.AppendJSON(nil)); !strings.Contains(js, tc.json) || !strings.Contains(js, `"models":{"fraud":{"score":`) {
			t.Errorf("event %d: %s lacks %s", i+1, js, tc.json)
		}
	}
}
