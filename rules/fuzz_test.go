package rules_test

import (
	"testing"
	"testing/fstest"

	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

// FuzzLoad loads arbitrary features.yaml and ruleset files: the loader
// returns a policy or errors, never panics. Seeds are in
// testdata/fuzz/FuzzLoad plus the example policy.
func FuzzLoad(f *testing.F) {
	feats, _ := example.FS.ReadFile("features.yaml")
	checkout, _ := example.FS.ReadFile("checkout.yaml")
	f.Add(feats, checkout)
	f.Add([]byte(goodFeatures), []byte(goodRuleset))
	f.Add([]byte(goodFeatures), []byte("name: next\nshadow_of: live\ntraffic: 2.5%\nsplit_key: account_id\nthresholds: {step_up: 1, block: 2}\nrules: [{id: a, when: 'true', score: 1}]\n"))
	f.Fuzz(func(t *testing.T, features, ruleset []byte) {
		fsys := fstest.MapFS{
			"features.yaml": &fstest.MapFile{Data: features},
			"r.yaml":        &fstest.MapFile{Data: ruleset},
			// A live ruleset for the fuzzed one to challenge.
			"live.yaml": &fstest.MapFile{Data: []byte("name: live\nevent_types: [payout]\nthresholds: {step_up: 1, block: 2}\nrules: [{id: a, when: 'true', score: 1}]\n")},
		}
		p, err := rules.Load(fsys, "p")
		if err == nil && p == nil {
			t.Fatal("no policy and no error")
		}
	})
}
