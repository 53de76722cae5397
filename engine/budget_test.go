package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/rules"
)

// TestEvaluationBudgetPerEvent: a where condition and rules looping over
// an event's list nested in another draw on one budget per event: a
// 30,000-item event is answered (not after seconds of one core), the
// expressions past the budget fail and are counted, and the next event
// has its budget whole.
func TestEvaluationBudgetPerEvent(t *testing.T) {
	nested := `all(event.items, {any(event.items, {# == -1}) == false})`
	var nestedRules strings.Builder
	for i := range 11 {
		fmt.Fprintf(&nestedRules, "  - {id: nested%d, when: '%s', score: 10}\n", i, nested)
	}
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("features:\n  - {name: n_1h, kind: count, key: card_id, window: 1h, where: '" + nested + "'}\n")},
		"checkout.yaml": {Data: []byte("name: checkout\nevent_types: [checkout]\nthresholds: {step_up: 50, block: 90}\nrules:\n" +
			nestedRules.String() + "  - {id: plain, when: 'features.n_1h >= 0', score: 5}\n")},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	e := engine.New(p, engine.Options{Registerer: reg})
	list := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = "1"
		}
		return "[" + strings.Join(s, ",") + "]"
	}
	for i, tt := range []struct {
		items                   int
		score                   int64
		ruleErrors, whereErrors float64
	}{
		{30000, 5, 11, 1}, // every loop past its budget
		{299, 105, 12, 1}, // 299 + 299² steps each: the where and ten rules fit the event's budget, not the eleventh
		{100, 115, 12, 1}, // a new event, a new budget
	} {
		var d engine.Decision
		body := fmt.Sprintf(`{"id":"e%d","type":"checkout","card_id":"c","items":%s}`, i, list(tt.items))
		if err := e.Score(context.Background(), []byte(body), engine.ScoreOptions{}, &d); err != nil {
			t.Fatal(err)
		}
		if d.Score != tt.score {
			t.Errorf("%d items: score %d, want %d", tt.items, d.Score, tt.score)
		}
		if got := sum(t, reg, "riskd_rule_errors_total"); got != tt.ruleErrors {
			t.Errorf("%d items: %v rule errors, want %v", tt.items, got, tt.ruleErrors)
		}
		if got := sum(t, reg, "riskd_feature_where_errors_total"); got != tt.whereErrors {
			t.Errorf("%d items: %v where errors, want %v", tt.items, got, tt.whereErrors)
		}
	}
}

// sum adds up the series of a counter family in reg.
func sum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}
