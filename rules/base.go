package rules

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/models"
	"github.com/riskd/riskd/policyfile"
)

// MaxBaseScale bounds a base's scale: a probability times it stays well
// within a score's range, and finer points than a millionth rank nothing.
const MaxBaseScale = 1_000_000

// Base is a model-first ruleset's base score: the model's prediction at a
// stated scale, round(Scale × model.<name>), to which the rules add their
// points or force an action.
type Base struct {
	Model *models.Model
	Scale int64
	// Rule names the base in a decision's reasons: "model." + Model.Name,
	// made once here rather than for every event.
	Rule string
	slot int // the model's slot in the ruleset's environment
	line int
}

// Points is the base score for prediction p: round(Scale × p), 0 when p
// is not a number (a regression model's output can be anything).
func (b *Base) Points(p float64) int64 {
	s, ok := ScoreOf(float64(b.Scale) * p)
	if !ok {
		return 0
	}
	return s
}

// Slot is the model's slot in the ruleset's environment, filled with its
// prediction like any model a rule reads.
func (b *Base) Slot() int { return b.slot }

// parseBase reads `base: {model: fraud, scale: 1000}`.
func parseBase(es *policyfile.Errors, out *parsedRuleset, n *yaml.Node, ms *models.Set) {
	m := policyfile.Mapping(es, n, "base", "!model", "!scale")
	if m == nil {
		return
	}
	b := &Base{line: n.Line}
	if f, ok := m["scale"]; ok {
		s, ok := policyfile.Int(es, f.Value, "base: scale")
		switch {
		case !ok:
			return
		case s < 1 || s > MaxBaseScale:
			es.At(f.Value, "base: scale %d is out of range: the points a probability of 1 is worth, from 1 to %d (e.g. 1000)", s, MaxBaseScale)
			return
		}
		b.Scale = s
	}
	f, ok := m["model"]
	if !ok {
		return
	}
	name, ok := policyfile.String(es, f.Value, "base: model")
	if !ok {
		return
	}
	switch mod := ms.Model(name); {
	case mod == nil && ms == nil:
		es.At(f.Value, "base: unknown model %s (models are declared in models.yaml, and this directory has none)", policyfile.Quote(name))
	case mod == nil:
		msg := fmt.Sprintf("base: unknown model %s", policyfile.Quote(name))
		if s := policyfile.Suggest(name, ms.Names()); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		es.At(f.Value, "%s", msg)
	case !mod.Trained():
		es.At(f.Value, "base: model %s has no file yet: it is declared to be trained; add its file to models.yaml to score with it", policyfile.Quote(name))
	default:
		b.Model = mod
		b.Rule = "model." + mod.Name
		out.Base = b
	}
}

// modelsRead names the models rs reads: in its expressions and as its base.
func (c *compiler) modelsRead(rs *Ruleset) map[string]bool {
	out := map[string]bool{}
	for _, p := range c.pending {
		for name := range p.models {
			out[name] = true
		}
	}
	if rs.Base != nil {
		out[rs.Base.Model.Name] = true
	}
	return out
}

// checkBase finds the base's slot once the environment is built and warns
// about rules whose fixed points are more than the base's whole scale:
// where such a rule fires it, not the model, orders the events, which is
// what a model-first ruleset is meant to avoid. Hard evidence that must
// decide says so with an action.
func (rs *parsedRuleset) checkBase(warns *policyfile.Errors) {
	b := rs.Base
	if b == nil {
		return
	}
	for i, s := range rs.Slots {
		if s.Model == b.Model {
			b.slot = i
		}
	}
	for _, r := range rs.Rules {
		if r.graded == nil && r.Action == Pass && abs(r.Score) > b.Scale {
			warns.AtPos(r.Line, 0, "rule %s: its %d points dwarf the base (model %s at scale %d): where it fires, the rule rather than the model orders events; keep added evidence within the scale, or force an action",
				policyfile.Quote(r.ID), r.Score, b.Model.Name, b.Scale)
		}
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
