package features

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/eventschema"
	"github.com/riskd/riskd/policyfile"
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
var pathRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// Parse compiles features.yaml. Every problem is reported, each as
// file:line:col: message. The Set is never nil: with errors it holds the
// features that are well formed and names the broken ones (Broken), so
// rulesets can be checked in the same run without a cascade of "unknown
// feature" errors.
func Parse(file string, data []byte) (*Set, error) {
	set := &Set{File: file, byName: map[string]int{}}
	root, err := policyfile.Parse(file, data)
	if err != nil {
		set.unreadable = true
		return set, err
	}
	es := &policyfile.Errors{File: file}
	top := policyfile.Mapping(es, root, "features.yaml", "!features", "event_fields", "lists")
	if f, ok := top["lists"]; ok {
		set.ListsNode = f.Value
	}
	set.Schema = &eventschema.Schema{}
	if f, ok := top["event_fields"]; ok {
		set.Schema = eventschema.Parse(es, f.Value)
	}
	list, ok := top["features"]
	if !ok {
		set.unreadable = true
		return set, es.Err()
	}
	if list.Value.Kind != yaml.SequenceNode {
		es.At(list.Value, "features must be a list of feature definitions")
		set.unreadable = true
		return set, es.Err()
	}
	for _, n := range list.Value.Content {
		f, name := parseFeature(es, n)
		if f == nil {
			if name != "" {
				set.broken = append(set.broken, name)
			}
			continue
		}
		if i, dup := set.byName[f.Name]; dup {
			es.AtPos(f.Line, n.Column, "duplicate feature name %q (first defined at line %d)", f.Name, set.Features[i].Line)
			continue
		}
		set.byName[f.Name] = len(set.Features)
		set.Features = append(set.Features, f)
		checkTypes(es, set.Schema, f, n)
	}
	set.link()
	return set, es.Err()
}

// parseFeature returns the feature, or nil and whatever name it has when
// it is broken.
func parseFeature(es *policyfile.Errors, n *yaml.Node) (*Feature, string) {
	m := policyfile.Mapping(es, n, "feature", "!name", "!kind", "!key", "window", "retention", "event_types", "field", "of", "where")
	if m == nil {
		return nil, ""
	}
	f := &Feature{Line: n.Line}
	bad := false
	if v, ok := m["name"]; ok {
		if s, ok := policyfile.String(es, v.Value, "name"); ok {
			if !nameRE.MatchString(s) {
				es.At(v.Value, "feature name %q must be lower case letters, digits and _ (rules read it as features.%s)", s, s)
				bad = true
			}
			f.Name = s
		} else {
			bad = true
		}
	}
	what := "feature"
	if f.Name != "" {
		what = fmt.Sprintf("feature %q", f.Name)
	}
	if v, ok := m["kind"]; ok {
		if s, ok := policyfile.String(es, v.Value, "kind"); ok {
			k, known := kindNames[s]
			if !known {
				msg := fmt.Sprintf("%s: unknown kind %q", what, s)
				if sug := policyfile.Suggest(s, kindList()); sug != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", sug)
				} else {
					msg += " (kinds: " + strings.Join(kindList(), ", ") + ")"
				}
				es.At(v.Value, "%s", msg)
				bad = true
			}
			f.Kind = k
		} else {
			bad = true
		}
	}
	if v, ok := m["key"]; ok {
		keys, good := policyfile.Strings(es, v.Value, "key")
		bad = bad || !good
		for _, k := range keys {
			if good && !pathRE.MatchString(k) {
				es.At(v.Value, "%s: key %q is not an event field name", what, k)
				bad = true
			}
			f.Key = append(f.Key, NewPath(k))
		}
	}
	if v, ok := m["event_types"]; ok {
		ts, good := policyfile.Strings(es, v.Value, "event_types")
		bad = bad || !good
		f.EventTypes = ts
	}
	pathField := func(name string) Path {
		v, ok := m[name]
		if !ok {
			return Path{}
		}
		s, good := policyfile.String(es, v.Value, name)
		if good && !pathRE.MatchString(s) {
			es.At(v.Value, "%s: %s %q is not an event field name", what, name, s)
			good = false
		}
		bad = bad || !good
		return NewPath(s)
	}
	f.Field, f.Of = pathField("field"), pathField("of")
	if v, ok := m["where"]; ok {
		s, good := policyfile.String(es, v.Value, what+": where")
		if good && strings.TrimSpace(s) == "" {
			es.At(v.Value, "%s: where is empty: give a condition on the event (e.g. where: event.amount > 500) or leave it out", what)
			good = false
		}
		bad = bad || !good
		f.Where, f.WherePos = s, policyfile.PosOf(v.Value)
	}

	if f.Kind == 0 {
		return nil, f.Name
	}
	win, hasWin := m["window"]
	ret, hasRet := m["retention"]
	switch {
	case f.Kind.Windowed():
		if !hasWin {
			es.At(n, "%s: kind %s needs a window (e.g. window: 1h)", what, f.Kind)
			bad = true
		} else if d, ok := policyfile.Duration(es, win.Value, "window"); ok {
			f.Window = d
		} else {
			bad = true
		}
		if hasRet {
			es.At(ret.Key, "%s: retention applies to seen, age and since_last; a %s forgets what is older than its window", what, f.Kind)
			bad = true
		}
	default:
		if hasWin {
			es.At(win.Key, "%s: kind %s has no window (it looks back over the retention, default %s)", what, f.Kind, policyfile.FormatDuration(DefaultRetention))
			bad = true
		}
		f.Retention = DefaultRetention
		if hasRet {
			if d, ok := policyfile.Duration(es, ret.Value, "retention"); ok {
				f.Retention = d
			} else {
				bad = true
			}
		}
	}
	needsField := f.Kind == Sum || f.Kind == Avg || f.Kind == Max
	switch {
	case needsField && m["field"].Key == nil:
		es.At(n, "%s: kind %s needs field: the numeric event field to aggregate (e.g. field: amount)", what, f.Kind)
		bad = true
	case !needsField && m["field"].Key != nil:
		es.At(m["field"].Key, "%s: field applies to sum, avg and max, not %s", what, f.Kind)
		bad = true
	}
	switch {
	case f.Kind == Distinct && m["of"].Key == nil:
		es.At(n, "%s: kind distinct needs of: the event field whose distinct values are counted (e.g. of: account_id)", what)
		bad = true
	case f.Kind != Distinct && m["of"].Key != nil:
		es.At(m["of"].Key, "%s: of applies to distinct, not %s", what, f.Kind)
		bad = true
	}
	if bad {
		return nil, f.Name
	}
	names := make([]string, len(f.Key))
	for i, k := range f.Key {
		names[i] = k.Name
	}
	f.Entity = strings.Join(names, "+")
	return f, f.Name
}

func kindList() []string {
	out := make([]string, 0, len(kindNames))
	for n := range kindNames {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// checkTypes refuses a feature that reads a declared event field it cannot
// use: a sum, avg or max of something other than a number, a key or a
// distinct count of an object or a list.
func checkTypes(es *policyfile.Errors, s *eventschema.Schema, f *Feature, n *yaml.Node) {
	if !s.Declared() {
		return
	}
	what := fmt.Sprintf("feature %q", f.Name)
	if f.Field.Name != "" {
		if t, ok := s.Lookup(f.Field.Name, f.EventTypes); ok && !t.Numeric() {
			es.AtPos(f.Line, n.Column, "%s: field %s is declared as %s; %s needs a number", what, f.Field.Name, t, f.Kind)
		}
	}
	for _, p := range append(append([]Path(nil), f.Key...), f.Of) {
		if p.Name == "" {
			continue
		}
		if t, ok := s.Lookup(p.Name, f.EventTypes); ok && (t == eventschema.Object || t >= eventschema.List) {
			es.AtPos(f.Line, n.Column, "%s: %s is declared as %s; keys and distinct values are strings, numbers or booleans", what, p.Name, t)
		}
	}
}
