package rules_test

import (
	"testing"

	"github.com/expr-lang/expr/vm"

	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

// BenchmarkRulesetEval runs the example checkout ruleset's 18 rules on one
// environment, as the engine does after the store call.
func BenchmarkRulesetEval(b *testing.B) {
	p, err := rules.Load(example.FS, "rules/example")
	if err != nil {
		b.Fatal(err)
	}
	rs := p.ForType("checkout")
	env := map[string]any{"event.amount": 125.4, "event.currency": "EUR", "event.ip_country": "FR", "event.card_country": "FR"}
	for _, fi := range rs.Reads {
		f := p.Features.Features[fi]
		if f.Kind.Bool() {
			env[rules.FeatureEnvKey(f.Name)] = true
		} else {
			env[rules.FeatureEnvKey(f.Name)] = 2.0
		}
	}
	var m vm.VM
	var out []rules.RuleResult
	b.ReportAllocs()
	for b.Loop() {
		out = rs.Eval(&m, env, out)
	}
	for i, r := range out {
		if r.Err != nil {
			b.Fatalf("rule %s: %v", rs.Rules[i].ID, r.Err)
		}
	}
}
