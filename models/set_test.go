package models

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/features"
)

func testFeatures(t *testing.T) *features.Set {
	t.Helper()
	set, err := features.Parse("p/features.yaml", []byte(`features:
  - {name: card_txn_count_1h, kind: count, key: card_id, window: 1h}
  - {name: a, kind: count, key: a_id, window: 1h}
  - {name: b, kind: avg, key: a_id, field: amount, window: 1h}
  - {name: c, kind: seen, key: [a_id, card_id]}
`))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// readTestdata reads model files from testdata, as the policy directory
// would hold them.
func readTestdata(name string) ([]byte, error) {
	if name == "garbage.json" {
		return []byte("not a model"), nil
	}
	return os.ReadFile(filepath.Join("testdata", name))
}

const fraudInputs = `[event.amount, features.card_txn_count_1h, features.a, features.b, features.c, event.d]`

func TestLoad(t *testing.T) {
	feats := testFeatures(t)
	set, err := Load("p/models.yaml", []byte(`models:
  - name: fraud
    description: the test classifier
    file: fraud.json
    format: xgboost-json
    inputs: `+fraudInputs+`
  - name: amount
    file: amount.json
    format: xgboost-json
    inputs: [event.amount, event.billing.amount, features.b]
  - name: fraud_again
    file: fraud.json
    format: xgboost-json
    inputs: `+fraudInputs+`
`), readTestdata, feats)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(set.Names(), " "); got != "fraud amount fraud_again" {
		t.Errorf("names %s", got)
	}
	m := set.Model("amount")
	if m == nil || m.Line != 7 || m.File != "amount.json" || m.Objective != "reg:squarederror" {
		t.Fatalf("amount: %+v", m)
	}
	b, _ := feats.Index("b")
	want := []Input{{Name: "event.amount", Feature: -1, Field: features.NewPath("amount")}, {Name: "event.billing.amount", Feature: -1, Field: features.NewPath("billing.amount")}, {Name: "features.b", Feature: b}}
	for i, in := range m.Inputs {
		if in.Name != want[i].Name || in.Feature != want[i].Feature || strings.Join(in.Field.Parts, ".") != strings.Join(want[i].Field.Parts, ".") {
			t.Errorf("input %d %+v, want %+v", i, in, want[i])
		}
	}
	if set.Model("fraud").Ensemble != set.Model("fraud_again").Ensemble {
		t.Error("one file read twice")
	}
	if set.Model("nope") != nil || (*Set)(nil).Model("fraud") != nil || (*Set)(nil).Names() != nil {
		t.Error("a model that is not there")
	}
}

// TestLoadErrors: every problem of every model, each at its file:line:col.
func TestLoadErrors(t *testing.T) {
	feats := testFeatures(t)
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"not a mapping", "- a\n", []string{"p/models.yaml:1:1: models.yaml must be a mapping, got a list"}},
		{"no models", "model: []\n", []string{
			`p/models.yaml:1:1: unknown key "model" in models.yaml (did you mean "models"?)`,
			`p/models.yaml:1:1: models.yaml is missing required key "models"`}},
		{"models not a list", "models: {}\n", []string{"p/models.yaml:1:9: models must be a list of models"}},
		{"unknown key, missing keys", "models:\n  - name: x\n    file: fraud.json\n    fromat: xgboost-json\n", []string{
			`p/models.yaml:2:5: model is missing required key "inputs"`,
			`p/models.yaml:3:5: file needs format: xgboost-json`,
			`p/models.yaml:4:5: unknown key "fromat" in model (did you mean "format"?)`}},
		{"format without file", "models:\n  - {name: x, format: xgboost-json, inputs: [event.a]}\n", []string{
			`p/models.yaml:2:15: format without file: a model is declared without its file only to be trained`}},
		{"reserved name", "models:\n  - {name: features, inputs: [event.a, {name: x, expr: event.a}]}\n", []string{
			`p/models.yaml:2:12: model name "features" is reserved`}},
		{"derived inputs", "models:\n  - name: x\n    inputs:\n      - {name: Ratio, expr: event.a / event.b}\n      - {name: r, expr: ''}\n      - {name: r, exp: event.a}\n      - {name: s, expr: event.a}\n      - {name: s, expr: event.b}\n", []string{
			`p/models.yaml:4:16: input name "Ratio" must be lower case letters, digits and _ (its column is x.<name>)`,
			`p/models.yaml:5:25: input expr must not be empty`,
			`p/models.yaml:6:9: input is missing required key "expr"`,
			`p/models.yaml:6:19: unknown key "exp" in input (did you mean "expr"?)`,
			`p/models.yaml:8:9: input "x.s" is listed twice (first at line 7)`}},
		{"names", "models:\n  - {name: Fraud, file: fraud.json, format: xgboost-json, inputs: " + fraudInputs + "}\n  - {name: ok, file: fraud.json, format: xgboost-json, inputs: " + fraudInputs + "}\n  - {name: ok, file: fraud.json, format: xgboost-json, inputs: " + fraudInputs + "}\n", []string{
			`p/models.yaml:2:12: model name "Fraud" must be lower case letters, digits and _ (rules read it as model.<name>)`,
			`p/models.yaml:4:5: duplicate model name "ok" (first at line 3)`}},
		{"format", "models:\n  - {name: x, file: fraud.json, format: onnx, inputs: [event.a]}\n", []string{
			`p/models.yaml:2:41: format "onnx": the one format read is xgboost-json (XGBoost's save_model("m.json"))`}},
		{"file outside the directory", "models:\n  - {name: x, file: ../../etc/passwd, format: xgboost-json, inputs: [event.a]}\n  - {name: y, file: .hidden.json, format: xgboost-json, inputs: [event.a]}\n", []string{
			`p/models.yaml:2:21: file "../../etc/passwd" must name a file in the policy directory itself (no / and not hidden)`,
			`p/models.yaml:3:21: file ".hidden.json" must name a file in the policy directory itself`}},
		{"unreadable model", "models:\n  - {name: x, file: absent.json, format: xgboost-json, inputs: [event.a]}\n  - {name: y, file: garbage.json, format: xgboost-json, inputs: [event.a]}\n", []string{
			`p/models.yaml:2:21: model absent.json: open testdata/absent.json: no such file or directory`,
			`p/models.yaml:3:21: model garbage.json: not an XGBoost JSON model: invalid character 'o' in literal null (expecting 'u')`}},
		{"inputs", "models:\n  - name: x\n    file: amount.json\n    format: xgboost-json\n    inputs: [features.card_txn_count1h, event.amount, amount, event.a..b, features.zzz, event.amount, 7, []]\n", []string{
			`p/models.yaml:5:14: unknown feature "card_txn_count1h" (did you mean features.card_txn_count_1h?)`,
			`p/models.yaml:5:55: input "amount" must be features.<name> or event.<field>`,
			`p/models.yaml:5:63: input "event.a..b" must be features.<name> or event.<field>`,
			`p/models.yaml:5:75: unknown feature "zzz" (features are declared in features.yaml)`,
			`p/models.yaml:5:89: input "event.amount" is listed twice (first at line 5)`,
			`p/models.yaml:5:103: input "7" must be features.<name> or event.<field>`,
			`p/models.yaml:5:106: input must be a string, got a list`}},
		{"no inputs", "models:\n  - {name: x, file: amount.json, format: xgboost-json, inputs: []}\n", []string{
			`p/models.yaml:2:64: inputs must be a non-empty list of features.<name>, event.<field> and {name: x, expr: ...}, in the order the model was trained on`}},
		{"input count", "models:\n  - name: x\n    file: amount.json\n    format: xgboost-json\n    inputs: [event.amount, features.b]\n", []string{
			`p/models.yaml:5:13: 2 inputs listed, but the model reads 3 (its num_feature)`}},
		{"input order", "models:\n  - name: x\n    file: fraud.json\n    format: xgboost-json\n    inputs: [features.card_txn_count_1h, event.amount, features.a, features.b, features.c, event.d]\n", []string{
			`p/models.yaml:5:14: input 1 is "features.card_txn_count_1h", but the model was trained with "event.amount" there (its feature_names)`,
			`p/models.yaml:5:42: input 2 is "event.amount", but the model was trained with "features.card_txn_count_1h" there (its feature_names)`}},
		{"YAML syntax", "models: [\n", []string{"p/models.yaml:1: YAML syntax: did not find expected node content"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("p/models.yaml", []byte(tc.yaml), readTestdata, feats)
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

// TestLoadUntrained: a model declared without its file (to be trained)
// has its inputs, derived ones named after the model, and no ensemble.
func TestLoadUntrained(t *testing.T) {
	set, err := Load("p/models.yaml", []byte("models:\n  - name: fraud\n    inputs:\n      - event.amount\n      - {name: ratio, expr: event.amount / features.b}\n"), readTestdata, testFeatures(t))
	if err != nil {
		t.Fatal(err)
	}
	m := set.Model("fraud")
	if m.Trained() || len(m.Inputs) != 2 || m.Inputs[1].Name != "fraud.ratio" || !m.Inputs[1].Derived() || m.Inputs[1].Expr != "event.amount / features.b" || m.Inputs[1].Feature != -1 || m.Inputs[0].Derived() {
		t.Errorf("%+v", m.Inputs)
	}
}

// TestLoadBrokenFeature: an input naming a feature features.yaml declares
// but could not load is not reported again.
func TestLoadBrokenFeature(t *testing.T) {
	feats, ferr := features.Parse("p/features.yaml", []byte("features:\n  - {name: x, kind: cnt, key: a}\n"))
	if ferr == nil {
		t.Fatal("features.yaml loaded")
	}
	_, err := Load("p/models.yaml", []byte("models:\n  - {name: m, file: amount.json, format: xgboost-json, inputs: [features.x, event.a, event.b]}\n"), readTestdata, feats)
	if err != nil {
		t.Errorf("models.yaml: %v", err)
	}
}

func TestFiles(t *testing.T) {
	got := Files([]byte("models:\n  - {file: a.json}\n  - {file: ../b.json}\n  - {file: .c.json}\n  - {name: no file}\n  - {file: [x.json]}\n  - 7\n  - {file: d.json, file: e.json}\n"))
	if strings.Join(got, " ") != "a.json d.json e.json" {
		t.Errorf("files %v", got)
	}
	if Files([]byte("models: [")) != nil || Files([]byte("models: 7")) != nil {
		t.Error("files from a broken models.yaml")
	}
}

func TestInputValues(t *testing.T) {
	var p fastjson.Parser
	v, err := p.Parse(`{"n":12.5,"t":true,"f":false,"s":"12","z":null,"o":{}}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		got, want float64
	}{
		{FieldInput(v.Get("n")), 12.5}, {FieldInput(v.Get("t")), 1}, {FieldInput(v.Get("f")), 0},
		{FieldInput(v.Get("s")), math.NaN()}, {FieldInput(v.Get("z")), math.NaN()}, {FieldInput(v.Get("o")), math.NaN()}, {FieldInput(v.Get("absent")), math.NaN()},
		{FeatureInput(features.Value{Valid: true, Num: 3}, false), 3}, {FeatureInput(features.Value{}, false), math.NaN()},
		{FeatureInput(features.Value{Valid: true, Bool: true}, true), 1}, {FeatureInput(features.Value{Valid: true}, true), 0}, {FeatureInput(features.Value{}, true), math.NaN()},
	} {
		if tc.got != tc.want && !(math.IsNaN(tc.got) && math.IsNaN(tc.want)) {
			t.Errorf("%v, want %v", tc.got, tc.want)
		}
	}
}
