package rules_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/riskd/riskd/rules"
)

const modelFeatures = `features:
  - {name: card_txn_count_1h, kind: count, key: card_id, window: 1h}
  - {name: a, kind: count, key: a_id, window: 1h}
  - {name: b, kind: avg, key: a_id, field: amount, window: 1h}
  - {name: c, kind: seen, key: [a_id, card_id]}
`

const modelRuleset = "name: checkout\nevent_types: [checkout]\nthresholds: {step_up: 50, block: 90}\nrules:\n  - {id: r, when: features.a > 3, score: 60}\n"

const modelList = `models:
  - name: fraud
    file: fraud.json
    format: xgboost-json
    inputs: [event.amount, features.card_txn_count_1h, features.a, features.b, features.c, event.d]
`

func testModel(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "models", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// modelDir writes a policy directory with models.yaml and its model.
func modelDir(t *testing.T, list string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"features.yaml": []byte(modelFeatures), "checkout.yaml": []byte(modelRuleset),
		"models.yaml": []byte(list), "fraud.json": testModel(t, "fraud.json"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestModelsInThePolicyDirectory: models.yaml is no ruleset; it and its
// models are read with the directory, within its bounds, and a problem
// with either fails the load with its position.
func TestModelsInThePolicyDirectory(t *testing.T) {
	if _, err := loadDirWithin(t, modelDir(t, modelList), rules.DirOptions{}); err != nil {
		t.Fatalf("a good directory: %v", err)
	}
	fsys := fstest.MapFS{
		"features.yaml": {Data: []byte(modelFeatures)}, "checkout.yaml": {Data: []byte(modelRuleset)},
		"models.yaml": {Data: []byte(modelList)}, "fraud.json": {Data: testModel(t, "fraud.json")},
	}
	if _, err := rules.Load(fsys, "p"); err != nil {
		t.Fatalf("Load: %v", err)
	}
	delete(fsys, "fraud.json")
	if _, err := rules.Load(fsys, "p"); err == nil || err.Error() != "p/models.yaml:3:11: model fraud.json: p/fraud.json: file does not exist" {
		t.Errorf("Load without the model: %v", err)
	}

	outside := filepath.Join(t.TempDir(), "model.json")
	os.WriteFile(outside, testModel(t, "fraud.json"), 0o644)
	for _, tc := range []struct {
		name  string
		list  string
		setup func(dir string)
		opts  rules.DirOptions
		want  []string // after the directory's name
	}{
		{name: "unknown feature and a missing model", list: strings.Replace(modelList, "features.a,", "features.aa,", 1) + "  - {name: other, file: absent.json, format: xgboost-json, inputs: [event.x]}\n", want: []string{
			`/models.yaml:5:56: unknown feature "aa" (did you mean features.a?)`,
			`/models.yaml:6:25: model absent.json: `, `/absent.json: no such file or directory`,
		}},
		{name: "a model too large", list: modelList, opts: rules.DirOptions{MaxFileBytes: 10_000}, want: []string{
			`/models.yaml:3:11: model fraud.json: `, `/fraud.json: 127664 bytes, larger than the limit of 10000 bytes for a policy file (-rules-max-file-bytes raises it)`,
		}},
		{name: "a model leading outside", list: modelList, setup: func(dir string) {
			os.Remove(filepath.Join(dir, "fraud.json"))
			os.Symlink(outside, filepath.Join(dir, "fraud.json"))
		}, want: []string{`/models.yaml:3:11: model fraud.json: `, `/fraud.json: a symlink to ` + outside + `, outside the policy directory: refused`}},
		{name: "a directory", list: modelList, setup: func(dir string) {
			os.Remove(filepath.Join(dir, "fraud.json"))
			os.Mkdir(filepath.Join(dir, "fraud.json"), 0o755)
		}, want: []string{`/models.yaml:3:11: model fraud.json: `, `/fraud.json: is a directory, not a file`}},
		{name: "a broken list beside a broken ruleset", list: "models: 7\n", setup: func(dir string) {
			os.WriteFile(filepath.Join(dir, "checkout.yaml"), []byte(strings.Replace(modelRuleset, "features.a", "features.z", 1)), 0o644)
		}, want: []string{`/models.yaml:1:9: models must be a list of models`, `/checkout.yaml:5:28: rule r: when: unknown feature "z"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := modelDir(t, tc.list)
			if tc.setup != nil {
				tc.setup(dir)
			}
			_, err := loadDirWithin(t, dir, tc.opts)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks %q", err, w)
				}
			}
		})
	}
}

// TestReloadModelsAllOrNothing: a model that breaks rejects the reload
// whole; a changed model is a change of the directory.
func TestReloadModelsAllOrNothing(t *testing.T) {
	dir := modelDir(t, modelList)
	p, err := rules.LoadDir(dir, rules.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var applied atomic.Int32
	rl := rules.NewReloader(rules.ReloaderOptions{Dir: dir, Apply: func(*rules.Policy) { applied.Add(1) }})
	rl.Loaded(p)
	model := filepath.Join(dir, "fraud.json")
	good := testModel(t, "fraud.json")
	for _, step := range []struct {
		model []byte
		want  string // "" applied, or the error
	}{
		{good, rules.ErrUnchanged.Error()},
		{good[:len(good)/2], "models.yaml:3:11: model fraud.json: not an XGBoost JSON model: unexpected end of JSON input"},
		{good, rules.ErrUnchanged.Error()}, // what is served is back
		{append(good, '\n'), ""},
		{testModel(t, "amount.json"), "models.yaml:5:13: 6 inputs listed, but the model reads 3 (its num_feature)"},
	} {
		before := applied.Load()
		if err := os.WriteFile(model, step.model, 0o644); err != nil {
			t.Fatal(err)
		}
		err := rl.Reload()
		switch {
		case step.want == "" && err != nil:
			t.Errorf("reload: %v", err)
		case step.want != "" && (err == nil || !strings.Contains(err.Error(), step.want)):
			t.Errorf("reload: %v, want %q", err, step.want)
		}
		if got := applied.Load() - before; got != map[bool]int32{true: 1, false: 0}[step.want == ""] {
			t.Errorf("%d policies applied for a reload ending in %v", got, err)
		}
	}
}
