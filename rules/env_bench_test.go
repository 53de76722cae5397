package rules_test

import (
	"testing"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/riskd/riskd/rules"
)

// The expression environment was chosen by these benchmarks: the same rule
// evaluated with a reused vm.VM against
//   - flat:   riskd's environment, one map[string]any with flattened names
//     ("features.card_txn_count_1h"), loaded with one map lookup each;
//   - nested: map[string]any of maps, the obvious layout, fetched through
//     reflection;
//   - struct: a Go struct env, fields fetched through reflection; it
//     cannot hold nil features nor names known only at load.
const envRule = `features.card_txn_count_1h >= 5 && event.amount > 100 && event.ip_country in lists.bad`

type structFeatures struct {
	CardTxnCount1h float64 `expr:"card_txn_count_1h"`
}

type structEvent struct {
	Amount    float64 `expr:"amount"`
	IPCountry string  `expr:"ip_country"`
}

type structEnv struct {
	Features structFeatures `expr:"features"`
	Event    structEvent    `expr:"event"`
}

func BenchmarkEnv(b *testing.B) {
	b.Run("flat", func(b *testing.B) {
		p := loadPolicy(b, goodFeatures, `name: r
event_types: [checkout]
thresholds: {step_up: 1, block: 2}
lists:
  bad: [NG, RU]
rules:
  - id: r
    when: `+envRule+`
    score: 1
`)
		rs := p.ForType("checkout")
		env := map[string]any{
			rules.FeatureEnvKey("card_txn_count_1h"): 7.0, "event.amount": 150.0,
			"event.ip_country": "NG",
		}
		run(b, rs.Rules[0].When, env)
	})
	b.Run("nested", func(b *testing.B) {
		env := map[string]any{
			"features": map[string]any{"card_txn_count_1h": 7.0},
			"event":    map[string]any{"amount": 150.0, "ip_country": "NG"},
			"lists":    map[string]any{"bad": []any{"NG", "RU"}},
		}
		prog, err := expr.Compile(envRule, expr.Env(env), expr.AsBool())
		if err != nil {
			b.Fatal(err)
		}
		run(b, prog, env)
	})
	b.Run("struct", func(b *testing.B) {
		env := structEnv{Features: structFeatures{7}, Event: structEvent{150, "NG"}}
		prog, err := expr.Compile(`features.card_txn_count_1h >= 5 && event.amount > 100 && event.ip_country in ["NG", "RU"]`, expr.Env(env), expr.AsBool())
		if err != nil {
			b.Fatal(err)
		}
		run(b, prog, env)
	})
}

func run(b *testing.B, prog *vm.Program, env any) {
	var m vm.VM
	b.ReportAllocs()
	for b.Loop() {
		out, err := m.Run(prog, env)
		if err != nil || out != true {
			b.Fatal(out, err)
		}
	}
}

func loadPolicy(t testing.TB, features, ruleset string) *rules.Policy {
	t.Helper()
	fsys := map[string]string{"features.yaml": features, "checkout.yaml": ruleset}
	p, err := loadFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
