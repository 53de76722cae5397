package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/eventschema"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/rules"
)

// ruleCost is what one rule costs per event, measured on generated events:
// its condition, and its graded score and reason as if it fired.
type ruleCost struct {
	ruleset, rule string
	perEvent      time.Duration
	runs          int
}

// Bounds of the measurement of one rule: enough runs for a stable mean of
// a cheap rule, and little time on an expensive one.
const (
	costEvents     = 64
	costMaxRuns    = 2000
	costMinRuns    = 4
	costRuleBudget = 5 * time.Millisecond
	// costListItems is the length of a generated list field: about what
	// an event of the default 64 KiB can carry of small objects, so a loop
	// nested over it shows what the evaluation budget lets it cost.
	costListItems = 1000
)

// measureCosts runs every rule and every feature's where condition of p
// on generated events. An event gives each field the expressions read a
// random string, number, boolean, list or nothing, and each feature a
// random value or nothing: costs that do not depend on the values (a scan
// of a long list, a loop over an event's list, a long chain of
// conditions) show; costs that need particular values may not. The
// figures are this machine's, under whatever else it is doing.
func measureCosts(p *rules.Policy) []ruleCost {
	rng := rand.New(rand.NewPCG(1, 2))
	var out []ruleCost
	var buf []byte
	var arena fastjson.Arena
	measure := func(run func(i int)) (time.Duration, int) {
		runs := 0
		start := time.Now()
		for runs < costMinRuns || runs < costMaxRuns && time.Since(start) < costRuleBudget {
			run(runs)
			runs++
		}
		return time.Since(start) / time.Duration(runs), runs
	}
	for _, f := range p.Filters {
		if f == nil {
			continue
		}
		envs := make([]*rules.Env, costEvents)
		for i := range envs {
			envs[i] = f.NewEnv()
			fillGenerated(rng, &arena, p, f.Slots(), envs[i])
		}
		per, runs := measure(func(i int) { f.Exercise(envs[i%len(envs)]) })
		out = append(out, ruleCost{ruleset: "features", rule: f.Features[0] + " where", perEvent: per, runs: runs})
	}
	for _, rs := range p.Rulesets {
		envs := make([]*rules.Env, costEvents)
		for i := range envs {
			envs[i] = rs.NewEnv()
			fillGenerated(rng, &arena, p, rs.Slots, envs[i])
		}
		for ri, r := range rs.Rules {
			per, runs := measure(func(i int) { buf = envs[i%len(envs)].Exercise(ri, buf[:0]) })
			out = append(out, ruleCost{ruleset: rs.Name, rule: r.ID, perEvent: per, runs: runs})
		}
	}
	return out
}

// fillGenerated fills env, for slots, with one made-up event: a declared
// field holds a value of its type, an undeclared one a string, a number,
// a boolean, a list or nothing.
func fillGenerated(rng *rand.Rand, a *fastjson.Arena, p *rules.Policy, slots []rules.Slot, env *rules.Env) {
	env.Reset()
	for i, slot := range slots {
		if slot.List != "" {
			env.SetList(i, lists.Empty()) // what a list holds does not change what a lookup costs
			continue
		}
		if slot.Model != nil {
			env.SetModel(i, rng.Float64()) // a probability; the model itself is costed apart
			continue
		}
		if slot.Feature >= 0 {
			f := p.Features.Features[slot.Feature]
			var v features.Value
			switch {
			case rng.IntN(8) == 0: // a key never seen, or a store that did not answer
			case f.Kind.Bool():
				v = features.Value{Valid: true, Bool: rng.IntN(2) == 0}
			default:
				v = features.Value{Valid: true, Num: float64(rng.IntN(1000))}
			}
			env.SetFeature(i, v)
			continue
		}
		str := a.NewString("v" + strconv.Itoa(rng.IntN(1000)))
		num := a.NewNumberFloat64(float64(rng.IntN(100000)) / 100)
		var v *fastjson.Value
		switch slot.Type {
		case eventschema.String:
			v = str
		case eventschema.Number, eventschema.Integer, eventschema.Time:
			v = a.NewNumberInt(rng.IntN(100000))
		case eventschema.Bool:
			v = a.NewTrue()
		case eventschema.List, eventschema.ListOfString, eventschema.ListOfNumber:
			v = generatedList(rng, a, slot.Type)
		case eventschema.Any:
			switch n := rng.IntN(20); {
			case n < 8:
				v = str
			case n < 16:
				v = num
			case n < 17:
				v = a.NewFalse()
			case n < 19:
				v = generatedList(rng, a, eventschema.List)
			}
		}
		env.SetField(i, v)
	}
}

// generatedList is a list of costListItems values of t's items: strings,
// numbers, or (a list of anything) small objects.
func generatedList(rng *rand.Rand, a *fastjson.Arena, t eventschema.Type) *fastjson.Value {
	l := a.NewArray()
	for i := range costListItems {
		var item *fastjson.Value
		switch t {
		case eventschema.ListOfString:
			item = a.NewString("v" + strconv.Itoa(rng.IntN(1000)))
		case eventschema.ListOfNumber:
			item = a.NewNumberInt(rng.IntN(100000))
		default:
			item = a.NewObject()
			item.Set("n", a.NewNumberInt(rng.IntN(100000)))
		}
		l.SetArrayItem(i, item)
	}
	return l
}

// reportCosts writes every rule's cost to w when all is set, and a warning
// to warn for each rule above threshold (0: no warnings).
func reportCosts(costs []ruleCost, all bool, threshold time.Duration, w, warn io.Writer) {
	if all {
		fmt.Fprintf(w, "cost per event on %d generated events (condition, score and reason; this machine):\n", costEvents)
		for _, c := range costs {
			fmt.Fprintf(w, "  %-40s %v\n", c.ruleset+"/"+c.rule, roundCost(c.perEvent))
		}
	}
	if threshold <= 0 {
		return
	}
	for _, c := range costs {
		if c.perEvent > threshold {
			fmt.Fprintf(warn, "warning: %s/%s costs %v per event on generated events, above %v (-cost-warn): every event of its types pays it (the usual cause is a long list scanned with any() or filter(); `x in lists.name` is a set lookup)\n",
				c.ruleset, c.rule, roundCost(c.perEvent), threshold)
		}
	}
}

// roundCost keeps three or four significant digits.
func roundCost(d time.Duration) time.Duration {
	switch {
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= time.Microsecond:
		return d.Round(10 * time.Nanosecond)
	}
	return d
}
