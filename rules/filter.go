package rules

import (
	"fmt"

	"github.com/expr-lang/expr"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/policyfile"
)

// Filter is the where condition of a filtered log's features: an event of
// the log's types is recorded into it only when the condition holds. It
// is compiled like a rule (typed and loose twins, against the event
// schema of the features' event types) and evaluated in an Env of its
// own, filled with the event fields it reads (Slots).
type Filter struct {
	// Log is the log's index in Policy.Features.Logs.
	Log int
	// Features names the log's features, for metrics and messages.
	Features []string
	shape    *Ruleset // the environment: Slots and layout, no rules
	prog     *program
}

// Slots are what NewEnv's environment is filled with for each event:
// event fields only (a condition cannot read features).
func (f *Filter) Slots() []Slot { return f.shape.Slots }

// NewEnv returns an environment for evaluating f.
func (f *Filter) NewEnv() *Env { return f.shape.NewEnv() }

// Eval reports whether the event e is filled with meets the condition.
// An error means it could not tell (a missing field compared with a
// number, say): the event is then not recorded.
func (f *Filter) Eval(e *Env) (bool, error) {
	v, err := e.run(f.prog)
	if err != nil {
		return false, err
	}
	return v == true, nil
}

// Exercise evaluates f in e, filled for one event, as riskctl validate
// -cost measures it: each run with a whole budget.
func (f *Filter) Exercise(e *Env) {
	if e.budget == &e.own {
		e.own.Reset()
	}
	f.Eval(e)
}

// compileFilters compiles the where condition of every filtered log of
// set, one Filter per log (nil for a log without a condition). Features
// of one log share its condition, so it is compiled once, at the first
// feature's where.
func compileFilters(set *features.Set, lists map[string]*List, es, warns *policyfile.Errors, reads *[]pathRead) []*Filter {
	out := make([]*Filter, len(set.Logs))
	for _, l := range set.Logs {
		if l.Where == "" {
			continue
		}
		first := l.Features[0]
		what := fmt.Sprintf("feature %s: where", policyfile.Quote(first.Name))
		c := &compiler{es: es, warns: warns, features: set, lists: lists, filter: true, reads: reads}
		before := es.Len()
		prog := c.compile(first.WherePos.Node(), l.Where, 0, what, expr.AsBool())
		shape := &Ruleset{}
		c.finish(shape, l.EventTypes)
		if prog == nil || es.Len() > before {
			continue
		}
		f := &Filter{Log: l.Index, shape: shape, prog: prog}
		for _, feat := range l.Features {
			f.Features = append(f.Features, feat.Name)
		}
		out[l.Index] = f
	}
	return out
}
