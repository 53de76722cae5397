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
	// At is where each event is in File, for messages; Types the event
	// type of each event id.
	At    []Pos
	Types map[string]string
	// TypesAt is where each event's type is.
	TypesAt map[string]Pos
	Expect  []Expectation
	// Lists are the values of mutable lists before the first event: what
	// the admin API would have put in them; ListsAt where each is named.
	Lists   map[string][]string
	ListsAt map[string]Pos
}

// Pos is a line and column in a test file.
type Pos struct{ Line, Col int }

// Expectation is what one event's decision must be.
type Expectation struct {
	Line      int
	FiredAt   []Pos // where each of Fired is
	RulesetAt Pos
	Event     string
	Ruleset   string         // whose verdict: "" = the live one; a challenger's name for its shadow verdict
	Decision  string         // pass, step_up, review, block; "" = not checked
	Fired     []string       // exactly these rules fired (nil = not checked)
	Score     *int64         // optional
	Features  map[string]any // optional: feature values (number, bool or nil)
	// FeaturesAt is where each of Features is named.
	FeaturesAt map[string]Pos
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
	c := Case{File: file, Types: map[string]string{}, TypesAt: map[string]Pos{}, ListsAt: map[string]Pos{}}
	before := es.Len()
	if f, ok := m["name"]; ok {
		c.Name, _ = policyfile.String(es, f.Value, "name")
	}
	if f, ok := m["lists"]; ok {
		if err := f.Value.Decode(&c.Lists); err != nil || f.Value.Kind != yaml.MappingNode {
			es.At(f.Value, "lists must map mutable list names to their values, e.g. lists: {blocked_cards_api: [card-9]}")
		}
		c.ListsAt = keysAt(f.Value, false)
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
			if t, ok := v["type"].(string); ok {
				c.Types[id] = t
				c.TypesAt[id] = keysAt(ev, true)["type"]
			}
			b, err := json.Marshal(jsonable(v))
			if err != nil {
				es.At(ev, "event: %v", err)
				continue
			}
			c.Events = append(c.Events, b)
			c.At = append(c.At, Pos{ev.Line, ev.Column})
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
				exp.RulesetAt = Pos{f.Value.Line, f.Value.Column}
			}
			if f, ok := xm["decision"]; ok {
				exp.Decision = f.Value.Value
				if _, ok := rules.ParseOutcome(exp.Decision); !ok {
					es.At(f.Value, "decision must be pass, step_up, review or block, got %q", exp.Decision)
				}
			}
			if f, ok := xm["fired"]; ok {
				if f.Value.Kind != yaml.SequenceNode {
					es.At(f.Value, "fired must be a list of rule ids ([] for none)")
				}
				exp.Fired = []string{}
				for _, r := range f.Value.Content {
					exp.Fired = append(exp.Fired, r.Value)
					exp.FiredAt = append(exp.FiredAt, Pos{r.Line, r.Column})
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
				exp.FeaturesAt = keysAt(f.Value, false)
			}
			c.Expect = append(c.Expect, exp)
		}
	}
	return c, es.Len() == before
}

// keysAt maps the keys of mapping n to where they are, or with values,
// to where their values are.
func keysAt(n *yaml.Node, values bool) map[string]Pos {
	out := map[string]Pos{}
	if n.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		at := n.Content[i]
		if values {
			at = n.Content[i+1]
		}
		out[n.Content[i].Value] = Pos{at.Line, at.Column}
	}
	return out
}

// Check reports, as file:line:col: message, what a test names that
// policy p does not have: a ruleset, a rule of the ruleset that scores
// the event, a feature, a mutable list, or an event type the policy does
// not name, close to one it does. Such a test could only fail, and would not say why.
func Check(p *rules.Policy, cases []Case) error {
	byName := map[string]*rules.Ruleset{}
	var names []string
	for _, rs := range p.Rulesets {
		byName[rs.Name] = rs
		names = append(names, rs.Name)
	}
	var errs []string
	at := func(file string, pos Pos, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("%s:%d:%d: ", file, pos.Line, pos.Col)+fmt.Sprintf(format, args...))
	}
	var known []string // the event types the policy names
	seen := map[string]bool{}
	add := func(types []string) {
		for _, t := range types {
			if !seen[t] {
				seen[t] = true
				known = append(known, t)
			}
		}
	}
	add(p.Features.Schema.Types())
	for _, rs := range p.Rulesets {
		add(rs.EventTypes)
	}
	for _, f := range p.Features.Features {
		add(f.EventTypes)
	}
	for _, c := range cases {
		for _, name := range sortedKeys(c.ListsAt) {
			if slices.Contains(p.MutableLists, name) {
				continue
			}
			msg := fmt.Sprintf("lists: the policy declares no mutable list %s", policyfile.Quote(name))
			if sug := policyfile.Suggest(name, p.MutableLists); sug != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", sug)
			}
			at(c.File, c.ListsAt[name], "%s", msg)
		}
		ids := make([]string, 0, len(c.Types))
		for id := range c.Types {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return posLess(c.TypesAt[ids[i]], c.TypesAt[ids[j]]) })
		for _, id := range ids {
			t := c.Types[id]
			if seen[t] {
				continue
			}
			if sug := policyfile.Suggest(t, known); sug != "" {
				at(c.File, c.TypesAt[id], "event %s: type %s is named by no ruleset, feature or event_fields declaration (did you mean %q?)", id, policyfile.Quote(t), sug)
			}
		}
		for _, x := range c.Expect {
			rs := p.ForType(c.Types[x.Event])
			if x.Ruleset != "" {
				if rs = byName[x.Ruleset]; rs == nil {
					msg := fmt.Sprintf("no ruleset named %s", policyfile.Quote(x.Ruleset))
					if sug := policyfile.Suggest(x.Ruleset, names); sug != "" {
						msg += fmt.Sprintf(" (did you mean %q?)", sug)
					}
					at(c.File, x.RulesetAt, "%s", msg)
					continue
				}
			}
			if rs == nil {
				continue // Run says no ruleset scored it
			}
			var ids []string
			for _, r := range rs.Rules {
				ids = append(ids, r.ID)
			}
			for i, id := range x.Fired {
				if slices.Contains(ids, id) {
					continue
				}
				msg := fmt.Sprintf("fired: ruleset %s has no rule %s", rs.Name, policyfile.Quote(id))
				if sug := policyfile.Suggest(id, ids); sug != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", sug)
				}
				at(c.File, x.FiredAt[i], "%s", msg)
			}
		}
		for _, x := range c.Expect {
			for _, name := range sortedKeys(x.FeaturesAt) {
				if _, ok := p.Features.Index(name); ok {
					continue
				}
				msg := fmt.Sprintf("features: no feature named %s", policyfile.Quote(name))
				if sug := policyfile.Suggest(name, p.Features.Names()); sug != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", sug)
				}
				at(c.File, x.FeaturesAt[name], "%s", msg)
			}
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

func sortedKeys(m map[string]Pos) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return posLess(m[out[i]], m[out[j]]) })
	return out
}

func posLess(a, b Pos) bool { return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col }

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
	for i, body := range c.Events {
		var d engine.Decision
		if err := e.Score(context.Background(), body, engine.ScoreOptions{Explain: true}, &d); err != nil {
			r.Failures = append(r.Failures, fmt.Sprintf("%s:%d:%d: event refused: %v", c.File, c.At[i].Line, c.At[i].Col, err))
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
		// A model-first ruleset's base (model.<name>: no rule id has a
		// dot) is in every decision; fired lists the rules.
		if reason.Rule != engine.StoreUnavailableRule && !strings.HasPrefix(reason.Rule, "model.") {
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
