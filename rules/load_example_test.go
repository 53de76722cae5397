package rules_test

import (
	"testing"

	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

func TestExamplePolicyLoads(t *testing.T) {
	p, err := rules.Load(example.FS, "rules/example")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rulesets) != 3 {
		t.Fatalf("got %d rulesets, want 3", len(p.Rulesets))
	}
}
