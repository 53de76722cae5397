package peers

import (
	"github.com/expr-lang/expr/vm"

	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

// Expr runs the checkout ruleset as riskd compiles it: the same programs,
// the same flat environment, one reused VM.
type Expr struct {
	rs      *rules.Ruleset
	envs    []map[string]any
	vm      vm.VM
	results []rules.RuleResult
}

// NewExpr loads the example policy and prepares each input's environment
// the way the engine fills it.
func NewExpr(inputs []Input) (*Expr, error) {
	p, err := rules.Load(example.FS, "rules/example")
	if err != nil {
		return nil, err
	}
	e := &Expr{rs: p.ForType("checkout")}
	for _, in := range inputs {
		env := map[string]any{}
		for _, fi := range e.rs.Reads {
			name := p.Features.Features[fi].Name
			env[rules.FeatureEnvKey(name)] = in.Features[name]
		}
		for _, f := range e.rs.EventFields {
			env[f.EnvKey] = in.Event[f.Path.Name]
		}
		e.envs = append(e.envs, env)
	}
	return e, nil
}

// Eval scores input i.
func (e *Expr) Eval(i int) Result {
	var score int64
	forced := rules.Pass
	e.results = e.rs.Eval(&e.vm, e.envs[i], e.results)
	for j, r := range e.results {
		if r.Fired {
			score += r.Score
			forced = max(forced, e.rs.Rules[j].Action)
		}
	}
	return Result{Outcome: max(e.rs.Outcome(score), forced).String(), Score: score}
}
