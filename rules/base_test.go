package rules_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/rules"
)

const baseFeatures = `event_fields:
  - {name: amount, type: number, event_types: [checkout]}
  - {name: note, type: string, event_types: [checkout]}
features:
  - {name: avg, kind: avg, key: a_id, field: amount, window: 1h}
  - {name: n, kind: count, key: a_id, window: 1h}
  - {name: unused, kind: count, key: b_id, window: 1h}
`

// baseModels uses models/testdata/small.json, whose two inputs have no
// names: one event field and one derived input.
const baseModels = `models:
  - name: fraud
    file: small.json
    format: xgboost-json
    inputs:
      - event.amount
      - {name: ratio, expr: event.amount / features.avg}
  - name: next
    inputs:
      - features.unused
      - {name: big, expr: event.amount > 100}
`

func basePolicy(t *testing.T, ruleset, models string) (*rules.Policy, error) {
	t.Helper()
	fsys := map[string]string{"features.yaml": baseFeatures, "checkout.yaml": ruleset, "models.yaml": models, "small.json": string(testModel(t, "small.json"))}
	return loadFS(fsys)
}

// TestModelFirstRuleset: a ruleset's base is a model's prediction at a
// scale; the model's inputs, derived ones included, are fetched with the
// rules' features.
func TestModelFirstRuleset(t *testing.T) {
	p, err := basePolicy(t, `name: checkout
event_types: [checkout]
base: {model: fraud, scale: 1000}
thresholds: {step_up: 500, block: 800}
rules:
  - {id: big, when: event.amount > 220, action: block}
  - {id: many, when: features.n > 3, score: 50}
  - {id: huge, when: features.n > 30, score: 1200}
`, baseModels)
	if err != nil {
		t.Fatal(err)
	}
	rs := p.ForType("checkout")
	if rs.Base == nil || rs.Base.Model.Name != "fraud" || rs.Base.Scale != 1000 || rs.Slots[rs.Base.Slot()].Model != rs.Base.Model {
		t.Fatalf("base %+v", rs.Base)
	}
	if got := rs.Base.Points(0.1234); got != 123 {
		t.Errorf("points %d", got)
	}
	if got := rs.Base.Points(math.NaN()); got != 0 {
		t.Errorf("points of NaN %d", got)
	}
	// avg (the derived input's) and n (a rule's); not unused, which only
	// a model no ruleset reads has.
	if len(rs.Reads) != 2 || rs.Reads[0] != 0 || rs.Reads[1] != 1 {
		t.Errorf("reads %v", rs.Reads)
	}
	want := []string{`p/checkout.yaml:8: rule "huge": its 1200 points dwarf the base (model fraud at scale 1000)`}
	// (features.yaml's lone key b_id is warned about too: not this test's.)
	if !slices.ContainsFunc(p.Warnings, func(w string) bool { return strings.HasPrefix(w, want[0]) }) {
		t.Errorf("warnings %q, want %q", p.Warnings, want)
	}
	if len(p.ModelInputs) != 2 || p.ModelInputs[1].Model.Trained() || len(p.ModelInputs[1].Reads()) != 1 {
		t.Errorf("model inputs %+v", p.ModelInputs)
	}
}

// TestDerivedInputs computes derived inputs as the engine does: typed,
// with a nil operand, a division by zero and a boolean.
func TestDerivedInputs(t *testing.T) {
	p, err := basePolicy(t, "name: checkout\nevent_types: [checkout]\nbase: {model: fraud, scale: 100}\nthresholds: {step_up: 50, block: 80}\nrules:\n  - {id: r, when: 'true', score: 1}\n", baseModels)
	if err != nil {
		t.Fatal(err)
	}
	mi := p.ModelInputs[0]
	env := mi.NewEnv()
	var parser fastjson.Parser
	for _, tc := range []struct {
		event string
		avg   features.Value
		want  float64
	}{
		{`{"amount": 50}`, features.Value{Valid: true, Num: 20}, 2.5},
		{`{"amount": 50}`, features.Value{}, math.NaN()},                    // nil: an error, missing
		{`{"amount": 50}`, features.Value{Valid: true, Num: 0}, math.NaN()}, // +Inf: missing
		{`{"amount": 0}`, features.Value{Valid: true, Num: 0}, math.NaN()},  // NaN
		{`{}`, features.Value{Valid: true, Num: 3}, math.NaN()},
	} {
		ev := parse(t, &parser, tc.event)
		env.Reset()
		for i, s := range mi.Slots() {
			if s.Feature >= 0 {
				env.SetFeature(i, tc.avg)
			} else {
				env.SetField(i, ev.Get(s.Path.Parts...))
			}
		}
		got := mi.Derived(1, env)
		if got != tc.want && !(math.IsNaN(got) && math.IsNaN(tc.want)) {
			t.Errorf("%s avg %+v: %v, want %v", tc.event, tc.avg, got, tc.want)
		}
	}
	next := p.ModelInputs[1]
	env = next.NewEnv()
	env.Reset()
	for i := range next.Slots() {
		env.SetField(i, parse(t, &parser, `{"amount": 101}`).Get("amount"))
	}
	if got := next.Derived(1, env); got != 1 {
		t.Errorf("a boolean input: %v", got)
	}
}

func TestModelFirstErrors(t *testing.T) {
	const head = "name: checkout\nevent_types: [checkout]\nthresholds: {step_up: 50, block: 80}\n"
	const rule = "rules:\n  - {id: r, when: 'true', score: 1}\n"
	for _, tc := range []struct {
		name, ruleset, models string
		want                  []string
	}{
		{"unknown base model", head + "base: {model: frod, scale: 1000}\n" + rule, baseModels, []string{
			`p/checkout.yaml:4:15: base: unknown model "frod" (did you mean fraud?)`}},
		{"untrained base model", head + "base: {model: next, scale: 1000}\n" + rule, baseModels, []string{
			`p/checkout.yaml:4:15: base: model "next" has no file yet`}},
		{"scale", head + "base: {model: fraud, scale: 0}\n" + rule, baseModels, []string{
			`p/checkout.yaml:4:29: base: scale 0 is out of range`}},
		{"base keys", head + "base: {model: fraud}\n" + rule, baseModels, []string{
			`p/checkout.yaml:4:7: base is missing required key "scale"`}},
		{"untrained model read", head + "rules:\n  - {id: r, when: model.next > 0.5, score: 1}\n", baseModels, []string{
			`p/checkout.yaml:5:25: rule r: when: model "next" has no file yet`}},
		{"derived input errors", head + rule, `models:
  - name: next
    inputs:
      - {name: a, expr: event.amount / features.avgg}
      - {name: b, expr: event.note}
      - {name: c, expr: model.fraud * 2}
      - {name: d, expr: event.amount +}
`, []string{
			`p/models.yaml:4:49: model next: input "next.a": unknown feature "avgg" (did you mean features.avg?)`,
			`p/models.yaml:5:25: model input "next.b": the expression gives string; a model reads numbers and booleans`,
			`p/models.yaml:6:31: model next: input "next.c": an input of model next reads event.*, features.* and lists.*, not a model's prediction`,
			`p/models.yaml:7:`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := basePolicy(t, tc.ruleset, tc.models)
			if err == nil {
				t.Fatal("loaded")
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(tc.want) {
				t.Fatalf("errors:\n%s\nwant:\n%s", err, strings.Join(tc.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("error %d:\n %s\nwant\n %s", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func parse(t *testing.T, p *fastjson.Parser, s string) *fastjson.Value {
	t.Helper()
	v, err := p.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
