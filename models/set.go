package models

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/valyala/fastjson"
	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/policyfile"
)

// File is the name of the model list in a policy directory.
const File = "models.yaml"

// FormatXGBoostJSON is the one model format read: XGBoost's JSON model.
const FormatXGBoostJSON = "xgboost-json"

// Set is a loaded models.yaml: immutable, safe for concurrent use.
type Set struct {
	Models []*Model // in file order
	byName map[string]*Model
}

// Model is one entry of models.yaml with its ensemble.
type Model struct {
	// Name is how rules read its prediction: model.<name>.
	Name string
	// File is the model file, within the policy directory; "" for a
	// model declared for training only (see Trained).
	File   string
	Format string
	// Inputs are what the model reads, in the order it was trained on.
	Inputs []Input
	// Line is where the entry starts in models.yaml.
	Line int
	// Ensemble is nil for a model declared without a file: its inputs
	// are compiled and exported (riskctl replay -features-out) so that it
	// can be trained, but nothing can read its prediction yet.
	*Ensemble
}

// Trained reports whether the model has its file, so that rules can read
// its prediction.
func (m *Model) Trained() bool { return m.Ensemble != nil }

// Input is one value a model reads: a feature, an event field, or an
// expression over them (a derived input).
type Input struct {
	// Name is the input's column: as rules name it for a feature or an
	// event field (features.card_txn_count_1h, event.amount), the model's
	// name and the input's for a derived one (fraud.amount_over_avg_90d).
	// A model's feature_names are these.
	Name string
	// Feature is the feature's index in the policy's features.Set; -1 for
	// an event field or a derived input.
	Feature int
	// Field is the event field of an event-field input.
	Field features.Path
	// Expr is a derived input's expression, in the rules' language;
	// package rules compiles it (ExprNode is where it is written, for
	// messages). "" for a feature or an event field.
	Expr     string
	ExprNode *yaml.Node
}

// Derived reports whether the input is an expression.
func (in *Input) Derived() bool { return in.Expr != "" }

// Model returns the model named name, or nil. A nil Set has none.
func (s *Set) Model(name string) *Model {
	if s == nil {
		return nil
	}
	return s.byName[name]
}

// All lists the models in file order. A nil Set has none.
func (s *Set) All() []*Model {
	if s == nil {
		return nil
	}
	return s.Models
}

// Names lists the models' names in file order.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s.Models))
	for i, m := range s.Models {
		out[i] = m.Name
	}
	return out
}

// FeatureInput is a feature's value as a model reads it: NaN (missing)
// when nil, 1 or 0 for a boolean, the number otherwise. riskctl replay
// -features-out writes the same values.
func FeatureInput(v features.Value, isBool bool) float64 {
	switch {
	case !v.Valid:
		return math.NaN()
	case isBool && v.Bool:
		return 1
	case isBool:
		return 0
	}
	return v.Num
}

// FieldInput is an event field's value as a model reads it: a number, 1 or
// 0 for a boolean, and NaN (missing) for anything else, absent, null or a
// string.
func FieldInput(v *fastjson.Value) float64 {
	if v == nil {
		return math.NaN()
	}
	switch v.Type() {
	case fastjson.TypeNumber:
		return v.GetFloat64()
	case fastjson.TypeTrue:
		return 1
	case fastjson.TypeFalse:
		return 0
	}
	return math.NaN()
}

var (
	nameRE  = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	fieldRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)
)

// Files lists the model files a models.yaml names, for a reader that must
// fetch them before Load (within its own bounds): only plain names of
// files in the directory, so that a path leading elsewhere is never
// opened. Problems are left for Load to report.
func Files(data []byte) []string {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	var out []string
	for _, list := range values(doc.Content[0], "models") {
		for _, m := range list.Content { // nothing when not a list
			for _, f := range values(m, "file") {
				if f.Kind == yaml.ScalarNode && plainName(f.Value) {
					out = append(out, f.Value)
				}
			}
		}
	}
	return out
}

// values returns the values of key in mapping n (more than one when the
// key is repeated, which Load refuses); none when n is not a mapping.
func values(n *yaml.Node, key string) []*yaml.Node {
	var out []*yaml.Node
	for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			out = append(out, n.Content[i+1])
		}
	}
	return out
}

// plainName reports whether name is a file directly in the directory and
// not a hidden one (editors' temporaries, Kubernetes' ..data).
func plainName(name string) bool {
	return name != "" && !strings.ContainsAny(name, `/\`) && !strings.HasPrefix(name, ".")
}

// Load reads models.yaml (data; file names it in messages) and every model
// it lists, fetched by read (by its name in the directory), and checks each
// model against its inputs: unknown features, event fields that are not
// field names, an input count other than the model's, input names other
// than those the model was trained with. Every problem of every model is
// returned, each as file:line:col: message.
func Load(file string, data []byte, read func(name string) ([]byte, error), feats *features.Set) (*Set, error) {
	es := &policyfile.Errors{File: file}
	root, err := policyfile.Parse(file, data)
	if err != nil {
		return nil, err
	}
	set := &Set{byName: map[string]*Model{}}
	top := policyfile.Mapping(es, root, File, "!models")
	list, ok := top["models"]
	if !ok {
		return nil, es.Err()
	}
	if list.Value.Kind != yaml.SequenceNode {
		es.At(list.Value, "models must be a list of models")
		return nil, es.Err()
	}
	ensembles := map[string]*Ensemble{} // one read per file
	for _, n := range list.Value.Content {
		m := loadModel(es, n, read, feats, ensembles)
		if m == nil {
			continue
		}
		if prev, dup := set.byName[m.Name]; dup {
			es.At(n, "duplicate model name %s (first at line %d)", policyfile.Quote(m.Name), prev.Line)
			continue
		}
		set.byName[m.Name] = m
		set.Models = append(set.Models, m)
	}
	if err := es.Err(); err != nil {
		return nil, err
	}
	return set, nil
}

func loadModel(es *policyfile.Errors, n *yaml.Node, read func(string) ([]byte, error), feats *features.Set, ensembles map[string]*Ensemble) *Model {
	f := policyfile.Mapping(es, n, "model", "!name", "file", "format", "!inputs", "description")
	if f == nil {
		return nil
	}
	before := es.Len()
	m := &Model{Line: n.Line}
	if v, ok := f["name"]; ok {
		if s, ok := policyfile.String(es, v.Value, "name"); ok {
			switch {
			case !nameRE.MatchString(s):
				es.At(v.Value, "model name %s must be lower case letters, digits and _ (rules read it as model.<name>)", policyfile.Quote(s))
			case s == "event" || s == "features":
				// Its derived inputs' columns would read as event fields
				// or features.
				es.At(v.Value, "model name %s is reserved: name it for what it predicts", policyfile.Quote(s))
			}
			m.Name = s
		}
	}
	if v, ok := f["format"]; ok {
		if s, ok := policyfile.String(es, v.Value, "format"); ok && s != FormatXGBoostJSON {
			es.At(v.Value, "format %s: the one format read is %s (XGBoost's save_model(\"m.json\"))", policyfile.Quote(s), FormatXGBoostJSON)
		}
		m.Format = v.Value.Value
	}
	inputsOK := false
	if v, ok := f["inputs"]; ok {
		m.Inputs, inputsOK = inputs(es, v.Value, m.Name, feats)
	}
	v, ok := f["file"]
	if !ok {
		// Declared for training: its inputs are all there is to check.
		if fm, ok := f["format"]; ok {
			es.At(fm.Key, "format without file: a model is declared without its file only to be trained (its inputs exported); add file: once it is")
		}
		if !inputsOK || es.Len() > before {
			return nil
		}
		return m
	}
	if _, ok := f["format"]; !ok {
		es.At(v.Key, "file needs format: %s", FormatXGBoostJSON)
		return nil
	}
	name, ok := policyfile.String(es, v.Value, "file")
	if !ok {
		return nil
	}
	if !plainName(name) {
		es.At(v.Value, "file %s must name a file in the policy directory itself (no / and not hidden)", policyfile.Quote(name))
		return nil
	}
	m.File = name
	if m.Format != FormatXGBoostJSON {
		return nil
	}
	e, ok := ensembles[name]
	if !ok {
		data, err := read(name)
		if err == nil {
			e, err = ReadXGBoost(data)
		}
		if err != nil {
			es.At(v.Value, "model %s: %v", name, err)
			return nil
		}
		ensembles[name] = e
	}
	m.Ensemble = e
	if !inputsOK {
		return nil
	}
	in := f["inputs"].Value
	if len(m.Inputs) != e.Inputs() {
		es.At(in, "%d inputs listed, but the model reads %d (its num_feature)", len(m.Inputs), e.Inputs())
		return nil
	}
	if e.Names != nil {
		for i, x := range m.Inputs {
			if x.Name != e.Names[i] {
				es.At(in.Content[i], "input %d is %s, but the model was trained with %s there (its feature_names)", i+1, policyfile.Quote(x.Name), policyfile.Quote(e.Names[i]))
			}
		}
	}
	if es.Len() > before {
		return nil
	}
	return m
}

// inputs reads model's input list: features.<name>, event.<field> or
// {name: x, expr: ...}; false when one of them is not good.
func inputs(es *policyfile.Errors, n *yaml.Node, model string, feats *features.Set) ([]Input, bool) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		es.At(n, "inputs must be a non-empty list of features.<name>, event.<field> and {name: x, expr: ...}, in the order the model was trained on")
		return nil, false
	}
	if len(n.Content) > MaxInputs {
		es.At(n, "%d inputs, more than the %d a model may read", len(n.Content), MaxInputs)
		return nil, false
	}
	var out []Input
	seen := map[string]int{}
	for _, c := range n.Content {
		if c.Kind == yaml.MappingNode {
			in, ok := derived(es, c, model)
			if !ok {
				continue
			}
			if line, dup := seen[in.Name]; dup {
				es.At(c, "input %s is listed twice (first at line %d)", policyfile.Quote(in.Name), line)
				continue
			}
			seen[in.Name] = c.Line
			out = append(out, in)
			continue
		}
		s, ok := policyfile.String(es, c, "input")
		if !ok {
			continue
		}
		if line, dup := seen[s]; dup {
			es.At(c, "input %s is listed twice (first at line %d)", policyfile.Quote(s), line)
			continue
		}
		seen[s] = c.Line
		in, err := input(s, feats)
		switch {
		case errors.Is(err, errBroken):
		case err != nil:
			es.At(c, "%v", err)
		default:
			out = append(out, in)
		}
	}
	return out, len(out) == len(n.Content)
}

// derived reads a derived input, {name: x, expr: "..."}: its expression is
// compiled with the rules (package rules), which reports its errors.
func derived(es *policyfile.Errors, n *yaml.Node, model string) (Input, bool) {
	f := policyfile.Mapping(es, n, "input", "!name", "!expr")
	name, okName := f["name"]
	src, okExpr := f["expr"]
	if !okName || !okExpr {
		return Input{}, false
	}
	s, ok := policyfile.String(es, name.Value, "input name")
	if !ok {
		return Input{}, false
	}
	if !nameRE.MatchString(s) {
		es.At(name.Value, "input name %s must be lower case letters, digits and _ (its column is %s.<name>)", policyfile.Quote(s), model)
		return Input{}, false
	}
	e, ok := policyfile.String(es, src.Value, "input expr")
	if !ok {
		return Input{}, false
	}
	if strings.TrimSpace(e) == "" {
		es.At(src.Value, "input %s: expr is empty", policyfile.Quote(s))
		return Input{}, false
	}
	return Input{Name: model + "." + s, Feature: -1, Expr: e, ExprNode: src.Value}, true
}

// errBroken is an input naming a feature that features.yaml declares but
// could not load: that error is reported there, not again here.
var errBroken = errors.New("broken feature")

func input(s string, feats *features.Set) (Input, error) {
	if name, ok := strings.CutPrefix(s, "features."); ok {
		i, ok := feats.Index(name)
		if !ok && feats.Broken(name) {
			return Input{}, errBroken
		}
		if !ok {
			msg := fmt.Sprintf("unknown feature %s", policyfile.Quote(name))
			if sug := policyfile.Suggest(name, feats.Names()); sug != "" {
				msg += fmt.Sprintf(" (did you mean features.%s?)", sug)
			} else {
				msg += " (features are declared in features.yaml)"
			}
			return Input{}, errors.New(msg)
		}
		return Input{Name: s, Feature: i}, nil
	}
	if field, ok := strings.CutPrefix(s, "event."); ok && fieldRE.MatchString(field) {
		return Input{Name: s, Feature: -1, Field: features.NewPath(field)}, nil
	}
	return Input{}, fmt.Errorf("input %s must be features.<name> or event.<field>", policyfile.Quote(s))
}
