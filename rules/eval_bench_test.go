package rules_test

import (
	"testing"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

// BenchmarkRulesetEval fills the example checkout ruleset's environment
// and runs its rules, as the engine does after the store call: every
// feature present (the typed programs run), then with the features a new
// key lacks (their untyped twins run where a rule reads one).
func BenchmarkRulesetEval(b *testing.B) {
	p, err := rules.Load(example.FS, "rules/example")
	if err != nil {
		b.Fatal(err)
	}
	rs := p.ForType("checkout")
	event := `{"id":"e","type":"checkout","amount":125.4,"currency":"EUR","ip_country":"FR","card_country":"FR"}`
	for _, bench := range []struct {
		name   string
		absent map[string]bool
	}{
		{"present", nil},
		{"some absent", map[string]bool{"card_since_last_s": true, "terminal_chargebacks_28d": true, "account_amount_avg_30d": true}},
	} {
		b.Run(bench.name, func(b *testing.B) {
			feats := map[string]features.Value{}
			for _, fi := range rs.Reads {
				f := p.Features.Features[fi]
				if bench.absent[f.Name] {
					continue
				}
				feats[f.Name] = features.Value{Valid: true, Num: 2, Bool: true}
			}
			env := envFor(b, rs, event, feats)
			var out []rules.RuleResult
			b.ReportAllocs()
			for b.Loop() {
				out = rs.Eval(env, out)
			}
			for i, r := range out {
				if r.Err != nil {
					b.Fatalf("rule %s: %v", rs.Rules[i].ID, r.Err)
				}
			}
		})
	}
	// As the engine does per event: fill every slot, then run the rules,
	// so what a fill costs is counted with the run it feeds.
	b.Run("filled per event", func(b *testing.B) {
		ev, err := fastjson.Parse(event)
		if err != nil {
			b.Fatal(err)
		}
		env := rs.NewEnv()
		var out []rules.RuleResult
		b.ReportAllocs()
		for b.Loop() {
			env.Reset()
			for i, s := range rs.Slots {
				switch {
				case s.List != "":
					env.SetList(i, lists.Empty())
				case s.Feature >= 0:
					env.SetFeature(i, features.Value{Valid: true, Num: 2.5, Bool: true})
				default:
					env.SetField(i, ev.Get(s.Path.Parts...))
				}
			}
			out = rs.Eval(env, out)
		}
		for i, r := range out {
			if r.Err != nil {
				b.Fatalf("rule %s: %v", rs.Rules[i].ID, r.Err)
			}
		}
	})
}
