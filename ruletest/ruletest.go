// Package ruletest runs the analysts' own rule tests: files under
// DIR/tests/*.yaml, each a sequence of timestamped events and the decisions
// expected for the events it names, scored by the same engine riskd runs.
package ruletest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/memstore"
	"github.com/riskd/riskd/policyfile"
	"github.com/riskd/riskd/rules"
)

// Dir is where the tests live inside a policy directory.
const Dir = "tests"

// Case is one test: events scored in order on a fresh store, and what is
// expected of some of their decisions.
type Case struct {
	File   string
	Name   string
	Events [][]byte // JSON
	Expect []Expectation
	// Lists are the values of mutable lists before the first event: what
	// the admin API would have put in them.
	Lists map[string][]string
}

// Expectation is what one event's decision must be.
type Expectation struct {
	Line     int
	Event    string
	Ruleset  string         // whose verdict: "" = the live one; a challenger's name for its shadow verdict
	Decision string         // pass, step_up, block; "" = not checked
	Fired    []string       // exactly these rules fired (nil = not checked)
	Score    *int64         // optional
	Features map[string]any // optional: feature values (number, bool or nil)
}

// Load reads every DIR/tests/*.yaml file of fsys. dir names files in
// messages. A policy without tests is not an error: it has no cases.
func Load(fsys fs.FS, dir string) ([]Case, error) {
	entries, err := fs.ReadDir(fsys, Dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w", path.Join(dir, Dir), err)
	}
	var cases []Case
	var errs []string
	for _, e := range entries {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			continue
		}
		name := path.Join(dir, Dir, e.Name())
		data, err := fs.ReadFile(fsys, path.Join(Dir, e.Name()))
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		cs, err := parse(name, data)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		cases = append(cases, cs...)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return cases, nil
}

func parse(file string, data []byte) ([]Case, error) {
	root, err := policyfile.Parse(file, data)
	if err != nil {
		return nil, err
	}
	es := &policyfile.Errors{File: file}
	top := policyfile.Mapping(es, root, "test file", "!tests")
	var cases []Case
	if f, ok := top["tests"]; ok {
		if f.Value.Kind != yaml.SequenceNode {
			es.At(f.Value, "tests must be a list of tests")
		} else {
			for _, n := range f.Value.Content {
				if c, ok := parseCase(es, file, n); ok {
					cases = append(cases, c)
				}
			}
		}
	}
	if err := es.Err(); err != nil {
		return nil, err
	}
	return cases, nil
}

func parseCase(es *policyfile.Errors, file string, n *yaml.Node) (Case, bool) {
	m := policyfile.Mapping(es, n, "test", "!name", "lists", "!events", "!expect")
	c := Case{File: file}
	before := es.Len()
	if f, ok := m["name"]; ok {
		c.Name, _ = policyfile.String(es, f.Value, "name")
	}
	if f, ok := m["lists"]; ok {
		if err := f.Value.Decode(&c.Lists); err != nil || f.Value.Kind != yaml.MappingNode {
			es.At(f.Value, "lists must map mutable list names to their values, e.g. lists: {blocked_cards_api: [card-9]}")
		}
	}
	ids := map[string]bool{}
	if f, ok := m["events"]; ok {
		if f.Value.Kind != yaml.SequenceNode || len(f.Value.Content) == 0 {
			es.At(f.Value, "events must be a non-empty list of events")
		}
		for _, ev := range f.Value.Content {
			var v map[string]any
			if err := ev.Decode(&v); err != nil || ev.Kind != yaml.MappingNode {
				es.At(ev, "an event must be a mapping of fields")
				continue
			}
			id, _ := v["id"].(string)
			ids[id] = true
			b, err := json.Marshal(jsonable(v))
			if err != nil {
				es.At(ev, "event: %v", err)
				continue
			}
			c.Events = append(c.Events, b)
		}
	}
	if f, ok := m["expect"]; ok {
		if f.Value.Kind != yaml.SequenceNode || len(f.Value.Content) == 0 {
			es.At(f.Value, "expect must be a non-empty list of expectations")
		}
		for _, x := range f.Value.Content {
			xm := policyfile.Mapping(es, x, "expectation", "!event", "ruleset", "decision", "fired", "score", "features")
			exp := Expectation{Line: x.Line}
			if f, ok := xm["event"]; ok {
				exp.Event, _ = policyfile.String(es, f.Value, "event")
				if exp.Event != "" && !ids[exp.Event] {
					es.At(f.Value, "no event with id %q in this test", exp.Event)
				}
			}
			if f, ok := xm["ruleset"]; ok {
				exp.Ruleset, _ = policyfile.String(es, f.Value, "ruleset")
			}
			if f, ok := xm["decision"]; ok {
				exp.Decision = f.Value.Value
				if !slices.Contains([]string{"pass", "step_up", "block"}, exp.Decision) {
					es.At(f.Value, "decision must be pass, step_up or block, got %q", exp.Decision)
				}
			}
			if f, ok := xm["fired"]; ok {
				if f.Value.Kind != yaml.SequenceNode {
					es.At(f.Value, "fired must be a list of rule ids ([] for none)")
				}
				exp.Fired = []string{}
				for _, r := range f.Value.Content {
					exp.Fired = append(exp.Fired, r.Value)
				}
			}
			if f, ok := xm["score"]; ok {
				if s, ok := policyfile.Int(es, f.Value, "score"); ok {
					exp.Score = &s
				}
			}
			if f, ok := xm["features"]; ok {
				if err := f.Value.Decode(&exp.Features); err != nil {
					es.At(f.Value, "features must map feature names to values")
				}
			}
			c.Expect = append(c.Expect, exp)
		}
	}
	return c, es.Len() == before
}

// jsonable turns YAML-decoded values into what encoding/json accepts.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
	}
	return v
}

// Result is the outcome of one case.
type Result struct {
	Case     Case
	Failures []string
	Fired    map[string]map[string]bool // ruleset -> rule ids that fired
	// RuleErrors are the rules that failed at run time on the case's
	// events.
	RuleErrors []engine.RuleErrors
}

// Run scores a case's events on a fresh in-memory store with policy p.
func Run(p *rules.Policy, c Case) Result {
	r := Result{Case: c, Fired: map[string]map[string]bool{}}
	reg := lists.NewMemory(lists.Options{})
	e := engine.New(p, engine.Options{Store: memstore.New(memstore.Options{EventTime: true}), Lists: reg})
	names := make([]string, 0, len(c.Lists))
	for name := range c.Lists {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := reg.Add(context.Background(), name, c.Lists[name], 0, "riskctl test"); err != nil {
			r.Failures = append(r.Failures, fmt.Sprintf("%s: test %q: lists: %v", c.File, c.Name, err))
		}
	}
	byEvent := map[string][]Expectation{}
	for _, x := range c.Expect {
		byEvent[x.Event] = append(byEvent[x.Event], x)
	}
	for _, body := range c.Events {
		var d engine.Decision
		if err := e.Score(context.Background(), body, engine.ScoreOptions{Explain: true}, &d); err != nil {
			r.Failures = append(r.Failures, fmt.Sprintf("event %s: refused: %v", body, err))
			continue
		}
		verdicts := append([]engine.Verdict{d.Verdict}, d.Shadows...)
		for _, v := range verdicts {
			if r.Fired[v.Ruleset] == nil {
				r.Fired[v.Ruleset] = map[string]bool{}
			}
			for _, reason := range v.Reasons {
				r.Fired[v.Ruleset][reason.Rule] = true
			}
		}
		for _, x := range byEvent[d.EventID] {
			at := fmt.Sprintf("%s:%d: event %s", c.File, x.Line, x.Event)
			i := slices.IndexFunc(verdicts, func(v engine.Verdict) bool { return x.Ruleset == "" || v.Ruleset == x.Ruleset })
			if i < 0 {
				r.Failures = append(r.Failures, fmt.Sprintf("%s: ruleset %s did not score it (live: %s; a challenger names the live ruleset in shadow_of)", at, x.Ruleset, d.Ruleset))
				continue
			}
			r.Failures = append(r.Failures, check(at, x, &d, &verdicts[i])...)
		}
	}
	r.RuleErrors = e.RuleErrors()
	return r
}

func check(at string, x Expectation, d *engine.Decision, v *engine.Verdict) []string {
	var out []string
	var fired []string
	for _, reason := range v.Reasons {
		if reason.Rule != engine.StoreUnavailableRule {
			fired = append(fired, reason.Rule)
		}
	}
	if x.Ruleset != "" {
		at += " (" + x.Ruleset + ")"
	}
	if x.Decision != "" && v.Outcome.String() != x.Decision {
		out = append(out, fmt.Sprintf("%s: decision %s (score %d), want %s", at, v.Outcome, v.Score, x.Decision))
	}
	if x.Fired != nil {
		got, want := slices.Clone(fired), slices.Clone(x.Fired)
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			out = append(out, fmt.Sprintf("%s: fired %v, want %v", at, got, want))
		}
	}
	if x.Score != nil && v.Score != *x.Score {
		out = append(out, fmt.Sprintf("%s: score %d, want %d", at, v.Score, *x.Score))
	}
	for name, want := range x.Features {
		var got any = "not read by the ruleset"
		for _, f := range d.Features {
			if f.Name == name {
				switch {
				case !f.Value.Valid:
					got = nil
				case f.Bool:
					got = f.Value.Bool
				default:
					got = f.Value.Num
				}
			}
		}
		if fmt.Sprint(normalize(got)) != fmt.Sprint(normalize(want)) {
			out = append(out, fmt.Sprintf("%s: feature %s = %v, want %v", at, name, got, want))
		}
	}
	return out
}

func normalize(v any) any {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int64:
		return float64(x)
	}
	return v
}

// Filter keeps the cases whose "file/name" matches pattern.
func Filter(cases []Case, pattern string) ([]Case, error) {
	if pattern == "" {
		return cases, nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("-run: %w", err)
	}
	var out []Case
	for _, c := range cases {
		if re.MatchString(c.ID()) {
			out = append(out, c)
		}
	}
	return out, nil
}

// ID names a case for output and -run: file base name and test name.
func (c Case) ID() string { return path.Base(c.File) + "/" + c.Name }

// Uncovered lists, per ruleset, the rules no case made fire.
func Uncovered(p *rules.Policy, results []Result) []string {
	var out []string
	for _, rs := range p.Rulesets {
		for _, rule := range rs.Rules {
			covered := false
			for _, r := range results {
				if r.Fired[rs.Name][rule.ID] {
					covered = true
					break
				}
			}
			if !covered {
				out = append(out, rs.Name+"/"+rule.ID)
			}
		}
	}
	return out
}
