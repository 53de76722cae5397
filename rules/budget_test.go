package rules_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/rules"
)

func items(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"sku":"s%d"}`, i)
	}
	return `{"items":[` + strings.Join(parts, ",") + `]}`
}

// TestEvaluationBudget: a loop over an event's list nested in another
// stops at the expression's budget, failing the rule with ErrBudget
// (the same rule on a short list runs); rules that each stay within it
// stop at the event's.
func TestEvaluationBudget(t *testing.T) {
	nested := `all(event.items, {any(event.items, {.sku == "none"}) == false})`
	var rs strings.Builder
	for i := range 12 {
		fmt.Fprintf(&rs, "  - {id: r%d, when: '%s', score: 1}\n", i, nested)
	}
	p, err := loadFS(map[string]string{
		"features.yaml": goodFeatures,
		"checkout.yaml": "name: checkout\nevent_types: [checkout]\nthresholds: {step_up: 50, block: 90}\nrules:\n" + rs.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := p.ForType("checkout")
	noFeatures := map[string]features.Value{}

	res := r.Eval(envFor(t, r, items(100), noFeatures), nil) // 100 + 100² steps a rule
	for i, x := range res {
		if !x.Fired || x.Err != nil {
			t.Fatalf("rule %d on 100 items: %+v", i, x)
		}
	}
	res = r.Eval(envFor(t, r, items(400), noFeatures), nil) // 400 + 400² steps
	if !errors.Is(res[0].Err, rules.ErrBudget) || !strings.Contains(res[0].Err.Error(), "more than 100000 steps (iterations of all, any, filter, map…) in one expression") {
		t.Fatalf("rule on 400 items: %+v", res[0])
	}
	res = r.Eval(envFor(t, r, items(299), noFeatures), nil) // 299 + 299² = 89,700 steps a rule
	for i, x := range res {
		if i < 11 && (!x.Fired || x.Err != nil) {
			t.Errorf("rule %d on 299 items: %+v", i, x)
		}
		if i == 11 && (!errors.Is(x.Err, rules.ErrBudget) || !strings.Contains(x.Err.Error(), "more than 1000000 steps (iterations of all, any, filter, map…) for one event")) {
			t.Errorf("rule %d on 299 items: %+v, want the event's budget exhausted", i, x)
		}
	}
}
