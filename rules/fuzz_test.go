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
	f.Fuzz(func(t *testing.T, features, ruleset []byte) {
		fsys := fstest.MapFS{
			"features.yaml": &fstest.MapFile{Data: features},
			"r.yaml":        &fstest.MapFile{Data: ruleset},
		}
		p, err := rules.Load(fsys, "p")
		if err == nil && p == nil {
			t.Fatal("no policy and no error")
		}
	})
}
