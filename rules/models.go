package rules

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"reflect"
	"slices"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/models"
	"github.com/riskd/riskd/policyfile"
)

// modelSource is what a policy directory holds for models: models.yaml
// and the model files it names, read with the rest of the directory (and
// within its bounds) so that a reload reads, hashes and accepts or
// rejects them with everything else.
type modelSource struct {
	list  []byte               // models.yaml; nil when the directory has none
	files map[string]modelFile // by name in the directory
}

type modelFile struct {
	data []byte
	err  error // why it could not be read
}

// readModels reads models.yaml and its model files with read, which
// returns a file's bytes or why not; has reports whether the directory
// holds models.yaml at all.
func readModels(has bool, read func(name string) ([]byte, error)) (modelSource, error) {
	if !has {
		return modelSource{}, nil
	}
	list, err := read(models.File)
	if err != nil {
		return modelSource{}, err
	}
	src := modelSource{list: list, files: map[string]modelFile{}}
	for _, name := range models.Files(list) {
		if _, done := src.files[name]; !done {
			data, err := read(name)
			src.files[name] = modelFile{data, err}
		}
	}
	return src, nil
}

// readFSModels is readModels on an fs.FS (Load).
func readFSModels(fsys fs.FS, dir string) (modelSource, error) {
	_, err := fs.Stat(fsys, models.File)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return modelSource{}, fmt.Errorf("%s: %w", path.Join(dir, models.File), unwrapPathError(err))
	}
	return readModels(err == nil, func(name string) ([]byte, error) {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path.Join(dir, name), unwrapPathError(err))
		}
		return data, nil
	})
}

// load checks models.yaml and every model against the features: a model
// that cannot be read or does not fit its inputs fails the whole policy.
func (m modelSource) load(dir string, set *features.Set) (*models.Set, error) {
	if m.list == nil {
		return nil, nil
	}
	return models.Load(path.Join(dir, models.File), m.list, func(name string) ([]byte, error) {
		f, ok := m.files[name]
		if !ok { // models.Files lists every plain name Load reads
			return nil, fmt.Errorf("not read with the directory")
		}
		return f.data, f.err
	}, set)
}

// hash adds models.yaml and the model files to a directory's digest.
func (m modelSource) hash(write func(name string, data []byte)) {
	if m.list == nil {
		return
	}
	write(models.File, m.list)
	names := make([]string, 0, len(m.files))
	for n := range m.files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		f := m.files[n]
		if f.err != nil {
			// Unreadable: the load fails, and the next read is a change.
			write(n, []byte(f.err.Error()))
			continue
		}
		write(n, f.data)
	}
}

// ModelInputs computes one model's inputs for an event: features and event
// fields as they are, and derived inputs (expressions in models.yaml) with
// the rules' compiler, typed and run like a rule in an environment of
// their own (Slots, filled like a ruleset's).
type ModelInputs struct {
	Model *models.Model
	// Index is its position in Policy.ModelInputs (and in models.yaml).
	Index int
	shape *Ruleset   // the derived inputs' environment: Slots and layout, no rules
	progs []*program // per input: nil for a feature or an event field
}

// Slots are what the environment of the derived inputs is filled with for
// each event; none when the model has no derived input.
func (mi *ModelInputs) Slots() []Slot { return mi.shape.Slots }

// Reads lists the features (indexes into Policy.Features) the model reads,
// directly or through its derived inputs, in index order.
func (mi *ModelInputs) Reads() []int { return mi.shape.Reads }

// NewEnv returns an environment for the derived inputs.
func (mi *ModelInputs) NewEnv() *Env { return mi.shape.NewEnv() }

// Derived returns derived input i's value in e, filled with Slots for the
// event: a number, 1 or 0 for a boolean. It is missing (NaN, which sends
// the event down each tree's default branch) when the expression fails (a
// nil value in arithmetic: nil semantics are the rules'), gives nil or
// anything but a number or a boolean, or a value that is not finite (a
// division by zero): XGBoost trains on none of these, so the model learnt
// them as missing too.
func (mi *ModelInputs) Derived(i int, e *Env) float64 {
	v, err := e.run(mi.progs[i])
	if err != nil {
		return math.NaN()
	}
	var x float64
	switch v := v.(type) {
	case float64:
		x = v
	case int:
		x = float64(v)
	case bool:
		if v {
			return 1
		}
		return 0
	default:
		return math.NaN()
	}
	if math.IsInf(x, 0) {
		return math.NaN()
	}
	return x
}

// compileModelInputs compiles the derived inputs of every model of ms, for
// the event types of the rulesets that read it (types, by model name; a
// model no ruleset reads is typed for every event type). Errors are
// reported in models.yaml at the expression.
func compileModelInputs(ms *models.Set, file string, set *features.Set, lists map[string]*List, types map[string][]string, warns *policyfile.Errors) ([]*ModelInputs, error) {
	if ms == nil {
		return nil, nil
	}
	es := &policyfile.Errors{File: file}
	out := make([]*ModelInputs, len(ms.Models))
	for mi, m := range ms.Models {
		c := &compiler{es: es, warns: warns, features: set, lists: lists, inputsOf: m.Name}
		x := &ModelInputs{Model: m, Index: mi, progs: make([]*program, len(m.Inputs)), shape: &Ruleset{}}
		for i, in := range m.Inputs {
			if in.Derived() {
				x.progs[i] = c.compile(in.ExprNode, in.Expr, 0, fmt.Sprintf("model %s: input %s", m.Name, policyfile.Quote(in.Name)))
			}
		}
		c.finish(x.shape, types[m.Name])
		for i, in := range m.Inputs {
			if in.Derived() && x.progs[i] != nil && x.progs[i].fast != nil {
				checkInputType(c, in, x.progs[i])
			}
		}
		// The plain inputs' features are read with the derived ones'.
		reads := map[int]bool{}
		for _, fi := range x.shape.Reads {
			reads[fi] = true
		}
		for _, in := range m.Inputs {
			if in.Feature >= 0 {
				reads[in.Feature] = true
			}
		}
		x.shape.Reads = x.shape.Reads[:0]
		for fi := range set.Features {
			if reads[fi] {
				x.shape.Reads = append(x.shape.Reads, fi)
			}
		}
		out[mi] = x
	}
	if err := es.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// checkInputType refuses a derived input whose expression cannot give a
// number or a boolean (a string, a list…): a model reads numbers.
func checkInputType(c *compiler, in models.Input, p *program) {
	t := p.fast.Node().Type()
	if t == nil {
		return
	}
	switch t.Kind() {
	case reflect.Float64, reflect.Float32, reflect.Int, reflect.Int64, reflect.Int32, reflect.Bool, reflect.Interface:
		return
	}
	c.at(c.es, in.ExprNode, 0, 1, 0, "model input %s: the expression gives %s; a model reads numbers and booleans", policyfile.Quote(in.Name), t)
}
