package peers

import (
	"encoding/json"
	"fmt"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

// Expr runs the checkout ruleset the way riskd's engine does after the
// store call: the same compiled ruleset, the same rules.Env filled slot by
// slot (features from their values, event fields from the parsed event),
// the same Eval.
type Expr struct {
	rs      *rules.Ruleset
	env     *rules.Env
	inputs  []exprInput
	results []rules.RuleResult
}

type exprInput struct {
	feats  []features.Value  // per slot; unused for event fields
	fields []*fastjson.Value // per slot; nil for features
}

// NewExpr loads the example policy and prepares each input as the engine
// holds it: feature values and a parsed event.
func NewExpr(inputs []Input) (*Expr, error) {
	p, err := rules.Load(example.FS, "rules/example")
	if err != nil {
		return nil, err
	}
	e := &Expr{rs: p.ForType("checkout")}
	e.env = e.rs.NewEnv()
	for _, in := range inputs {
		body, err := json.Marshal(in.Event)
		if err != nil {
			return nil, err
		}
		ev, err := fastjson.ParseBytes(body)
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", body, err)
		}
		x := exprInput{feats: make([]features.Value, len(e.rs.Slots)), fields: make([]*fastjson.Value, len(e.rs.Slots))}
		for i, s := range e.rs.Slots {
			if s.List != "" {
				continue
			}
			if s.Feature < 0 {
				x.fields[i] = ev.Get(s.Path.Parts...)
				continue
			}
			switch v := in.Features[p.Features.Features[s.Feature].Name].(type) {
			case float64:
				x.feats[i] = features.Value{Valid: true, Num: v}
			case bool:
				x.feats[i] = features.Value{Valid: true, Bool: v}
			}
		}
		e.inputs = append(e.inputs, x)
	}
	return e, nil
}

// Eval scores input i.
func (e *Expr) Eval(i int) Result {
	in := &e.inputs[i]
	e.env.Reset()
	for j, s := range e.rs.Slots {
		switch {
		case s.List != "":
			e.env.SetList(j, lists.Empty()) // the checkout ruleset's mutable block list, empty here
		case s.Feature < 0:
			e.env.SetField(j, in.fields[j])
		default:
			e.env.SetFeature(j, in.feats[j])
		}
	}
	var score int64
	forced := rules.Pass
	e.results = e.rs.Eval(e.env, e.results)
	for j, r := range e.results {
		if r.Fired {
			score += r.Score
			forced = max(forced, e.rs.Rules[j].Action)
		}
	}
	return Result{Outcome: max(e.rs.Outcome(score), forced).String(), Score: score}
}
