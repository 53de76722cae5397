package engine_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/rules"
)

// TestDecisionKept: the first answer's decision is kept and read back by
// event id, a retry keeps nothing new, and a decision with reasons too
// long to keep is cut to features.MaxDecisionBytes, still JSON, saying so.
func TestDecisionKept(t *testing.T) {
	e := engine.New(reviewPolicy(t), engine.Options{})
	ctx := context.Background()
	enginetest.Score(t, e, `{"id":"e1","type":"checkout","ts":1780000000000,"card_id":"c1","amount":5}`)
	enginetest.Score(t, e, `{"id":"e2","type":"checkout","ts":1780000001000,"card_id":"c1","amount":5}`)
	got, err := e.Decision(ctx, "e2")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"event_id":"e2","type":"checkout","ruleset":"checkout","version":"r1","decision":"review","score":60,"reasons":[{"rule":"velocity","score":60,"reason":"card used 1 times"}],"case_id":"c_`
	if !strings.HasPrefix(string(got), want) || !json.Valid(got) {
		t.Errorf("decision of e2:\n got %s\nwant %s…", got, want)
	}
	if got, err := e.Decision(ctx, "nope"); got != nil || err != nil {
		t.Errorf("decision of an id never scored: %q, %v", got, err)
	}

	// Reasons of 1 KiB each: over what is kept.
	long, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("features:\n  - {name: card_count_1h, kind: count, key: card_id, window: 1h}\n")},
		"checkout.yaml": {Data: []byte(`name: checkout
version: "1"
event_types: [checkout]
thresholds: {step_up: 30, block: 90}
rules:
` + func() string {
			var b strings.Builder
			for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z"} {
				b.WriteString("  - {id: rule_with_a_long_name_" + id + ", when: \"features.card_count_1h >= 0\", score: 1, reason: \"{{event.note}}\"}\n")
			}
			return b.String()
		}())},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	e = engine.New(long, engine.Options{})
	d := enginetest.Score(t, e, `{"id":"big","type":"checkout","ts":1780000000000,"card_id":"c1","note":"`+strings.Repeat("x", 900)+`"}`)
	if len(d.Reasons) != 26 {
		t.Fatalf("%d reasons, want 26", len(d.Reasons))
	}
	kept := d.AppendKept(nil)
	if len(kept) > features.MaxDecisionBytes || !json.Valid(kept) {
		t.Fatalf("kept %d bytes (at most %d), valid JSON %v: %s", len(kept), features.MaxDecisionBytes, json.Valid(kept), kept)
	}
	var k struct {
		Ruleset   string
		Score     int64
		Reasons   []map[string]any
		Truncated bool
	}
	if err := json.Unmarshal(kept, &k); err != nil {
		t.Fatal(err)
	}
	if k.Ruleset != "checkout" || k.Score != 26 || !k.Truncated || len(k.Reasons) == 0 || len(k.Reasons) >= 26 || k.Reasons[0]["reason"] != nil {
		t.Errorf("kept: %s", kept)
	}
	// A retry keeps nothing new: the first answer's decision stays.
	before, _ := e.Decision(ctx, "big")
	enginetest.Score(t, e, `{"id":"big","type":"checkout","ts":1780000000000,"card_id":"c1","note":"`+strings.Repeat("x", 900)+`"}`)
	if after, _ := e.Decision(ctx, "big"); string(after) != string(before) || before == nil {
		t.Errorf("after a retry: %s, before %s", after, before)
	}
}
